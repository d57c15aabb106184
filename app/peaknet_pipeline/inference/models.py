"""Build the configured segmentation model."""

from __future__ import annotations

from torch import nn

from ..config import ModelSection
from .threshold import ThresholdSegmenter


def build_model(cfg: ModelSection) -> tuple[nn.Module, dict]:
    """The model and a description of it for logs and the run report."""
    if cfg.kind == "threshold":
        model = ThresholdSegmenter(cfg.threshold.k_sigma, cfg.num_classes)
        return model, {"kind": "threshold", "k_sigma": cfg.threshold.k_sigma, "weights": None}
    raise ValueError(f"model.kind: unknown model {cfg.kind!r}")
