"""The fused Triton kernels of the ConvNeXtV2 block compute what the PyTorch ops they replace compute.

Without a GPU they run in Triton's CPU interpreter (conftest sets TRITON_INTERPRET=1), so the indexing,
masking, per-frame tiling and epilogues are checked in CI; on a CUDA machine the same tests run the
compiled kernels, plus the compiled model against the plain one in bf16."""

import importlib.util

import pytest
import torch
import torch.nn.functional as F

from peaknet_pipeline.model import fused_ops
from peaknet_pipeline.model.backbone import ConvNeXtV2Block
from peaknet_pipeline.model.head import SUBLAYERS_PER_LEVEL
from peaknet_pipeline.model.peaknet import PeakNet, PeakNetArch

HAS_TRITON = importlib.util.find_spec("triton") is not None
CUDA = torch.cuda.is_available()
DEVICES = [
    pytest.param(
        "cpu",
        marks=pytest.mark.skipif(
            not HAS_TRITON or CUDA,
            reason="triton not installed (pip install triton): the kernels run in its CPU interpreter"
            if not HAS_TRITON
            else "CUDA present: the kernels are compiled for the GPU, not interpreted",
        ),
    ),
    pytest.param(
        "cuda", marks=pytest.mark.skipif(not (HAS_TRITON and CUDA), reason="needs a CUDA GPU with Triton (none in CI)")
    ),
]


def record_depthwise_calls(monkeypatch) -> list:
    """The input shapes fused_ops.depthwise (the Triton depthwise kernel's entry) is called with from now on; it
    still runs."""
    calls = []
    kernel = fused_ops.depthwise
    monkeypatch.setattr(fused_ops, "depthwise", lambda conv, t: calls.append(t.shape) or kernel(conv, t))
    return calls


def randn(*shape: int, seed: int, device: str, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).mul(scale).to(device)


@pytest.fixture
def tk():
    from peaknet_pipeline.model import triton_kernels

    return triton_kernels


def tma_param(device: str, tma: bool) -> bool:
    """Both kernels in the interpreter; on a GPU the TMA one only where it has the copy engine."""
    if tma and device == "cuda" and torch.cuda.get_device_capability()[0] < 9:
        pytest.skip("the TMA kernel needs compute capability 9.0 or later")
    return tma


# per-thread loads, or tiles moved by the copy engine through tensor descriptors
KERNELS = pytest.mark.parametrize("tma", [False, True], ids=["loads", "tma"])


@KERNELS
@pytest.mark.parametrize("device", DEVICES)
def test_linear_gelu_sumsq_gives_gelu_output_and_its_per_frame_column_norms(tk, device, tma):
    frames, hw, k, n = 3, 48, 40, 72  # 48 rows: 16-row tiles; K and N not multiples of the tiles
    a = randn(frames * hw, k, seed=1, device=device)
    weight, bias = randn(n, k, seed=2, device=device, scale=0.2), randn(n, seed=3, device=device)
    out, sumsq = tk.linear(a, weight, bias, hw, gelu_sumsq=True, tma=tma_param(device, tma))
    expected = F.gelu(a @ weight.t() + bias)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(sumsq, expected.view(frames, hw, n).square().sum(1), rtol=1e-4, atol=1e-3)


@KERNELS
@pytest.mark.parametrize("device", DEVICES)
def test_gelu_epilogue_is_the_exact_gelu_to_within_fp32_rounding(tk, device, tma):
    # identity weight: the kernel's output is its GELU of `a`, over the range activations take and beyond
    a = torch.linspace(-12, 12, 64 * 16, device=device).view(64, 16)
    eye, zeros = torch.eye(16, device=device), torch.zeros(16, device=device)
    out, _ = tk.linear(a, eye, zeros, 64, gelu_sumsq=True, tma=tma_param(device, tma))
    expected = F.gelu(a.double()).float()
    torch.testing.assert_close(out, expected, rtol=0, atol=2e-6)


