"""The speed rewrites in the PeakNet model compute what the plain forms they replace compute (fp32)."""

import pytest
import torch
import torch.nn.functional as F

from peaknet_pipeline.model.backbone import GRN, grn_linear
from peaknet_pipeline.model.bifpn import DepthwiseSeparableConv
from peaknet_pipeline.model.head import build_lateral_layers, project_by_reduction, segmentation_logits
from peaknet_pipeline.model.layers import GroupNorm, resize_bilinear

LAYOUTS = [torch.contiguous_format, torch.channels_last]


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("scale", [2.0, 4.0, 0.5])
@pytest.mark.parametrize("shape", [(2, 5, 8, 6), (1, 3, 2, 4)])
def test_resize_is_bilinear_interpolation(shape, scale, layout):
    x = randn(*shape).to(memory_format=layout)
    expected = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
    torch.testing.assert_close(resize_bilinear(x, scale), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_group_norm_is_torch_group_norm(layout):
    ours, theirs = GroupNorm(4, 16), torch.nn.GroupNorm(4, 16)
    with torch.no_grad():
        theirs.weight.copy_(randn(16, seed=1))
        theirs.bias.copy_(randn(16, seed=2))
    ours.load_state_dict(theirs.state_dict())  # same parameter names, so checkpoints load unchanged
    x = (randn(2, 16, 5, 7) * 3 + 1).to(memory_format=layout)
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-5)


def test_grn_folded_into_the_linear_layer_is_grn_then_linear():
    grn, linear = GRN(24), torch.nn.Linear(24, 6)
    with torch.no_grad():
        grn.weight.copy_(randn(1, 1, 1, 24, seed=1))
        grn.bias.copy_(randn(1, 1, 1, 24, seed=2))
    x = randn(3, 5, 4, 24)  # NHWC, frames with different statistics
    x[1] *= 10
    with torch.no_grad():
        torch.testing.assert_close(grn_linear(x, grn, linear), linear(grn(x)), rtol=1e-5, atol=1e-5)


def test_depthwise_1x1_folded_into_the_pointwise_conv_is_both_convs():
    conv = DepthwiseSeparableConv(8)
    with torch.no_grad():
        conv.depthwise_conv.weight.copy_(randn(8, 1, 1, 1, seed=3))
    x = randn(2, 8, 6, 6)
    with torch.no_grad():
        expected = conv.pointwise_conv(conv.depthwise_conv(x))
        torch.testing.assert_close(conv(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("learned_upsample", [True, False])
def test_the_model_compiles_as_one_graph_and_matches_eager(learned_upsample):
    """torch.compile(fullgraph=True) must take the whole model, custom copy op included, with eager's numbers
    (inductor's CPU backend here; the GPU runs the same graph through Triton)."""
    from peaknet_pipeline.model.peaknet import PeakNet, PeakNetArch

    arch = PeakNetArch(
        backbone_hidden_sizes=(8, 16, 32, 64),
        backbone_depths=(1, 1, 1, 1),
        bifpn_num_features=32,
        seg_out_channels=32,
        uses_learned_upsample=learned_upsample,
    )
    torch.manual_seed(0)
    model = PeakNet(arch).eval().to(memory_format=torch.channels_last)
    x = randn(2, 1, 64, 64).to(memory_format=torch.channels_last)
    with torch.no_grad():
        expected = model(x)
        got = torch.compile(model, fullgraph=True)(x)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_head_projecting_before_upsampling_is_upsampling_the_summed_levels():
    """The head's 1x1 conv runs on the levels before their last upsample (both are linear); the plain order,
    sum at 1/4 resolution, conv, x4, gives the same logits."""
    torch.manual_seed(0)
    laterals, segmask = build_lateral_layers(32, 32), torch.nn.Conv2d(32, 2, kernel_size=1)
    for p in [*laterals.parameters(), *segmask.parameters()]:
        p.data.normal_()  # GroupNorm's unit weights would hide a level mixed up
    features = [randn(2, 32, 32 // 2**lv, 40 // 2**lv, seed=lv) for lv in range(4)]
    with torch.no_grad():
        summed = sum(lateral(f) for lateral, f in zip(laterals, features))
        expected = F.interpolate(segmask(summed), scale_factor=4.0, mode="bilinear", align_corners=False)
        got = segmentation_logits(features, laterals, segmask, None)
    assert got.shape == (2, 2, 128, 160)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_projection_by_reduction_is_the_1x1_conv():
    x, w = randn(2, 16, 5, 7).to(memory_format=torch.channels_last), randn(3, 16, seed=1)
    torch.testing.assert_close(project_by_reduction(x, w), F.conv2d(x, w.view(3, 16, 1, 1)), rtol=1e-5, atol=1e-5)
