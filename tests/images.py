"""Building the images for real with buildah (chroot isolation, vfs storage) and running commands in them
with `buildah run`.

No registry is reachable here, so the base is a local stand-in for python:3.11-slim-bookworm: a Debian
bookworm root with Python 3.11, pip and its headers made by mmdebstrap, once per recipe (cached by tag).
The Dockerfiles take it as their BASE build argument; pip reads the host's package settings and CA
certificates from read-only mounts, so nothing about this machine is baked into a layer.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MISSING_TOOLS = [t for t in ("buildah", "mmdebstrap") if shutil.which(t) is None]
SKIP_REASON = f"needs {' and '.join(MISSING_TOOLS)} (Debian packages; .ci/run installs them)"
STORAGE = ["--storage-driver", "vfs"]
BASE_PACKAGES = "python3,python3-pip,python3-dev,ca-certificates"
TAG = "localhost/peaknet:test"
BASE_HOOK = 'rm -f "$1"/usr/lib/python3.11/EXTERNALLY-MANAGED; ln -sf python3 "$1"/usr/bin/python'


def buildah(*args: str, timeout: float = 1200) -> subprocess.CompletedProcess:
    done = subprocess.run(["buildah", *STORAGE, *args], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"buildah {' '.join(args)}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done


def image_id(tag: str) -> str | None:
    done = subprocess.run(["buildah", *STORAGE, "inspect", "--format", "{{.FromImageID}}", tag], capture_output=True,
                          text=True)  # fmt: skip
    return done.stdout.strip() if done.returncode == 0 else None


def make_base_image(scratch: Path) -> str:
    recipe = hashlib.sha256(f"{BASE_PACKAGES}|{BASE_HOOK}".encode()).hexdigest()[:10]
    tag = f"localhost/peaknet-test-base:bookworm-py311-{recipe}"
    if image_id(tag) is not None:
        return tag
    tar = scratch / "root.tar"
    subprocess.run(
        ["mmdebstrap", "--variant=minbase", f"--include={BASE_PACKAGES}", f"--customize-hook={BASE_HOOK}",
         "bookworm", str(tar), "http://deb.debian.org/debian"],
        check=True, capture_output=True, timeout=900,
    )  # fmt: skip
    ctr = buildah("from", "scratch").stdout.strip()
    try:
        buildah("add", ctr, str(tar), "/")
        buildah("config", "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", ctr)
        buildah("commit", "-q", ctr, tag)
    finally:
        buildah("rm", ctr)
        tar.unlink(missing_ok=True)
    return tag


def make_pip_mounts(scratch: Path) -> list[str]:
    """The host's pip settings, CA bundle and local wheels (torch's CPU build), read-only, for RUN steps."""
    conf = scratch / "pip.conf"
    lines = ["[global]", "cert = /etc/ssl/certs/ca-certificates.crt"]
    mounts = ["-v", "/etc/ssl/certs:/etc/ssl/certs:ro", "-v", f"{conf}:/etc/pip.conf:ro"]
    if Path("/opt/wheels").is_dir():
        lines.append("find-links = /opt/wheels")
        mounts += ["-v", "/opt/wheels:/opt/wheels:ro"]
    conf.write_text("\n".join(lines) + "\n")
    return mounts


def build(dockerfile: str, tag: str, base: str, mounts: list[str], *args: str) -> str:
    earlier = image_id(tag)
    buildah(
        "bud", "--isolation", "chroot", "-q", "-f", str(ROOT / "docker" / dockerfile), "--build-arg", f"BASE={base}",
        "--build-arg", "TORCH_INDEX=https://pypi.org/simple", *args, *mounts, "-t", tag, str(ROOT),
    )  # fmt: skip
    if earlier and earlier != image_id(tag):  # the tag moved: vfs keeps whole copies, so drop the old one
        subprocess.run(["buildah", *STORAGE, "rmi", earlier], capture_output=True)
    return tag


def run_in(image: str, script: str, *mounts: str, user: str = "1000") -> str:
    ctr = buildah("from", "-q", image).stdout.strip()
    try:
        return buildah("run", "--isolation", "chroot", "--user", user, *mounts, ctr, "--", "sh", "-c", script).stdout
    finally:
        buildah("rm", ctr)