# The kernels' tanh form runs tanh.approx.f32 on a GPU (relative error up to 2^-11) and exp in the interpreter
TANH_ATOL = {"cpu": 2e-6, "cuda": 5e-3}


@KERNELS
@pytest.mark.parametrize("device", DEVICES)
def test_gelu_epilogue_in_its_tanh_form(tk, device, tma):
    """The kernels' GELU with tanh=True is PyTorch's approximate="tanh" (not the exact GELU), with its sums."""
    a = torch.linspace(-12, 12, 64 * 16, device=device).view(64, 16)
    eye, zeros = torch.eye(16, device=device), torch.zeros(16, device=device)
    out, sumsq = tk.linear(a, eye, zeros, 64, gelu_sumsq=True, tma=tma_param(device, tma), tanh=True)
    expected = F.gelu(a.double(), approximate="tanh").float()
    torch.testing.assert_close(out, expected, rtol=0, atol=TANH_ATOL[device])
    torch.testing.assert_close(sumsq[0], expected.square().sum(0), rtol=1e-4 if device == "cpu" else 2e-3, atol=0)
    assert (out - F.gelu(a)).abs().max() > 1e-4  # the exact GELU differs by up to 4.7e-4


@pytest.mark.parametrize("device", DEVICES)
def test_fused_block_with_tanh_gelu_in_the_gemm_kernel_is_the_plain_block_with_it(device, monkeypatch):
    """tanh_kernel_modes (fused_ops.TANH_KERNEL_MODES): pwconv1 by our kernel with the tanh form, not cuBLASLt."""
    plain, fused = block_pair(24, device, torch.float32, "all", gelu="tanh")
    fused.tanh_kernel_modes = ("all",)
    monkeypatch.setattr(fused_ops, "lt_gelu_tanh_sumsq", lambda *a: pytest.fail("pwconv1 went to cuBLASLt"))
    x = randn(2, 24, 8, 8, seed=1, device=device).to(memory_format=torch.channels_last)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), plain(x), rtol=1e-4, atol=1e-4 if device == "cpu" else 5e-3)


@pytest.mark.parametrize("device", DEVICES)
def test_cublaslt_gelu_path_gives_tanh_gelu_and_its_per_frame_column_norms(device):
    frames, hw, k, n = 3, 64, 40, 72
    a = randn(frames * hw, k, seed=1, device=device)
    weight, bias = randn(n, k, seed=2, device=device, scale=0.2), randn(n, seed=3, device=device)
    out, sumsq = fused_ops.lt_gelu_tanh_sumsq(a, weight, bias, hw)
    expected = F.gelu(a @ weight.t() + bias, approximate="tanh")
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(sumsq, expected.view(frames, hw, n).square().sum(1), rtol=1e-4, atol=1e-3)


@KERNELS
@pytest.mark.parametrize("device", DEVICES)
def test_linear_scales_input_columns_per_frame_and_adds_bias_and_residual(tk, device, tma):
    frames, hw, k, n = 2, 64, 72, 152  # K and N not multiples of the tiles: N spans two or three column tiles
    a, residual = randn(frames * hw, k, seed=1, device=device), randn(frames * hw, n, seed=4, device=device)
    weight, bias = randn(n, k, seed=2, device=device, scale=0.2), randn(n, seed=3, device=device)
    scale = randn(frames, k, seed=5, device=device) + 1  # a different column scale for each frame
    out, sumsq = tk.linear(a, weight, bias, hw, residual=residual, a_scale=scale, tma=tma_param(device, tma))
    expected = (a.view(frames, hw, k) * scale[:, None, :]).view(-1, k) @ weight.t() + bias + residual
    assert sumsq is None
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)


def test_tma_is_chosen_only_on_a_gpu_with_the_copy_engine_and_for_aligned_rows(tk):
    a = torch.zeros(64, 40)
    assert not tk.use_tma(a)  # CPU tensors: per-thread loads
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():  # traced for torch.compile, even on a GPU: inductor refuses the descriptors
        assert not tk.use_tma(torch.empty(64, 40, device="cuda"))
    assert tk.tma_fits(a, torch.zeros(72, 40)) and not tk.tma_fits(torch.zeros(64, 6))  # 24-byte rows
    assert not tk.tma_fits(torch.zeros(64 * 40 + 1)[1:].view(64, 40))  # a start 4 bytes past a boundary
    with pytest.raises(ValueError, match="16-byte"):
        tk.linear(torch.zeros(64, 6), torch.zeros(8, 6), torch.zeros(8), 64, tma=True)


