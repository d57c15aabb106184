"""ConvNeXtV2 backbone with Hugging Face ConvNextV2Backbone's parameter names and numerics."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import fp8_ops, fused_ops
from .layers import ChannelsFirstLayerNorm, materialize


class GRN(nn.Module):
    """Global response normalisation on NHWC input."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1, 1, 1, dim))
        self.bias = nn.Parameter(torch.zeros(1, 1, 1, dim))

    def scale(self, x: torch.Tensor) -> torch.Tensor:
        """s with GRN(x) = x * s + bias: (N, 1, 1, C), one factor per frame and channel."""
        return self.scale_from_norm(torch.linalg.vector_norm(x, ord=2, dim=(1, 2), keepdim=True))

    def scale_from_norm(self, gx: torch.Tensor) -> torch.Tensor:
        """The same from the L2 norms over H and W, channels last in gx."""
        return 1 + self.weight.view(-1) * (gx / (gx.mean(dim=-1, keepdim=True) + 1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale(x) + self.bias

    def fold_into(self, linear: nn.Linear, scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """linear after GRN as one linear layer per frame: the channel scale (N, C) goes into a per-frame copy
        of the (small) weight, (N, out, C) in the weight's dtype, and GRN's bias into the layer's bias."""
        weight = (linear.weight.unsqueeze(0) * scale.unsqueeze(1)).to(linear.weight.dtype)
        return weight, self.folded_bias(linear)

    def folded_bias(self, linear: nn.Linear) -> torch.Tensor:
        """linear's bias plus GRN's bias passed through the layer. Written apart: compiled, inductor fused this
        matrix-vector product into the per-frame weight's kernel and redid it for every weight element."""
        return materialize(linear.bias + linear.weight @ self.bias.view(-1))


def grn_linear(x: torch.Tensor, grn: GRN, linear: nn.Linear) -> torch.Tensor:
    """linear(grn(x)) without writing grn(x) (GRN.fold_into), so the wide activation is read once."""
    n, h, w, c = x.shape
    weight, bias = grn.fold_into(linear, grn.scale(x).view(n, c))
    y = torch.baddbmm(bias, x.reshape(n, h * w, c), weight.transpose(1, 2))
    return y.view(n, h, w, -1)


class ConvNeXtV2Block(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.layernorm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.grn = GRN(4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.fused = "none"  # fused_ops.enable: Triton kernels instead (CUDA)
        self.fp8 = False  # fp8_ops.enable: the two GEMMs in FP8 (precision fp8; before the fused kernels)
        self.gelu = "none"  # fused_ops.set_gelu: "tanh" for GELU's tanh form (F.gelu's approximate)
        self.tanh_kernel_modes = fused_ops.TANH_KERNEL_MODES  # the fused modes that run the tanh form in our GEMM

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fp8:
            return fp8_ops.convnext_block(self, x)
        if self.fused in fused_ops.GEMM_MODES and fused_ops.fusable(x):
            return fused_ops.convnext_block(self, x)
        h = F.gelu(self.pwconv1(self.layernorm(self.depthwise(x))), approximate=self.gelu)
        y = grn_linear(h, self.grn, self.pwconv2)
        return x + y.permute(0, 3, 1, 2)

    def depthwise(self, x: torch.Tensor) -> torch.Tensor:
        """The depthwise 7x7 of (N, C, H, W) as (N, H, W, C): cuDNN's, or the Triton kernel's (fused modes)."""
        if self.fused in fused_ops.DWCONV_MODES:
            return fused_ops.depthwise(self.dwconv, x)
        return self.dwconv(x).permute(0, 2, 3, 1)


class ConvNeXtV2Stage(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, depth: int, downsample: bool):
        super().__init__()
        self.downsampling_layer = (
            nn.Sequential(ChannelsFirstLayerNorm(in_dim), nn.Conv2d(in_dim, out_dim, kernel_size=2, stride=2))
            if downsample
            else nn.Identity()
        )
        self.layers = nn.Sequential(*[ConvNeXtV2Block(out_dim) for _ in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(self.downsampling_layer(x))


class Embeddings(nn.Module):
    def __init__(self, num_channels: int, dim: int):
        super().__init__()
        self.patch_embeddings = nn.Conv2d(num_channels, dim, kernel_size=4, stride=4)
        self.layernorm = ChannelsFirstLayerNorm(dim)
        self.by_kernel = False  # fused_ops.enable: the conv and LayerNorm by one Triton kernel where it fits (CUDA)
        self.kernel_modes = fused_ops.STEM_MODES

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.by_kernel and fused_ops.stem_fusable(x, self.patch_embeddings):
            return fused_ops.fused_stem(self.patch_embeddings, self.layernorm, x)
        return self.layernorm(self.patch_embeddings(x))


class Encoder(nn.Module):
    def __init__(self, hidden_sizes: list[int], depths: list[int]):
        super().__init__()
        dims = [hidden_sizes[0], *hidden_sizes]
        self.stages = nn.ModuleList(
            ConvNeXtV2Stage(dims[i], dims[i + 1], depths[i], downsample=i > 0) for i in range(len(depths))
        )


class ConvNeXtV2Backbone(nn.Module):
    """Returns the four normalised stage outputs at strides 4, 8, 16, 32."""

    def __init__(self, num_channels: int, hidden_sizes: list[int], depths: list[int]):
        super().__init__()
        self.embeddings = Embeddings(num_channels, hidden_sizes[0])
        self.encoder = Encoder(hidden_sizes, depths)
        self.hidden_states_norms = nn.ModuleDict(
            {f"stage{i + 1}": ChannelsFirstLayerNorm(h) for i, h in enumerate(hidden_sizes)}
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.embeddings(x)
        outputs = []
        for i, stage in enumerate(self.encoder.stages):
            x = stage(x)
            outputs.append(self.hidden_states_norms[f"stage{i + 1}"](x))
        return outputs
