"""The BiFPN step's Triton kernel (model/bifpn_kernel.py) computes what BiFPNBlock's PyTorch ops compute: the
weighted fusion with the other level upsampled x2 (bilinear, align_corners=False) or averaged 2x2, the 1x1 conv
(depthwise scale folded in), LayerNorm over the channels, GELU and the residual.

Without a GPU it runs in Triton's CPU interpreter (conftest sets TRITON_INTERPRET=1): frames that are not square
(a swapped row and column index fails), several frames (the frame's offset), borders where the upsampling clamps,
and channel tiles (K in several steps) are checked against the module."""

import importlib.util

import pytest
import torch
import torch.nn.functional as F

from peaknet_pipeline.model import fused_ops
from peaknet_pipeline.model.bifpn import BiFPN, conv_block
from peaknet_pipeline.model.fused_ops import nhwc

from .test_fused_kernels import DEVICES, randn

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="needs triton (interpreter)"),
    pytest.mark.usefixtures("exact_reference_convs"),  # conftest: IEEE fp32 convs in the references
]


def randomised(module: torch.nn.Module, device: str) -> torch.nn.Module:
    """The module with random parameters (fusion weights positive), on `device`, in eval mode."""
    with torch.no_grad():
        for i, (name, param) in enumerate(module.named_parameters()):
            r = randn(*param.shape, seed=100 + i, device="cpu")
            param.copy_(r.abs() + 0.3 if name.endswith(("w_m", "w_q")) else 0.3 * r + (param.dim() == 1))
    return module.to(device).eval()


@pytest.mark.parametrize("p_bias", [False, True])
@pytest.mark.parametrize("resample", ["up", "down"])
@pytest.mark.parametrize("device", DEVICES)
def test_bifpn_step_is_the_modules_step(device, resample, p_bias):
    """With p_bias, p comes without a bias that the kernel adds (to the fused input and to the residual)."""
    from peaknet_pipeline.model import bifpn_kernel as bk

    n, c, h, w = 2, 128, 4, 8  # K in two tiles of 64; 32 pixels per frame: one 32-row tile each
    conv = randomised(conv_block(c), device)
    p, m = randn(n, c, h, w, seed=1, device=device), randn(n, c, h, w, seed=2, device=device)
    coarse, fine = randn(n, c, h // 2, w // 2, seed=3, device=device), randn(n, c, 2 * h, 2 * w, seed=4, device=device)
    coef = torch.tensor([0.3, 0.45, 0.25], device=device)
    bias = randn(c, seed=5, device=device) if p_bias else None
    given = p - bias.view(1, c, 1, 1) if p_bias else p  # what the kernel reads: p less its bias
    with torch.no_grad():
        if resample == "up":
            up = F.interpolate(coarse, scale_factor=2, mode="bilinear", align_corners=False)
            expected = conv(coef[0] * p + coef[2] * up) + p
            got = bk.bifpn_step(nhwc(given), None, nhwc(coarse), bk.UP, coef, *folded(conv, c), bias)
        else:
            expected = conv(coef[0] * p + coef[1] * m + coef[2] * F.avg_pool2d(fine, 2)) + p
            got = bk.bifpn_step(nhwc(given), nhwc(m), nhwc(fine), bk.DOWN, coef, *folded(conv, c), bias)
    torch.testing.assert_close(got, nhwc(expected), rtol=1e-4, atol=1e-4)


def folded(conv, c: int):
    """The kernel's weight (the depthwise 1x1 scale folded into the pointwise conv) and LayerNorm's parameters."""
    ln = conv[1]
    return conv[0].folded_weight().view(c, c), ln.weight, ln.bias, ln.eps


@pytest.mark.parametrize("device", DEVICES)
def test_bifpn_blocks_by_the_kernel_give_the_plain_blocks_outputs(device):
    c = 32
    net = randomised(BiFPN(c, num_blocks=2), device)
    # levels of 8x16 down to 1x2: the coarsest (2 pixels) does not tile, so its steps stay plain
    levels = [randn(2, c, 8 // s, 16 // s, seed=s, device=device) for s in (1, 2, 4, 8)]
    with torch.no_grad():
        expected = net(levels)
        assert fused_ops.enable(net, "all") == 2
        got = net(levels)
    for e, g in zip(expected, got):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("device", DEVICES)
def test_adapters_biases_added_by_the_first_blocks_kernel_give_the_plain_outputs(device):
    """BiFPN.by_kernel (fused_ops.BIFPN_BIAS_MODES): the adapters' 1x1 convs run without their bias on the levels
    whose first steps run the kernel, which adds it; the coarsest level keeps it."""
    c = 32
    net = randomised(BiFPN(c, num_blocks=2), device)
    adapters = randomised(torch.nn.ModuleList(torch.nn.Conv2d(16, c, 1) for _ in range(4)), device)
    hidden = [randn(2, 16, 32 // s, 64 // s, seed=s, device=device) for s in (1, 2, 4, 8)]  # each level tiles
    with torch.no_grad():
        expected = net(*net.adapted(adapters, hidden))
        fused_ops.enable(net, "all")
        net.by_kernel = True
        outputs, biases = net.adapted(adapters, hidden)
        got = net(outputs, biases)
    assert [b is not None for b in biases] == [True, True, True, False]  # the coarsest is also resampled
    torch.testing.assert_close(outputs[0], adapters[0](hidden[0]) - adapters[0].bias.view(1, c, 1, 1))
    for e, g in zip(expected, got):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-4)


def test_bifpn_step_refuses_levels_that_do_not_fit():
    from peaknet_pipeline.model import bifpn_kernel as bk

    assert bk.fusable(256, 128 * 128) and not bk.fusable(96, 64) and not bk.fusable(512, 64)
    assert not bk.fusable(32, 4)  # a 2x2 level: no 16-row tile
    p, coef, weight = torch.zeros(1, 4, 4, 16), torch.ones(3), torch.zeros(16, 16)
    ln = torch.ones(16), torch.zeros(16), 1e-6
    with pytest.raises(ValueError, match="expected"):
        bk.bifpn_step(p, None, torch.zeros(1, 4, 4, 16), bk.UP, coef, weight, *ln)  # not the coarser level
