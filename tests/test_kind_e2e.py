"""The CPU end-to-end run on a kind cluster (k8s/kind/run_e2e.py), where Docker and kind exist."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NEEDED = ("docker", "kind", "kubectl")  # helm: on PATH or fetched by k8s/helm.py
missing = [tool for tool in NEEDED if shutil.which(tool) is None]


@pytest.mark.skipif(bool(missing), reason=f"needs a Docker engine and kind; not on PATH here: {', '.join(missing)}")
def test_kind_cpu_end_to_end(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "k8s" / "kind" / "run_e2e.py"), "--out", str(tmp_path / "cxi")],
        cwd=ROOT,
        timeout=3600,
    )
    assert done.returncode == 0
    assert list((tmp_path / "cxi").rglob("*.cxi"))
