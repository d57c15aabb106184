"""The images, built for real with buildah (chroot isolation, vfs storage) and run with `buildah run`.

No registry is reachable here, so the base is a local stand-in for python:3.11-slim-bookworm: a Debian
bookworm root with Python 3.11, pip and its headers made by mmdebstrap, once per recipe (cached by tag).
The Dockerfiles take it as their BASE build argument; pip reads the host's package settings and CA
certificates from read-only mounts, so nothing about this machine is baked into a layer.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import h5py
import pytest

from .conftest import ROOT

TOOLS = [t for t in ("buildah", "mmdebstrap") if shutil.which(t) is None]
pytestmark = pytest.mark.skipif(
    bool(TOOLS), reason=f"needs {' and '.join(TOOLS)} (Debian packages; .ci/run installs them)"
)
STORAGE = ["--storage-driver", "vfs"]
BASE_PACKAGES = "python3,python3-pip,python3-dev,ca-certificates"
BASE_HOOK = 'rm -f "$1"/usr/lib/python3.11/EXTERNALLY-MANAGED; ln -sf python3 "$1"/usr/bin/python'
# The Triton that torch 2.13's CUDA wheels pin; the CUDA image test swaps in the CPU torch, which has none.
TRITON_VERSION = "3.9.0"


def buildah(*args: str, timeout: float = 1200) -> subprocess.CompletedProcess:
    done = subprocess.run(["buildah", *STORAGE, *args], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"buildah {' '.join(args)}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done


def image_exists(tag: str) -> bool:
    return subprocess.run(["buildah", *STORAGE, "inspect", tag], capture_output=True).returncode == 0


@pytest.fixture(scope="session")
def base_image(tmp_path_factory) -> str:
    recipe = hashlib.sha256(f"{BASE_PACKAGES}|{BASE_HOOK}".encode()).hexdigest()[:10]
    tag = f"localhost/peaknet-test-base:bookworm-py311-{recipe}"
    if image_exists(tag):
        return tag
    tar = tmp_path_factory.mktemp("base") / "root.tar"
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
    return tag


@pytest.fixture(scope="session")
def pip_mounts(tmp_path_factory) -> list[str]:
    """The host's pip settings, CA bundle and local wheels (torch's CPU build), read-only, for RUN steps."""
    conf = tmp_path_factory.mktemp("pip") / "pip.conf"
    lines = ["[global]", "cert = /etc/ssl/certs/ca-certificates.crt"]
    mounts = ["-v", "/etc/ssl/certs:/etc/ssl/certs:ro", "-v", f"{conf}:/etc/pip.conf:ro"]
    if Path("/opt/wheels").is_dir():
        lines.append("find-links = /opt/wheels")
        mounts += ["-v", "/opt/wheels:/opt/wheels:ro"]
    conf.write_text("\n".join(lines) + "\n")
    return mounts


def build(dockerfile: str, tag: str, base: str, mounts: list[str], *args: str) -> str:
    buildah(
        "bud", "--isolation", "chroot", "-q", "-f", f"docker/{dockerfile}", "--build-arg", f"BASE={base}",
        "--build-arg", "TORCH_INDEX=https://pypi.org/simple", *args, *mounts, "-t", tag, str(ROOT),
    )  # fmt: skip
    return tag


def run_in(image: str, script: str, *mounts: str, user: str = "1000") -> str:
    ctr = buildah("from", "-q", image).stdout.strip()
    try:
        return buildah("run", "--isolation", "chroot", "--user", user, *mounts, ctr, "--", "sh", "-c", script).stdout
    finally:
        buildah("rm", ctr)


@pytest.fixture(scope="session")
def cpu_image(base_image, pip_mounts) -> str:
    return build("Dockerfile.cpu", "localhost/peaknet:test-cpu", base_image, pip_mounts)


def test_the_cpu_image_runs_the_cpu_demo_as_uid_1000(cpu_image, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o777)
    script = (
        "id && cd /out && RAY_AUTH_MODE=disabled peaknet-pipeline run --config /examples/configs/cpu-demo.yaml "
        "--set producer.total_frames=64 --set writer.min_num_peak=0 --report /out/report.json"
    )
    shown = run_in(cpu_image, script, "-v", f"{out}:/out", "-v", f"{ROOT / 'examples'}:/examples:ro")
    assert shown.startswith("uid=1000(ray) gid=100(users)"), shown[:200]
    report = json.loads((out / "report.json").read_text())
    assert report["accounted"] is True and report["frames"]["produced"] == 64
    ids = []
    for path in (out / "cxi").glob("*.cxi"):
        with h5py.File(path) as f:
            ids += [x.decode() for x in f["/entry_1/event_id"][:]]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == report["frames"]["outcomes"]["written"] == 64


def test_the_cuda_image_builds_with_a_compiler_triton_can_use(base_image, pip_mounts, tmp_path):
    """Every step of docker/Dockerfile runs; only torch is the CPU build (the CUDA wheels are several GB)."""
    image = build(
        "Dockerfile", "localhost/peaknet:test-cuda", base_image, pip_mounts,
        "--build-arg", f"TRITON_VERSION={TRITON_VERSION}",
    )  # fmt: skip
    check = (
        "import torch, triton, ray, peaknet_pipeline, tempfile\n"
        "from triton.runtime.build import _build\n"
        "d = tempfile.mkdtemp()\n"
        "open(d + '/m.c', 'w').write('#include <Python.h>\\nint f(void) { return 1; }\\n')\n"
        "print('built', _build('m', d + '/m.c', d, [], [], [], []))\n"
        "print('ray', ray.__version__)\n"
    )
    (tmp_path / "check.py").write_text(check)
    tmp_path.chmod(0o755)  # readable by uid 1000 inside the container
    (tmp_path / "check.py").chmod(0o644)
    shown = run_in(image, "cc --version | head -1 && python3 /check/check.py", "-v", f"{tmp_path}:/check:ro")
    assert shown.startswith("cc (Debian") and "built /" in shown and "ray 2." in shown, shown


def test_the_profiling_image_builds_up_to_nvidias_repository(base_image, pip_mounts):
    pytest.skip(
        "docker/Dockerfile.profiling: its one layer installs nsys from NVIDIA's apt repository "
        "(developer.download.nvidia.com), which these machines cannot reach; the CUDA image it builds on "
        "is built by the test above, and hadolint checks this file (test_deploy.py)"
    )
