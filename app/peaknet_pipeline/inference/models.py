"""Build the configured segmentation model, wrapped with its preprocessing."""

from __future__ import annotations

import logging
from typing import Any

from ..config import ModelSection
from ..kinds import MODELS, ModelKind, kind_of
from ..model import fused_ops
from ..model.checkpoint import load_weights
from ..model.peaknet import PeakNet, arch_from
from ..model.segmenter import PAD_MULTIPLE, Segmenter

log = logging.getLogger(__name__)


def build_model(cfg: ModelSection) -> tuple[Segmenter, dict[str, Any]]:
    """The model of the configured kind and a description of it for logs and the run report."""
    return kind_of(MODELS, cfg.kind).build(cfg)


def build_peaknet(cfg: ModelSection) -> tuple[Segmenter, dict[str, Any]]:
    pre = cfg.preprocess
    pn = cfg.peaknet
    sizes = pn.model_dump(exclude={"preset", "weights", "channels_last", "cast_weights", "fused_kernels", "mlp_gelu"})
    arch = arch_from(pn.preset, num_channels=cfg.num_channels, num_classes=cfg.num_classes, **sizes)
    model = PeakNet(arch)
    if pn.weights is None:
        log.warning("model.peaknet.weights is null: running PeakNet with random weights (masks are meaningless)")
    else:
        load_weights(model, pn.weights)
    info = {
        "kind": "peaknet",
        "preset": pn.preset,
        "weights": pn.weights,
        "random_weights": pn.weights is None,
        "mlp_gelu": fused_ops.gelu_for(pn.preset, pn.mlp_gelu),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    return Segmenter(model, cfg.num_channels, pre.instance_norm, pre.pad, PAD_MULTIPLE), info


KIND = ModelKind(build_peaknet)
