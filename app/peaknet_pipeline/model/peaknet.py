"""PeakNet assembled from its parts, with the named presets."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import nn

from .backbone import ConvNeXtV2Backbone
from .bifpn import BiFPN
from .head import build_lateral_layers, segmentation_logits


@dataclass(frozen=True)
class PeakNetArch:
    num_channels: int = 1
    num_classes: int = 2
    backbone_hidden_sizes: tuple[int, ...] = (96, 192, 384, 768)
    backbone_depths: tuple[int, ...] = (3, 3, 9, 3)
    bifpn_num_blocks: int = 2
    bifpn_num_features: int = 256
    seg_out_channels: int = 256
    uses_learned_upsample: bool = False
    extra: dict = field(default_factory=dict, compare=False)


PRESETS = {
    "base": PeakNetArch(),
    "673m": PeakNetArch(
        backbone_hidden_sizes=(352, 704, 1408, 2816),
        backbone_depths=(3, 3, 27, 3),
        bifpn_num_blocks=4,
        bifpn_num_features=512,
        seg_out_channels=256,
        uses_learned_upsample=True,
    ),
    # Small enough for a laptop CPU (0.35 M parameters); the package ships weights for it trained on
    # synthetic frames (weights: builtin:peaknet-demo-synthetic.pt).
    "demo": PeakNetArch(
        backbone_hidden_sizes=(16, 32, 64, 128),
        backbone_depths=(1, 1, 2, 1),
        bifpn_num_blocks=1,
        bifpn_num_features=32,
        seg_out_channels=32,
    ),
}


def arch_from(preset: str | None, **overrides) -> PeakNetArch:
    base = PRESETS[preset] if preset else PeakNetArch()
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})


class PeakNet(nn.Module):
    """(N, num_channels, H, W) with H, W multiples of 32 -> logits (N, num_classes, H, W)."""

    def __init__(self, arch: PeakNetArch):
        super().__init__()
        self.arch = arch
        hidden = list(arch.backbone_hidden_sizes)
        self.backbone = ConvNeXtV2Backbone(arch.num_channels, hidden, list(arch.backbone_depths))
        self.backbone_to_bifpn = nn.ModuleList(nn.Conv2d(h, arch.bifpn_num_features, kernel_size=1) for h in hidden)
        self.bifpn = BiFPN(arch.bifpn_num_features, arch.bifpn_num_blocks)
        self.seg_lateral_layers = build_lateral_layers(arch.bifpn_num_features, arch.seg_out_channels)
        self.head_segmask = nn.Conv2d(arch.seg_out_channels, arch.num_classes, kernel_size=1)
        self.head_upsample_layer = (
            nn.Sequential(nn.ConvTranspose2d(arch.seg_out_channels, arch.num_classes, 6, stride=4, padding=1))
            if arch.uses_learned_upsample
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.bifpn(*self.bifpn.adapted(self.backbone_to_bifpn, self.backbone(x)))
        return segmentation_logits(features, self.seg_lateral_layers, self.head_segmask, self.head_upsample_layer)
