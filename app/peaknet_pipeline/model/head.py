"""Segmentation head: every BiFPN level to 1/4 resolution, summed, then class logits at full size."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import fused_ops
from .layers import GroupNorm, resize_bilinear, upsample_fp32

SUBLAYERS_PER_LEVEL = (1, 1, 2, 3)  # strides 4, 8, 16, 32
GROUPS = 32


class Upsample2x(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return resize_bilinear(x, 2)


def lateral_sublayer(in_ch: int, out_ch: int, upsample: bool) -> nn.Sequential:
    parts = [nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1), GroupNorm(GROUPS, out_ch), nn.GELU()]
    if upsample:
        parts.append(Upsample2x())
    return nn.Sequential(*parts)


class SegLateral(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, sublayers: int, upsample: bool):
        super().__init__()
        self.layers = nn.Sequential(
            *[lateral_sublayer(in_ch if s == 0 else out_ch, out_ch, upsample) for s in range(sublayers)]
        )
        # fused_ops.enable: the last GroupNorm, GELU and the projection by Triton kernels where they fit (CUDA)
        self.by_kernel = False
        self.kernel_modes = fused_ops.HEAD_MODES

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)

    def last_sublayer(self, x: torch.Tensor) -> tuple[torch.Tensor, nn.Sequential]:
        """The last sublayer's input, and the sublayer (conv, GroupNorm, GELU)."""
        return self.layers[:-1](x), self.layers[-1][:3]


def build_lateral_layers(features: int, seg_channels: int) -> nn.ModuleList:
    return nn.ModuleList(
        SegLateral(features, seg_channels, n, upsample=level > 0) for level, n in enumerate(SUBLAYERS_PER_LEVEL)
    )


def project(x: torch.Tensor, conv: nn.Conv2d, bias: bool) -> torch.Tensor:
    """conv (1x1, to the few class channels) of x, in fp32, with or without its bias."""
    if torch.compiler.is_compiling():
        y = project_by_reduction(x, conv.weight.flatten(1))
    else:  # eager, the broadcast below would allocate classes x the input
        y = F.conv2d(x, conv.weight).float()
    return y + conv.bias.float().view(-1, 1, 1) if bias else y


def project_by_reduction(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """x (N, C, H, W) times weight (K, C) over C, as sums over the NHWC view in fp32: compiled, these fuse with
    the GroupNorm and GELU that make x (a 1x1 conv is an extern kernel that needs x written first). One sum
    per output channel, so the GELU is computed once for all of them, not once per (channel, input) pair."""
    y = x.permute(0, 2, 3, 1).float()
    return torch.stack([(y * w).sum(-1) for w in weight.float()], dim=1)


def projected_sum(laterals: list[SegLateral], features: list[torch.Tensor], conv: nn.Conv2d, bias: bool):
    """conv (1x1, to the few class channels, in fp32, with or without its bias) of the sum of the laterals' outputs
    less their last upsample (which must share a resolution); by the head's kernels where every lateral's switch
    is on and they fit."""
    lasts = [lateral.last_sublayer(f) for lateral, f in zip(laterals, features)]
    x, (conv3, norm, _) = lasts[0]
    if all(lat.by_kernel for lat in laterals) and fused_ops.head_fusable(x, conv3, norm.num_groups, len(conv.weight)):
        return fused_ops.fused_norm_gelu_project(lasts, conv, bias)
    return project(sum(sub(x) for x, sub in lasts), conv, bias)


def segmentation_logits(
    features: list[torch.Tensor],
    laterals: nn.ModuleList,
    head_segmask: nn.Conv2d,
    head_upsample_layer: nn.Module | None,
) -> torch.Tensor:
    """head_segmask(sum of the laterals) upsampled x4. The 1x1 conv and bilinear upsampling are both linear
    (and the interpolation weights sum to one), so the conv runs before the upsampling: the three coarser
    levels are summed at 1/8 resolution and projected there, and no 256-channel map is written at 1/4."""
    if head_upsample_layer is not None:  # the learned upsample needs the summed features themselves
        summed = sum(lateral(f) for lateral, f in zip(laterals, features))
        logits = upsample_fp32(head_segmask(summed), 4.0)
        return logits + head_upsample_layer(summed)
    fine = projected_sum(laterals[:1], features[:1], head_segmask, bias=True)
    coarse = projected_sum(laterals[1:], features[1:], head_segmask, bias=False)
    quarter = fine + resize_bilinear(coarse, 2)
    return resize_bilinear(quarter, 4.0).to(features[0].dtype)
