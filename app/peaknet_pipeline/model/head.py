"""Segmentation head: every BiFPN level to 1/4 resolution, summed, then class logits at full size."""

from __future__ import annotations

import torch
from torch import nn

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def build_lateral_layers(features: int, seg_channels: int) -> nn.ModuleList:
    return nn.ModuleList(
        SegLateral(features, seg_channels, n, upsample=level > 0) for level, n in enumerate(SUBLAYERS_PER_LEVEL)
    )


def segmentation_logits(
    summed: torch.Tensor, head_segmask: nn.Conv2d, head_upsample_layer: nn.Module | None
) -> torch.Tensor:
    logits = upsample_fp32(head_segmask(summed), 4.0)
    if head_upsample_layer is not None:
        logits = logits + head_upsample_layer(summed)
    return logits