def test_gemms_are_launched_by_tma_from_the_forward_only_when_compiling_for_a_gpu_with_the_copy_engine(tk):
    a, weight = torch.zeros(128, 64), torch.zeros(96, 64)
    assert not fused_ops.tma_inline(a, weight)  # eager: the registered ops (which take TMA themselves on Hopper)

    @torch.compile(backend="eager", fullgraph=True)
    def path(a, weight):
        return a + 1 if fused_ops.tma_inline(a, weight) else a - 1

    assert torch.equal(path(a, weight), a - 1)  # compiling, but CPU tensors: no copy engine


def test_the_tma_choice_traces_without_breaking_the_compiled_graph(tk, monkeypatch):
    """A graph break there splits every block into graphs of their own, and dynamo then traces the block's sizes
    as symbols, which reach the descriptors' types (a compile error at 1920x1920)."""
    monkeypatch.setattr(tk, "has_tma", lambda device: True)  # as on Hopper

    @torch.compile(backend="eager", fullgraph=True)  # fullgraph: a graph break is an error
    def path(a, weight):
        return a + 1 if fused_ops.tma_inline(a, weight) else a - 1

    a = torch.zeros(128, 64)
    assert torch.equal(path(a, torch.zeros(96, 64)), a + 1)
    assert torch.equal(path(a, torch.zeros(95, 64)), a - 1)  # 190-byte output rows: per-thread loads


HOPPER = CUDA and torch.cuda.get_device_capability()[0] >= 9


@pytest.mark.skipif(not (HAS_TRITON and HOPPER), reason="needs a GPU with Hopper's copy engine (none in CI)")
@pytest.mark.parametrize("gelu", ["exact", "tanh"])
def test_compiled_block_runs_the_gemms_by_tma_and_agrees_with_the_eager_block(gelu):
    from torch._inductor.utils import run_and_get_code

    plain, fused = block_pair(96, "cuda", torch.bfloat16, "blocks", gelu)
    x = randn(2, 96, 32, 32, seed=1, device="cuda").bfloat16().to(memory_format=torch.channels_last)
    with torch.inference_mode():
        eager = fused(x).float()
        compiled, code = run_and_get_code(torch.compile(fused), x)
    assert "_tma_linear_kernel" in "\n".join(code)  # the descriptors reached the compiled graph
    torch.testing.assert_close(compiled.float(), eager, rtol=2e-2, atol=2e-2)


def test_linear_refuses_frames_that_do_not_tile(tk):
    assert tk.row_block(12) is None and tk.row_block(3600) == 16 and tk.row_block(16384) == 128
    a = torch.zeros(24, 8)
    with pytest.raises(ValueError, match="12 rows"):
        tk.linear(a, torch.zeros(8, 8), torch.zeros(8), 12)


def block_pair(
    channels: int, device: str, dtype: torch.dtype, mode: str = "gemm", gelu: str = "exact"
) -> tuple[ConvNeXtV2Block, ConvNeXtV2Block]:
    plain = ConvNeXtV2Block(channels)
    with torch.no_grad():
        for i, p in enumerate(plain.parameters()):
            p.copy_(randn(*p.shape, seed=10 + i, device="cpu", scale=0.2))
    fused = ConvNeXtV2Block(channels)
    fused.load_state_dict(plain.state_dict())  # same parameters: checkpoints load unchanged
    assert fused_ops.enable(fused, mode) == 1
    assert fused_ops.set_gelu(plain, gelu) == fused_ops.set_gelu(fused, gelu) == 1
    to = dict(device=device, dtype=dtype, memory_format=torch.channels_last)
    return plain.to(**to), fused.to(**to)


