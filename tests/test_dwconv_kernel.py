"""The depthwise 7x7 Triton kernel (model/dwconv_kernel.py) computes nn.Conv2d(groups=C, padding=3)'s output.

Without a GPU it runs in Triton's CPU interpreter (conftest sets TRITON_INTERPRET=1): every tap's position,
the borders' zero padding, the bias, frames that do not fill the last strip or channel block, and strips that
walk fewer rows than the frame has (several programs down one column) are checked against PyTorch's conv."""

import importlib.util

import pytest
import torch
import torch.nn.functional as F

from .test_fused_kernels import DEVICES, randn

pytestmark = pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="needs triton (interpreter)")


def conv_pair(n: int, h: int, w: int, c: int, device: str, tune: dict | None = None):
    from peaknet_pipeline.model.dwconv_kernel import dwconv7

    x = randn(n, c, h, w, seed=1, device=device)
    weight = randn(c, 1, 7, 7, seed=2, device=device)
    bias = randn(c, seed=3, device=device)
    expected = F.conv2d(x, weight, bias, padding=3, groups=c).permute(0, 2, 3, 1)
    got = dwconv7(x.permute(0, 2, 3, 1).contiguous(), weight, bias, tune=tune)
    return got, expected


@pytest.mark.parametrize(
    "shape, tune",
    [
        ((2, 11, 13, 40), {"BLOCK_H": 4}),  # ragged strips, rows and channel blocks; 3 row blocks
        ((1, 16, 16, 32), None),  # the model's launch settings: one program walks the whole column
        ((1, 7, 5, 8), None),  # a frame narrower than the kernel: every tap reaches a border
        ((1, 9, 18, 8), {"BLOCK_H": 2, "BLOCK_S": 2}),  # 3 programs across, the last's second strip outside
        ((1, 6, 7, 8), {"BLOCK_S": 1}),  # a strip's last pixel past the edge, where the next row begins
    ],
)
@pytest.mark.parametrize("device", DEVICES)
def test_dwconv7_is_pytorch_depthwise_conv(device, shape, tune):
    got, expected = conv_pair(*shape, device, tune)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("device", DEVICES)
def test_dwconv7_taps_are_not_symmetric_in_use(device):
    """A kernel with one tap set tells row from column and up from down: a transposed or flipped tap fails."""
    from peaknet_pipeline.model.dwconv_kernel import dwconv7

    c = 8
    x = torch.zeros(1, 9, 9, c, device=device)
    x[0, 4, 4] = 1.0  # an impulse: the output is the kernel itself, flipped
    weight = torch.zeros(c, 1, 7, 7, device=device)
    weight[:, 0, 1, 5] = torch.arange(1.0, c + 1)  # dy = 1, dx = 5, a different value per channel
    out = dwconv7(x, weight, torch.zeros(c, device=device))
    hits = out[0].abs().sum(-1).nonzero().tolist()
    assert hits == [[4 - (1 - 3), 4 - (5 - 3)]]  # cross-correlation: output (y, x) reads input (y + dy - 3, x + dx - 3)
    torch.testing.assert_close(out[0, 6, 2], torch.arange(1.0, c + 1, device=device))


@pytest.mark.parametrize("device", DEVICES)
def test_dwconv7_takes_an_nhwc_view_of_an_nchw_tensor(device):
    """A dense tensor in another memory order (an NCHW tensor's NHWC view) comes back right, dense NHWC."""
    from peaknet_pipeline.model.dwconv_kernel import dwconv7

    x, weight = randn(2, 8, 9, 10, seed=1, device=device), randn(8, 1, 7, 7, seed=2, device=device)
    bias = randn(8, seed=3, device=device)
    got = dwconv7(x.permute(0, 2, 3, 1), weight, bias)
    assert got.is_contiguous()
    torch.testing.assert_close(
        got, F.conv2d(x, weight, bias, padding=3, groups=8).permute(0, 2, 3, 1), rtol=1e-5, atol=1e-4
    )


def test_dwconv7_refuses_a_kernel_that_is_not_7x7_depthwise():
    from peaknet_pipeline.model.dwconv_kernel import dwconv7

    with pytest.raises(ValueError, match=r"weight \(C, 1, 7, 7\) for C=8"):
        dwconv7(torch.zeros(1, 8, 8, 8), torch.zeros(8, 1, 5, 5), torch.zeros(8))
