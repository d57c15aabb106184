"""The head's 3x3 conv kernel (model/conv3x3_kernel.py) computes PyTorch's conv, in bf16/fp32 and in FP8, and
HeadConv switches to it without changing the model's parameters. Without a GPU the kernel runs in Triton's CPU
interpreter (conftest sets TRITON_INTERPRET=1)."""

import pytest
import torch
import torch.nn.functional as F

from peaknet_pipeline.model import head_conv
from peaknet_pipeline.model.head import build_lateral_layers
from peaknet_pipeline.model.head_conv import HeadConv

from .test_fused_kernels import CUDA, DEVICES, HAS_TRITON, randn

SMALL = {"BLOCK_M": 64, "BLOCK_N": 32, "BLOCK_K": 32}  # tiles the test frames; the interpreter is slow
TOL = {"cpu": 1e-4, "cuda": 2e-2}  # on the GPU tl.dot takes fp32 operands as TF32, as cuDNN may


@pytest.fixture
def ck():
    if not HAS_TRITON:
        pytest.skip("triton not installed: the kernel runs in its CPU interpreter")
    from peaknet_pipeline.model import conv3x3_kernel

    return conv3x3_kernel


def conv_case(n: int, h: int, w: int, c: int, n_out: int, device: str, dtype=torch.float32):
    x = randn(n, c, h, w, seed=1, device=device).to(dtype)
    weight = randn(n_out, c, 3, 3, seed=2, device=device, scale=0.1).to(dtype)
    bias = randn(n_out, seed=3, device=device).to(dtype)
    return x, weight, bias