MODES = pytest.mark.parametrize("mode", ["dwconv", "gemm", "blocks", "all"])


@pytest.mark.parametrize("device", DEVICES)
def test_fused_block_with_tanh_gelu_is_the_plain_block_with_it(device):
    plain, fused = block_pair(24, device, torch.float32, "all", gelu="tanh")
    x = randn(2, 24, 8, 8, seed=1, device=device).to(memory_format=torch.channels_last)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), plain(x), rtol=1e-4, atol=1e-4)
        fused_ops.set_gelu(plain, "exact")
        assert (fused(x) - plain(x)).abs().max() > 1e-5  # the form reaches the output


def test_gelu_form_per_preset_and_unknown_form_refused():
    from peaknet_pipeline.config_sources import load_config
    from peaknet_pipeline.inference.engine import spec_from_config

    def form(*overrides: str) -> str:
        return spec_from_config(load_config(None, list(overrides)), (1, 64, 64)).mlp_gelu

    assert form() == "tanh" and form("model.peaknet.preset=673m") == "exact"
    assert form("model.peaknet.mlp_gelu=exact") == "exact" and form("model.kind=threshold") == "exact"
    from peaknet_pipeline.inference.models import build_model

    info = build_model(load_config(None, ["model.peaknet.preset=demo", "model.peaknet.mlp_gelu=tanh"]).model)[1]
    assert info["mlp_gelu"] == "tanh"  # what the run report's model section says ran
    with pytest.raises(ValueError, match="expected one of exact, tanh"):
        fused_ops.set_gelu(ConvNeXtV2Block(8), "erf")


@MODES
@pytest.mark.parametrize("device", DEVICES)
def test_fused_block_is_the_plain_block(device, mode, monkeypatch):
    plain, fused = block_pair(24, device, torch.float32, mode)
    x = randn(2, 24, 8, 8, seed=1, device=device).to(memory_format=torch.channels_last)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), plain(x), rtol=1e-4, atol=1e-4)
        odd = x[:, :, :4, :4]  # 16 pixels per frame: too few for a GEMM tile, so PyTorch's linear layers run
        assert not fused_ops.fusable(odd)
        calls = record_depthwise_calls(monkeypatch)  # the kernel (dwconv, all) runs for such frames too
        exact = mode not in fused_ops.DWCONV_MODES
        torch.testing.assert_close(fused(odd), plain(odd), rtol=0 if exact else 1e-4, atol=0 if exact else 1e-4)
        assert calls == ([] if exact else [odd.shape])


@MODES
@pytest.mark.parametrize("gelu", ["exact", "tanh"])
@pytest.mark.skipif(not (HAS_TRITON and CUDA), reason="needs a CUDA GPU with Triton (none in CI)")
def test_compiled_model_with_fused_blocks_agrees_with_the_plain_model_in_bf16(mode, gelu):
    compiled_agrees_with_plain(mode, gelu)


def compiled_agrees_with_plain(mode: str, gelu: str) -> None:
    arch = PeakNetArch(backbone_hidden_sizes=(32, 64, 128, 256), backbone_depths=(1, 1, 2, 1), bifpn_num_features=64,
                       seg_out_channels=64)  # fmt: skip
    plain = PeakNet(arch).eval()
    fused = PeakNet(arch).eval()
    fused.load_state_dict(plain.state_dict())
    parts = arch.bifpn_num_blocks if mode in fused_ops.BIFPN_MODES else 0
    parts += (mode in fused_ops.STEM_MODES) + len(SUBLAYERS_PER_LEVEL) * (mode in fused_ops.HEAD_MODES)
    assert fused_ops.enable(fused, mode) == sum(arch.backbone_depths) + parts
    fused_ops.set_gelu(plain, gelu), fused_ops.set_gelu(fused, gelu)  # with tanh, pwconv1 by cuBLASLt
    to = dict(device="cuda", dtype=torch.bfloat16, memory_format=torch.channels_last)
    plain, fused = plain.to(**to), torch.compile(fused.to(**to))
    x = randn(4, 1, 128, 128, seed=1, device="cuda").bfloat16()
    with torch.inference_mode():
        expected, got = plain(x).float(), fused(x).float()
    reference = PeakNet(arch).eval()
    reference.load_state_dict(plain.state_dict())
    fused_ops.set_gelu(reference, gelu)
    with torch.inference_mode():
        exact = reference.cuda()(x.float())
    # the fused model is as close to the fp32 model as the plain bf16 model is
    assert (got - exact).abs().max() <= 2 * (expected - exact).abs().max() + 1e-2
    assert ((got[:, 1] > got[:, 0]) == (exact[:, 1] > exact[:, 0])).float().mean() > 0.99


