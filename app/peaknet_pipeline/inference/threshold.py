"""Classical threshold segmenter with the model interface: (N, 1, H, W) -> logits (N, 2, H, W).

The CPU demo model and the reference for correctness tests; no weights.
"""

from __future__ import annotations

import torch
from torch import nn


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