def nhwc(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1).contiguous()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(2, 8, 16, 64, 64), (1, 16, 4, 32, 96)])  # n, h, w, c, c_out
def test_conv3x3_is_pytorch_conv_with_padding_one(ck, device, shape):
    n, h, w, c, n_out = shape
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    x, weight, bias = conv_case(n, h, w, c, n_out, device, dtype)
    out = ck.conv3x3(nhwc(x), ck.weights_as_gemm(weight), bias, dtype, tune=SMALL)
    ref = F.conv2d(x.float(), weight.float(), bias.float(), padding=1).permute(0, 2, 3, 1)
    tol = TOL[device] if dtype == torch.float32 else 3e-2
    torch.testing.assert_close(out.float(), ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("device", DEVICES)
def test_fp8_conv_divides_each_frame_by_its_own_scale(ck, device):
    x, weight, bias = conv_case(2, 8, 16, 64, 64, device)
    x[1] *= 1000  # a frame scale taken from the wrong frame puts frame 0 or 1 off by 1000x
    rows = nhwc(x)
    wq, w_scale = ck.quantize_weights(ck.weights_as_gemm(weight))
    xq, x_scale = ck.quantize_frames(rows)
    out = ck.conv3x3(xq, wq, bias, torch.float32, x_scale, w_scale, tune=SMALL)
    # exactly the conv of the dequantised operands, up to fp32 summation order
    xd = (xq.double() / x_scale[:, None, None, None]).permute(0, 3, 1, 2)  # fp64: no TF32 in the reference
    wd = (wq.double() / w_scale[:, None]).view(64, 3, 3, 64).permute(0, 3, 1, 2)
    ref = F.conv2d(xd, wd, bias.double(), padding=1).permute(0, 2, 3, 1).float()
    for frame in range(2):
        torch.testing.assert_close(out[frame], ref[frame], rtol=1e-4, atol=1e-4 * float(ref[frame].abs().max()))
    # and near the full-precision conv: e4m3 keeps 3 mantissa bits
    exact = F.conv2d(x, weight, bias, padding=1).permute(0, 2, 3, 1)
    for frame in range(2):
        assert (out[frame] - exact[frame]).abs().max() < 0.1 * exact[frame].abs().max()


@pytest.mark.parametrize("device", DEVICES)
def test_fp8_conv_quantises_unquantised_input_as_quantize_frames_does(ck, device):
    x, weight, bias = conv_case(2, 8, 16, 64, 64, device)
    # Values that scale to e4m3 exactly: Triton's interpreter rounds fp32 to e4m3 without carrying into the
    # exponent (1.95 -> 1.0), which the GPU does not; this checks which scale multiplies which tile.
    x = x.to(torch.float8_e4m3fn).float() * torch.tensor([2.0**-5, 2.0**3], device=device)[:, None, None, None]
    x[0, 0, 0, 0], x[1, 0, 0, 0] = 448 * 2.0**-5, 448 * 2.0**3  # each frame's largest: scales are powers of 2
    rows = nhwc(x)
    wq, w_scale = ck.quantize_weights(ck.weights_as_gemm(weight))
    xq, x_scale = ck.quantize_frames(rows)
    tune = SMALL
    pre = ck.conv3x3(xq, wq, bias, torch.float32, x_scale, w_scale, tune=tune)
    inline = ck.conv3x3(rows, wq, bias, torch.float32, ck.frame_scales(rows), w_scale, tune=tune)
    torch.testing.assert_close(inline, pre, rtol=1e-5, atol=1e-5 * float(pre.abs().max()))


def test_conv3x3_refuses_shapes_it_does_not_tile(ck):
    x = torch.zeros(1, 10, 10, 64)
    with pytest.raises(ValueError, match="does not tile"):
        ck.conv3x3(x, torch.zeros(64, 9 * 64), torch.zeros(64), torch.float32)
    with pytest.raises(ValueError, match="weight"):
        ck.conv3x3(x, torch.zeros(64, 64), torch.zeros(64), torch.float32)
    assert ck.tiles(128 * 128, 256, 256, fp8=True) and not ck.tiles(60 * 60, 256, 256, fp8=False)


def test_head_convs_keep_nn_conv2d_parameters_and_default_to_pytorch():
    laterals = build_lateral_layers(32, 64)
    convs = head_conv.head_convs(laterals)
    assert len(convs) == 7  # 1 + 1 + 2 + 3 sublayers
    assert all(type(c).__bases__ == (torch.nn.Conv2d,) for c in convs)
    assert "0.layers.0.0.weight" in laterals.state_dict()  # the upstream checkpoint's names
    assert head_conv.kernel_of(laterals) == "pytorch"
    assert head_conv.enable(laterals, "gemm") == 0 and head_conv.kernel_of(laterals) == "pytorch"


@pytest.mark.parametrize("device", DEVICES)
def test_head_conv_on_the_kernel_is_the_pytorch_conv(ck, device, monkeypatch):
    plain = HeadConv(128, 128).to(device)
    conv = HeadConv(128, 128).to(device)
    conv.load_state_dict(plain.state_dict())
    assert head_conv.enable(conv, "all") == 1 and conv.kernel == "triton"
    x = randn(1, 128, 8, 16, seed=4, device=device).to(memory_format=torch.channels_last)
    calls = []
    kernel = ck.conv3x3
    monkeypatch.setattr(ck, "conv3x3", lambda *a, **k: calls.append(len(a) > 4) or kernel(*a, **k))
    with torch.no_grad():
        torch.testing.assert_close(conv(x), plain(x), rtol=TOL[device], atol=TOL[device])
        odd = x[:, :, :5, :5]  # 25 pixels: no row tile fits, PyTorch's conv runs
        torch.testing.assert_close(conv(odd), plain(odd), rtol=0, atol=0)
        assert head_conv.enable_fp8(conv) == 1 and conv.kernel == "fp8"
        # FP8 of both operands: within a few e4m3 steps of the conv (3 mantissa bits, 1,152 products)
        ref = plain(x)
        assert (conv(x) - ref).abs().max() < 0.1 * ref.abs().max()
    assert calls == [False, True]  # the kernel ran in bf16/fp32, then in FP8; not for the odd frames


@pytest.mark.skipif(not (HAS_TRITON and CUDA), reason="needs a CUDA GPU with Triton (none in CI)")
def test_compiled_head_conv_runs_the_registered_op_in_bf16():
    plain = HeadConv(256, 256).cuda().bfloat16().to(memory_format=torch.channels_last)
    conv = HeadConv(256, 256).cuda().bfloat16().to(memory_format=torch.channels_last)
    conv.load_state_dict(plain.state_dict())
    head_conv.enable(conv, "all")
    x = randn(4, 256, 32, 32, seed=5, device="cuda").bfloat16().to(memory_format=torch.channels_last)
    with torch.inference_mode():
        torch.testing.assert_close(torch.compile(conv)(x).float(), plain(x).float(), rtol=3e-2, atol=3e-2)
