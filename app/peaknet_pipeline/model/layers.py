"""Small building blocks shared by backbone, BiFPN and head."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ChannelsFirstLayerNorm(nn.Module):
    """LayerNorm over C of an (N, C, H, W) tensor; parameters named like upstream (weight, bias)."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalising the NHWC view is one fused kernel, and free to permute under channels_last.
        y = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


def upsample_fp32(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Bilinear resampling computed in fp32 and cast back, as upstream does under autocast."""
    return F.interpolate(x.float(), scale_factor=scale, mode="bilinear", align_corners=False).to(x.dtype)
