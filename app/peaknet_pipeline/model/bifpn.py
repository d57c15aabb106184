"""BiFPN over four levels (finest first), upstream PeakNet's parameter names and fusion order."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import fused_ops
from .layers import ChannelsFirstLayerNorm, resize_bilinear

FUSION_EPS = 1e-5


class DepthwiseSeparableConv(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.depthwise_conv = nn.Conv2d(channels, channels, kernel_size=1, groups=channels, bias=False)
        self.pointwise_conv = nn.Conv2d(channels, channels, kernel_size=1, bias=False)

    def folded_weight(self) -> torch.Tensor:
        """The pointwise weight (C, C, 1, 1) with the 1x1 depthwise conv, which scales channels, folded in."""
        return self.pointwise_conv.weight * self.depthwise_conv.weight.view(1, -1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.folded_weight())  # one conv instead of two


def conv_block(channels: int) -> nn.Sequential:
    return nn.Sequential(DepthwiseSeparableConv(channels), ChannelsFirstLayerNorm(channels), nn.GELU())


def plain_step(conv: nn.Sequential, p: torch.Tensor, m: torch.Tensor | None, other: torch.Tensor, w: torch.Tensor):
    """BiFPNBlock.step by PyTorch ops."""
    resampled = resize_bilinear(other, 2.0 if m is None else 0.5)
    fused = w[0] * p + w[2] * resampled if m is None else w[0] * p + w[1] * m + w[2] * resampled
    return conv(fused / (w.sum() + FUSION_EPS)) + p


class BiFPNBlock(nn.Module):
    """Levels base..base+L-1. Row i of w_m fuses the i-th step of the top-down pass (coarsest first);
    row i of w_q the i-th step of the bottom-up pass (finest first); components (p, m, q_down).

    Resampling stays in the features' dtype: upstream runs it in fp32 under autocast and casts back, which
    the bf16 kernels match (they interpolate in fp32 and round once). Compiled, an explicit fp32 copy made
    inductor keep the finest level's outputs in fp32, twice the bytes on the model's widest tensors."""

    def __init__(self, features: int, num_levels: int = 4, base_level: int = 4):
        super().__init__()
        n = num_levels - 1
        self.w_m = nn.Parameter(torch.ones(n, 2))
        self.w_q = nn.Parameter(torch.ones(n, 3))
        mask = torch.ones(n, 3, dtype=torch.bool)
        mask[-1, 0] = False
        self.register_buffer("w_q_mask", mask)
        levels = range(base_level, base_level + num_levels)
        self.conv = nn.ModuleDict({f"m{lv}": conv_block(features) for lv in levels[:-1]})
        self.conv.update({f"q{lv}": conv_block(features) for lv in levels[1:]})
        self.levels = list(levels)
        self.by_kernel = False  # fused_ops.enable: each step by the Triton kernel where its level fits (CUDA)
        self.kernel_modes = fused_ops.BIFPN_MODES

    def forward(self, p: list[torch.Tensor], p_biases: list[torch.Tensor | None] | None = None) -> list[torch.Tensor]:
        """p_biases: per level, a bias that p comes without (adapted), or None."""
        n = len(p)
        b = p_biases or [None] * n
        w_m = F.relu(self.w_m)
        w_q = F.relu(self.w_q * self.w_q_mask)
        m = list(p)  # m[-1] is p at the coarsest level, which always comes with its bias
        for step, i in enumerate(range(n - 2, -1, -1)):
            w1, w2 = w_m[step]
            m[i] = self.step(f"m{self.levels[i]}", p[i], None, m[i + 1], torch.stack([w1, w1 * 0, w2]), b[i])
        q = [m[0]]  # the finest output is the top-down output
        for step, i in enumerate(range(1, n)):
            q.append(self.step(f"q{self.levels[i]}", p[i], m[i], q[i - 1], w_q[step], b[i]))
        return q

    def step(self, name: str, p: torch.Tensor, m: torch.Tensor | None, other: torch.Tensor, w: torch.Tensor,
             p_bias: torch.Tensor | None = None):  # fmt: skip
        """conv(fused) + p, fused = (w0 p + w1 m + w2 other resampled) / (sum of w + eps): other upsampled x2 (the
        coarser level, top-down, no m) or averaged 2x2 (the finer level, bottom-up); p plus p_bias where given."""
        if self.by_kernel and fused_ops.bifpn_fusable(p):
            resample = fused_ops.bk.UP if m is None else fused_ops.bk.DOWN
            return fused_ops.fused_bifpn_step(self.conv[name], p, m, other, resample, w, FUSION_EPS, p_bias)
        if p_bias is not None:
            p = p + p_bias.view(1, -1, 1, 1).to(p.dtype)
        return plain_step(self.conv[name], p, m, other, w)


class BiFPN(nn.Module):
    def __init__(self, features: int, num_blocks: int):
        super().__init__()
        self.blocks = nn.Sequential(*[BiFPNBlock(features) for _ in range(num_blocks)])
        # fused_ops.enable: the first block's kernel adds the adapters' biases as it reads their outputs (adapted)
        self.by_kernel = False
        self.kernel_modes = fused_ops.BIFPN_BIAS_MODES

    def forward(self, p: list[torch.Tensor], p_biases: list[torch.Tensor | None] | None = None) -> list[torch.Tensor]:
        """p_biases (adapted) go to the first block, whose inputs p are."""
        for i, block in enumerate(self.blocks):
            p = block(p, p_biases if i == 0 else None)
        return p

    def adapted(self, adapters: nn.ModuleList, hidden: list[torch.Tensor]):
        """The adapters' 1x1 convs of the backbone's hidden states, the BiFPN's inputs, and per level the bias left
        out of the conv's output for the first block's kernel to add, or None. Every level but the coarsest (which
        also enters a step resampled, where the kernel does not add a bias), where the block runs its kernel."""
        if not (self.by_kernel and self.blocks[0].by_kernel):
            return [adapt(h) for adapt, h in zip(adapters, hidden)], None
        outputs, biases = [], []
        for level, (adapt, h) in enumerate(zip(adapters, hidden)):
            split = level < len(hidden) - 1 and adapt.bias is not None
            split = split and fused_ops.bifpn_fusable(h, adapt.out_channels)
            outputs.append(F.conv2d(h, adapt.weight) if split else adapt(h))
            biases.append(adapt.bias if split else None)
        return outputs, biases
