"""Small building blocks shared by backbone, BiFPN and head, written for what torch.compile makes of them
on channels_last tensors (see resize_bilinear and GroupNorm); numerically the library ops they replace."""

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


class GroupNorm(nn.GroupNorm):
    """nn.GroupNorm (same parameters), with statistics taken over the NHWC view in fp32. The library op groups
    channels as (N, G, C/G * H * W), which on a channels_last tensor costs inductor a layout copy; the NHWC
    view needs none."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = x.permute(0, 2, 3, 1).float().reshape(n, h * w, self.num_groups, c // self.num_groups)
        var, mean = torch.var_mean(g, dim=(1, 3), correction=0, keepdim=True)
        y = ((g - mean) * torch.rsqrt(var + self.eps)).reshape(n, h, w, c) * self.weight + self.bias
        return y.to(x.dtype).permute(0, 3, 1, 2)


@torch.library.custom_op("peaknet::materialize", mutates_args=())
def materialize(x: torch.Tensor) -> torch.Tensor:
    """A copy that torch.compile cannot see through, so the tensor is written once: `realize` where gradients
    flow, and GRN's folded bias."""
    return x.clone()


@materialize.register_fake
def _(x: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x)


materialize.register_autograd(lambda ctx, grad: grad)  # a copy passes gradients through (fine-tuning)


@torch.library.custom_op("peaknet::realize_", mutates_args=("x",))
def realize_(x: torch.Tensor) -> None:
    """Nothing. Compiled, an op that may write x makes inductor store x once, and the ops after it read that,
    instead of recomputing x's elementwise chain in each: `materialize` without its copy (a device-to-device
    copy per resampled level). Not for tensors that need gradients (autograd rejects in-place custom ops)."""


@realize_.register_fake
def _(x: torch.Tensor) -> None:
    return None


def realize(x: torch.Tensor) -> torch.Tensor:
    """x, stored once (realize_) where no gradient flows, else through a copy (materialize)."""
    if x.requires_grad:
        return materialize(x)
    realize_(x)
    return x


def resize_bilinear(x: torch.Tensor, scale: float) -> torch.Tensor:
    """F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False).

    Compiled, interpolation reads four source pixels per output and inductor would recompute the elementwise
    chain that produced the source (LayerNorm or GroupNorm, GELU, residual) at each of them, so the source is
    materialised first (docs/performance.md, "The model's own kernels").
    """
    if scale == 0.5:
        return F.avg_pool2d(x, 2)  # sources at 2i + 0.5: exactly the mean of each 2x2 block
    return F.interpolate(realize(x), scale_factor=scale, mode="bilinear", align_corners=False)


def upsample_fp32(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Bilinear resampling computed in fp32 and cast back, as upstream does under autocast."""
    return resize_bilinear(x.float(), scale).to(x.dtype)
