"""The Triton kernels compile for a Hopper GPU (sm_90) at the launch settings the model uses, and keep their
working set in registers, checked on the CPU-only CI machine (tests/hopper_compile.py: Triton builds the cubin
for a named target with no device present; cuobjdump, shipped with Triton, reads what it uses).

The interpreter tests check what the kernels compute; these check what only the GPU compiler sees: code that
the interpreter runs but the compiler rejects, and register spills (local memory). Triton's layouts differ
between its versions, so the register counts are the installed Triton's; the GPU's own numbers come from
bench_dwconv.py and bench_kernels.py."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="needs triton (pip install triton)")


@pytest.fixture(scope="module")
def compiled() -> dict:
    from .hopper_compile import CUOBJDUMP

    if not CUOBJDUMP.exists():
        pytest.skip("this Triton ships no cuobjdump: the compiled kernels' resources cannot be read")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}  # compile, not interpret
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "app"), str(ROOT), env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-m", "tests.hopper_compile"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.splitlines()[-1])


STAGES = pytest.mark.parametrize("channels", [96, 192, 384, 768])


@STAGES
def test_depthwise_kernel_keeps_its_taps_and_sums_in_registers(compiled, channels):
    used = compiled[f"dwconv-{channels}"]
    # 49 taps and 28 running sums per thread, plus addresses and masks: nothing goes to local memory
    assert used["LOCAL"] == 0 and used["STACK"] == 0, used
    assert used["REG"] <= 128, used


@STAGES
@pytest.mark.parametrize("kind", ["gelu", "residual"])
def test_gemm_kernels_compile_for_hopper_at_the_models_launch_settings(compiled, kind, channels):
    """They compile, with the tensor cores' warpgroup instructions, and keep the accumulator and the addresses
    in registers: at most a few words spill (the widest tiles, 128x256 fp32 over 256 threads, spill 16-40 bytes
    depending on Triton's version)."""
    used = compiled[f"{kind}-{channels}"]
    assert used["wgmma"] > 0, used
    assert used["STACK"] <= 64, used


@STAGES
def test_gelu_gemm_with_the_tanh_form_compiles_its_instruction_for_hopper(compiled, channels):
    """The tanh form's inline tanh.approx.f32 (which the interpreter never runs) compiles, on tensor cores, with no
    more spilled than the exact form's kernel."""
    used, exact = compiled[f"tma-gelu-{channels}-bf16-tanh"], compiled[f"tma-gelu-{channels}-bf16"]
    assert used["wgmma"] > 0 and used["STACK"] <= max(exact["STACK"], 64), (used, exact)


@pytest.mark.parametrize("case", ["bifpn-up-128", "bifpn-up-64", "bifpn-up-32", "bifpn-down-64", "bifpn-down-32",
                                  "bifpn-down-16", "bifpn-up-128-bias", "bifpn-down-64-bias"])  # fmt: skip
def test_bifpn_step_kernel_compiles_to_tensor_cores_without_spills(compiled, case):
    """The step's accumulator (every channel of 64 pixels) and its gathered input stay in registers."""
    used = compiled[case]
    assert used["wgmma"] > 0, used
    assert used["STACK"] == 0 and used["LOCAL"] == 0, used


@pytest.mark.parametrize("channels", [96, 352, 512])
def test_stem_kernel_keeps_every_channel_of_its_pixels_in_registers(compiled, channels):
    """The fp32 accumulator holds all channels of the program's pixels for LayerNorm: it must not spill."""
    used = compiled[f"stem-{channels}"]
    assert used["STACK"] == 0 and used["LOCAL"] == 0, used
    if channels == 96:  # base's: warpgroup MMA (wider tiles than its 256 columns take the older MMA)
        assert used["wgmma"] > 0, used


SM90_SHARED_PER_PROGRAM = 232_448  # bytes a program may take on an H100/H200 (227 KB)


def test_every_kernel_fits_hoppers_shared_memory_at_its_launch_settings(compiled):
    """A kernel asking for more shared memory than the GPU has fails at launch (OutOfResources): the TMA GEMMs
    buffer whole fp32 tiles in precision fp32, twice the bytes of the bf16 tiles their settings were swept on."""
    too_large = {case: used["DYNAMIC_SHARED"] for case, used in compiled.items()}
    too_large = {case: b for case, b in too_large.items() if b > SM90_SHARED_PER_PROGRAM}
    assert not too_large, too_large
    assert {f"tma-residual-{c}-fp32" for c in (96, 192, 384, 768)} <= compiled.keys()


@STAGES
@pytest.mark.parametrize("kind", ["gelu", "residual"])
def test_tma_gemm_kernels_run_bf16_on_the_tensor_cores(compiled, kind, channels):
    used = compiled[f"tma-{kind}-{channels}-bf16"]
    assert used["wgmma"] > 0 and used["LOCAL"] == 0, used


@pytest.mark.parametrize("case", ["head-partials", "head-project-1", "head-project-3"])
def test_head_kernels_keep_their_tile_in_registers(compiled, case):
    """Each holds 64 pixels x 256 channels in fp32 across 8 warps for its reductions (the coarser laterals' a sum
    of three such tiles): no spills."""
    used = compiled[case]
    assert used["STACK"] == 0 and used["LOCAL"] == 0, used
