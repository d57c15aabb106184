"""The images, built for real with buildah and run with `buildah run` (tests/images.py says how)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import pytest

from .conftest import ROOT
from .images import MISSING_TOOLS, SKIP_REASON, run_in

pytestmark = pytest.mark.skipif(bool(MISSING_TOOLS), reason=SKIP_REASON)


def test_the_image_runs_the_cpu_demo_as_uid_1000(image, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o777)
    script = (
        "id && cd /out && RAY_AUTH_MODE=disabled peaknet-pipeline run --config /examples/configs/cpu-demo.yaml "
        "--set producer.total_frames=64 --set writer.min_num_peak=0 --report /out/report.json"
    )
    configs = (ROOT / "examples" / "configs").resolve()  # a link into the chart: mount what it points to
    shown = run_in(image, script, "-v", f"{out}:/out", "-v", f"{configs}:/examples/configs:ro")
    assert shown.startswith("uid=1000(ray) gid=100(users)"), shown[:200]
    report = json.loads((out / "report.json").read_text())
    assert report["accounted"] is True and report["frames"]["produced"] == 64
    ids = []
    for path in (out / "cxi").glob("*.cxi"):
        with h5py.File(path) as f:
            ids += [x.decode() for x in f["/entry_1/event_id"][:]]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == report["frames"]["outcomes"]["written"] == 64


def test_the_image_has_a_compiler_triton_can_use(image, tmp_path):
    """Triton builds its host-side modules with the image's C compiler and Python headers. The CPU torch in
    the test image brings no Triton (the CUDA wheels bring their own), so the test environment's Triton, the
    version torch's CUDA wheels pin and built for the same Python 3.11, is lent read-only."""
    import triton

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
    lent = Path(triton.__file__).parent
    script = "cc --version | head -1 && PYTHONPATH=/opt/lent python3 /check/check.py"
    shown = run_in(image, script, "-v", f"{tmp_path}:/check:ro", "-v", f"{lent}:/opt/lent/triton:ro")
    assert shown.startswith("cc (Debian") and "built /" in shown and "ray 2." in shown, shown


def test_the_profiling_image_builds_up_to_nvidias_repository():
    pytest.skip(
        "docker/Dockerfile.profiling: its one layer installs nsys from NVIDIA's apt repository "
        "(developer.download.nvidia.com), which these machines cannot reach; the CUDA image it builds on "
        "is built by the test above, and hadolint checks this file (test_deploy.py)"
    )