@pytest.mark.skipif(not (HAS_TRITON and CUDA), reason="needs a CUDA GPU with Triton (none in CI)")
@pytest.mark.usefixtures("exact_reference_convs")  # conftest: the plain model's convs in IEEE fp32, as the kernels
def test_compiled_model_in_fp32_with_every_kernel_agrees_with_the_plain_model():
    """precision fp32 runs the kernels on fp32 tiles (twice the shared memory of bf16's, and IEEE products)."""
    arch = PeakNetArch(backbone_hidden_sizes=(32, 64, 128, 256), backbone_depths=(1, 1, 2, 1), bifpn_num_features=64,
                       seg_out_channels=64)  # fmt: skip
    plain, fused = PeakNet(arch).eval(), PeakNet(arch).eval()
    fused.load_state_dict(plain.state_dict())
    fused_ops.enable(fused, "all")
    plain, fused = plain.cuda(), torch.compile(fused.cuda().to(memory_format=torch.channels_last))
    x = randn(4, 1, 128, 128, seed=1, device="cuda")
    with torch.inference_mode():
        torch.testing.assert_close(fused(x), plain(x), rtol=1e-3, atol=1e-3)


def test_only_mode_all_switches_the_bifpn_stem_and_head_to_their_kernels_and_other_modes_switch_them_back():
    model = PeakNet(PeakNetArch(backbone_depths=(1, 1, 2, 1), bifpn_num_blocks=2))
    convnext_blocks = [m for m in model.modules() if hasattr(m, "fused")]
    bifpn_blocks = list(model.bifpn.blocks)
    stem, head = model.backbone.embeddings, model.seg_lateral_layers
    assert len(convnext_blocks) == 5 and len(bifpn_blocks) == 2
    for mode in ("all", "none", "all", "dwconv", "gemm", "blocks"):
        switched = fused_ops.enable(model, mode)
        assert switched == {"none": 0, "all": 12}.get(mode, 5)  # 5 blocks, 2 BiFPN blocks, the stem, 4 laterals
        assert [m.by_kernel for m in bifpn_blocks] == [mode == "all"] * 2
        assert stem.by_kernel == (mode == "all")
        assert [m.by_kernel for m in head] == [mode == "all"] * 4
        assert all(m.fused == mode for m in convnext_blocks)


def test_unknown_mode_is_refused_and_none_switches_nothing():
    block = ConvNeXtV2Block(8)
    with pytest.raises(ValueError, match="expected one of none, dwconv, gemm, blocks, all"):
        fused_ops.enable(block, "fast")
    assert fused_ops.enable(block, "none") == 0 and block.fused == "none"


def test_preset_default_mode_is_the_measured_one_and_config_overrides_it():
    from peaknet_pipeline.config_sources import load_config
    from peaknet_pipeline.inference.engine import spec_from_config

    def mode(*overrides: str) -> str:
        return spec_from_config(load_config(None, list(overrides)), (1, 64, 64)).fused_kernels

    assert mode() == "all"
    assert mode("model.peaknet.preset=673m") == "dwconv"
    assert mode("model.peaknet.preset=673m", "model.peaknet.fused_kernels=gemm") == "gemm"
    assert mode("model.peaknet.preset=673m", "model.peaknet.fused_kernels=dwconv") == "dwconv"
    assert mode("model.kind=threshold") == "none"
