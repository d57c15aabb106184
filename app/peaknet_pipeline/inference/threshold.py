"""Classical threshold segmenter with the model interface: (N, 1, H, W) -> logits (N, 2, H, W).

The CPU demo model and the reference for correctness tests; no weights.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..kinds import ModelKind
from ..model.segmenter import Segmenter


class ThresholdSegmenter(nn.Module):
    def __init__(self, k_sigma: float, num_classes: int = 2):
        super().__init__()
        if num_classes != 2:
            raise ValueError(f"model.num_classes: the threshold model has 2 classes, got {num_classes}")
        self.k_sigma = k_sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        std, mean = torch.std_mean(xf, dim=(-2, -1), keepdim=True)
        # Logit of "peak" minus logit of "background" is the margin over the threshold.
        margin = xf - (mean + self.k_sigma * std)
        return torch.cat([-margin, margin], dim=1)


def build_threshold(cfg) -> tuple[Segmenter, dict[str, Any]]:
    """cfg: ModelSection."""
    model = ThresholdSegmenter(cfg.threshold.k_sigma, cfg.num_classes)
    info = {"kind": "threshold", "k_sigma": cfg.threshold.k_sigma, "weights": None}
    return Segmenter(model, 1, cfg.preprocess.instance_norm, "none", None), info


KIND = ModelKind(build_threshold)
