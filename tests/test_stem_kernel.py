"""The stem's Triton kernel (model/stem_kernel.py) computes what the backbone's Embeddings computes: the 4x4
stride-4 patch embedding of one-channel frames, its bias, and LayerNorm over the output channels.

Without a GPU it runs in Triton's CPU interpreter (conftest sets TRITON_INTERPRET=1): frames that are not square
(a swapped row and column fails), several frames in one program (the frame's offset), channel counts that are
not a power of two (LayerNorm over the real channels only) and pixel counts that leave the last program part
empty are checked against PyTorch's conv and LayerNorm."""

import importlib.util

import pytest
import torch
import torch.nn.functional as F

from peaknet_pipeline.model import fused_ops
from peaknet_pipeline.model.backbone import Embeddings

from .test_fused_kernels import DEVICES, randn

pytestmark = pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="needs triton (interpreter)")


def reference(x, weight, bias, ln_weight, ln_bias, eps=1e-6):
    y = F.conv2d(x, weight, bias, stride=4).permute(0, 2, 3, 1)
    return F.layer_norm(y, (weight.shape[0],), ln_weight, ln_bias, eps)


@pytest.mark.parametrize(
    "shape, channels, tune",
    [
        ((2, 1, 8, 12), 40, None),  # 6 pixels per frame: one program spans both frames, most of it masked
        ((3, 1, 12, 8), 96, {"BLOCK_P": 16}),  # 18 pixels: programs cross frame boundaries, base's channels
        ((1, 1, 4, 20), 24, {"BLOCK_P": 16}),  # one row of patches
    ],
)
@pytest.mark.parametrize("device", DEVICES)
def test_stem_is_conv_then_layernorm(device, shape, channels, tune):
    from peaknet_pipeline.model.stem_kernel import stem

    x = randn(*shape, seed=1, device=device)
    weight = randn(channels, 1, 4, 4, seed=2, device=device)
    bias, ln_w, ln_b = (randn(channels, seed=s, device=device) for s in (3, 4, 5))
    got = stem(x, weight, bias, ln_w, ln_b, 1e-6, tune=tune)
    assert got.shape == (shape[0], shape[2] // 4, shape[3] // 4, channels)
    torch.testing.assert_close(got, reference(x, weight, bias, ln_w, ln_b), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("device", DEVICES)
def test_stem_tells_each_tap_from_its_transpose(device):
    """A frame that is one bright pixel at (row 1, column 2) of the first patch: only tap (1, 2) of the weight
    reaches the output, so a kernel that reads dx for dy gives another pixel's value."""
    from peaknet_pipeline.model.stem_kernel import stem

    x = torch.zeros(1, 1, 8, 8, device=device)
    x[0, 0, 1, 2] = 1.0
    weight = torch.zeros(16, 1, 4, 4, device=device)
    weight[:8, 0, 1, 2] = 1.0  # half the channels see the pixel, half see nothing
    ones, zeros = torch.ones(16, device=device), torch.zeros(16, device=device)
    got = stem(x, weight, zeros, ones, zeros, 1e-6)
    assert got[0, 0, 0, :8].min() > 0.99 and got[0, 0, 0, 8:].max() < -0.99  # (+1, -1) after LayerNorm
    assert got[0, 1:].abs().max() == 0 and got[0, 0, 1:].abs().max() == 0  # the other patches are flat


@pytest.mark.parametrize("device", DEVICES)
def test_embeddings_by_the_kernel_give_the_plain_embeddings(device):
    stem = Embeddings(1, 48)
    with torch.no_grad():
        for i, param in enumerate(stem.parameters()):
            param.copy_(0.3 * randn(*param.shape, seed=10 + i, device="cpu") + (param.dim() == 1))
    stem = stem.to(device).eval()
    x = randn(2, 1, 16, 24, seed=7, device=device)
    with torch.no_grad():
        expected = stem(x)
        assert fused_ops.enable(stem, "all") == 1 and stem.by_kernel
        got = stem(x)
    assert got.shape == expected.shape == (2, 48, 4, 6)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_stem_refuses_what_does_not_fit():
    from peaknet_pipeline.model import stem_kernel as sk

    assert sk.fusable(1, 96, (4, 4), (4, 4)) and sk.fusable(1, 512, (4, 4), (4, 4))
    assert not sk.fusable(2, 96, (4, 4), (4, 4)) and not sk.fusable(1, 96, (2, 2), (2, 2))
    assert not sk.fusable(1, 1024, (4, 4), (4, 4))  # more channels than a program's registers hold
    x, ln = torch.zeros(1, 1, 8, 10), (torch.ones(8), torch.zeros(8), 1e-6)
    with pytest.raises(ValueError, match="multiples of 4"):
        sk.stem(x, torch.zeros(8, 1, 4, 4), torch.zeros(8), *ln)
    assert not fused_ops.stem_fusable(x, Embeddings(1, 8).patch_embeddings)  # 10 columns: the plain path
