"""The head's GroupNorm-GELU-projection kernels (model/head_kernel.py) compute what the finest head lateral's
PyTorch ops compute after its conv: GroupNorm, exact GELU and the 1x1 conv to the class channels.

Without a GPU they run in Triton's CPU interpreter (conftest sets TRITON_INTERPRET=1): several frames and several
tiles per frame (the tiles' statistics merged), frames that are not square, groups that are not the whole map, a
mean far from zero (the merge keeps the variance exact) and three classes are checked against PyTorch's ops."""

import importlib.util

import pytest
import torch
import torch.nn.functional as F

from peaknet_pipeline.model import fused_ops
from peaknet_pipeline.model.head import SegLateral, build_lateral_layers, segmentation_logits

from .test_fused_kernels import DEVICES, randn

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="needs triton (interpreter)"),
    pytest.mark.usefixtures("exact_reference_convs"),  # conftest: IEEE fp32 convs in the references
]


def reference(x, conv_bias, groups, gn_w, gn_b, eps, weight, bias):
    return F.conv2d(F.gelu(F.group_norm(x + conv_bias.view(1, -1, 1, 1), groups, gn_w, gn_b, eps)), weight, bias)


def nhwc(x):
    return x.permute(0, 2, 3, 1).contiguous()


@pytest.mark.parametrize(
    "n, c, h, w, groups, classes, offset",
    [
        (2, 32, 8, 16, 4, 2, 0.0),  # two tiles of 64 pixels per frame, 8 channels per group
        (1, 64, 16, 8, 8, 3, 5.0),  # a mean of 5 against a spread of ~1: the merge must not cancel
        (3, 16, 8, 8, 16, 1, 0.0),  # one channel per group, one tile per frame
    ],
)
@pytest.mark.parametrize("device", DEVICES)
def test_norm_gelu_project_is_groupnorm_gelu_then_1x1_conv(device, n, c, h, w, groups, classes, offset):
    from peaknet_pipeline.model.head_kernel import norm_gelu_project

    x = randn(n, c, h, w, seed=1, device=device) + offset
    x = x + torch.arange(c, device=device).view(1, c, 1, 1) * 0.1  # groups with different means
    gn_w, gn_b = randn(c, seed=2, device=device) + 1, randn(c, seed=3, device=device)
    weight, bias = randn(classes, c, 1, 1, seed=4, device=device), randn(classes, seed=5, device=device)
    conv_bias = randn(c, seed=6, device=device) * 2  # the 3x3 conv's, added by the kernels
    got = norm_gelu_project([nhwc(x)], [conv_bias], groups, [gn_w], [gn_b], [1e-5], weight, bias)
    expected = reference(x, conv_bias, groups, gn_w, gn_b, 1e-5, weight, bias)
    assert got.shape == expected.shape == (n, classes, h, w) and got.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("levels", [2, 3])
@pytest.mark.parametrize("device", DEVICES)
def test_levels_are_normalised_apart_then_summed_and_projected_without_bias(device, levels):
    """Each level with its own statistics, GroupNorm parameters and eps: a level read with another's scale, or
    left out of the sum, gives other logits."""
    from peaknet_pipeline.model.head_kernel import norm_gelu_project

    n, c, h, w, groups = 2, 32, 8, 16, 4
    xs = [randn(n, c, h, w, seed=10 + lv, device=device) * (1 + lv) + 2 * lv for lv in range(levels)]
    gn_ws = [randn(c, seed=20 + lv, device=device) + 1 for lv in range(levels)]
    gn_bs = [randn(c, seed=30 + lv, device=device) for lv in range(levels)]
    eps = [1e-5 * 10**lv for lv in range(levels)]
    conv_bs = [randn(c, seed=40 + lv, device=device) for lv in range(levels)]
    weight = randn(2, c, 1, 1, seed=4, device=device)
    got = norm_gelu_project([nhwc(x) for x in xs], conv_bs, groups, gn_ws, gn_bs, eps, weight, None)
    levels = zip(xs, conv_bs, gn_ws, gn_bs, eps)
    summed = sum(F.gelu(F.group_norm(x + cb.view(1, -1, 1, 1), groups, g, b, e)) for x, cb, g, b, e in levels)
    torch.testing.assert_close(got, F.conv2d(summed, weight), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("device", DEVICES)
def test_group_stats_tell_frames_and_groups_apart(device):
    """Frame f's group g filled with the value 10 f + g (and noise in one group): a mixed-up frame or group index
    gives another mean."""
    from peaknet_pipeline.model.head_kernel import group_stats

    n, h, w, c, groups = 2, 8, 16, 8, 4
    x = torch.zeros(n, h, w, c, device=device)
    for f in range(n):
        for g in range(groups):
            x[f, :, :, 2 * g : 2 * g + 2] = 10 * f + g
    x[1, :, :, 6:] += randn(h, w, 2, seed=9, device=device)
    bias = torch.tensor([0.0, 0, 0, 0, 0, 0, 1, -1], device=device)  # evens out over group 3: its mean stays
    mean, var = group_stats(x - bias, bias, groups)
    expected_mean = torch.tensor([[0.0, 1, 2, 3], [10, 11, 12, 13]], device=device)
    expected_mean[1, 3] += x[1, :, :, 6:].mean() - 13
    torch.testing.assert_close(mean, expected_mean)
    assert var[0].abs().max() < 1e-6 and var[1, :3].abs().max() < 1e-6
    torch.testing.assert_close(var[1, 3], x[1, :, :, 6:].var(correction=0))


def random_head(device: str):
    laterals = build_lateral_layers(32, 32).to(device).eval()
    segmask = torch.nn.Conv2d(32, 2, kernel_size=1).to(device)
    with torch.no_grad():
        for i, param in enumerate([*laterals.parameters(), *segmask.parameters()]):
            param.copy_(0.3 * randn(*param.shape, seed=20 + i, device="cpu") + (param.dim() == 1))
    features = [randn(2, 32, 16 // s, 16 // s, seed=s, device=device) for s in (1, 2, 4, 8)]
    return laterals, segmask, features


@pytest.mark.parametrize("device", DEVICES)
def test_head_with_the_kernels_gives_the_plain_heads_logits(device):
    laterals, segmask, features = random_head(device)
    with torch.no_grad():
        expected = segmentation_logits(features, laterals, segmask, None)
        assert fused_ops.enable(laterals, "all") == 4
        got = segmentation_logits(features, laterals, segmask, None)
        for lateral in laterals[1:]:  # the finest lateral alone by the kernels, the coarser ones summed by PyTorch
            lateral.by_kernel = False
        got_finest = segmentation_logits(features, laterals, segmask, None)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(got_finest, expected, rtol=1e-4, atol=1e-4)


def test_levels_that_do_not_fit_stay_plain():
    from peaknet_pipeline.model import head_kernel as hk

    assert hk.fusable(256, 32, 128 * 128, 2) and not hk.fusable(96, 32, 4096, 2)  # 96: not a power of two
    assert not hk.fusable(256, 32, 32, 2) and not hk.fusable(256, 32, 4096, 8)  # half a tile; too many classes
    conv, norm = SegLateral(32, 32, 1, upsample=False).layers[0][:2]
    tile = torch.zeros(1, 32, 8, 8)
    assert fused_ops.head_fusable(tile, conv, norm.num_groups, 2) == fused_ops.runs_kernels(tile)  # CPU: interpreter
    assert not fused_ops.head_fusable(torch.zeros(1, 32, 4, 4), conv, norm.num_groups, 2)  # less than a tile
    strided = torch.nn.Conv2d(32, 32, 3, padding=1, stride=2)  # not the 'same' conv the kernels assume
    assert not fused_ops.head_fusable(torch.zeros(1, 32, 16, 16), strided, norm.num_groups, 2)
    args = [norm.bias], norm.num_groups, [norm.weight], [norm.bias], [norm.eps], torch.zeros(2, 32, 1, 1), None
    with pytest.raises(ValueError, match="whole 64-pixel tiles"):
        hk.norm_gelu_project([torch.zeros(1, 4, 4, 32)], *args)
    with pytest.raises(ValueError, match="levels of one shape"):
        hk.norm_gelu_project([torch.zeros(1, 8, 8, 32), torch.zeros(1, 8, 16, 32)], *args)


def test_projection_launch_settings_give_the_same_logits_and_refuse_partial_tiles():
    """bench_head.py's sweep: another tile of pixels gives the same logits; one that does not divide a frame is
    refused instead of leaving pixels unwritten."""
    from peaknet_pipeline.model.head_kernel import norm_gelu_project

    if not fused_ops.runs_kernels(torch.zeros(1)):
        pytest.skip("needs Triton's interpreter (CI) or a GPU")
    x, conv_bias = nhwc(randn(2, 32, 8, 16, seed=1, device="cpu")), randn(32, seed=2, device="cpu")
    args = (
        [x],
        [conv_bias],
        4,
        [torch.ones(32)],
        [torch.zeros(32)],
        [1e-5],
        randn(2, 32, 1, 1, seed=3, device="cpu"),
        None,
    )
    torch.testing.assert_close(norm_gelu_project(*args, tune={"BLOCK_P": 32, "num_warps": 4}), norm_gelu_project(*args))
    with pytest.raises(ValueError, match="not whole tiles"):
        norm_gelu_project(*args, tune={"BLOCK_P": 256})
