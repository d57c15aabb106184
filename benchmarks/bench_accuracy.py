"""Peak-level accuracy of each precision mode against planted truth, and each mode's masks against the fp32
reference: the check a reduced-precision mode or GELU's tanh form must pass to ship (F1 within 0.002 of bf16's
with the exact GELU: the mode bf16+exact where it ran, else bf16).

    python3 benchmarks/bench_accuracy.py --config examples/configs/gpu-512.yaml \\
        --set model.peaknet.weights=base.pt --frames 512 [--modes fp32 bf16+exact bf16+tanh fp16 fp8] \\
        [--fp8-min-channels 0] [--output accuracy.json]

Frames are the synthetic producer's (seeded, not the training seeds); peaks are found by the pipeline's own
peak finder and matched within 1.5 px (quality.py). Each mode runs as the pipeline runs it (its precision,
memory format, fused kernels and compile mode, ModelRunner); the reference is the same weights in plain fp32
PyTorch ops with the exact GELU, uncompiled. On a CPU every mode runs fp32 (the report's `ran_as` says so); the
report names each mode's GELU form (`mlp_gelu`) and Triton kernels (`fused_kernels`).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from peaknet_pipeline.bench import emit_json
from peaknet_pipeline.config import PipelineConfig
from peaknet_pipeline.config_sources import load_config
from peaknet_pipeline.inference.engine import ModelRunner, effective_precision, resolve_device, spec_from_config
from peaknet_pipeline.inference.models import build_model
from peaknet_pipeline.model import fp8_ops, fused_ops
from peaknet_pipeline.quality import PeakTally
from peaknet_pipeline.synthetic import FrameSynthesizer, require_frame_shape

HELD_OUT_SEED = 7_000_003  # neither the producer's nor train_synthetic.py's seeds


def masks_of(cfg: PipelineConfig, frames: np.ndarray, device: str, reference: bool) -> np.ndarray:
    cfg = cfg.model_copy(deep=True)
    if reference:
        cfg.inference.precision, cfg.inference.compile_mode = "fp32", "none"
        cfg.model.peaknet.channels_last, cfg.model.peaknet.cast_weights = False, False
        cfg.model.peaknet.fused_kernels, cfg.model.peaknet.mlp_gelu = "none", "exact"
    model, _ = build_model(cfg.model)
    spec = spec_from_config(cfg, tuple(frames.shape[1:]))
    runner = ModelRunner(model, spec, torch.device(device))
    out = []
    for start in range(0, len(frames), cfg.data.batch_size):
        batch = torch.from_numpy(frames[start : start + cfg.data.batch_size]).to(device)
        out.append(runner.masks(batch).cpu().numpy())
    return np.concatenate(out)


def mode_config(path: str, overrides: list[str], mode: str) -> PipelineConfig:
    """The config a mode runs: PRECISION, or PRECISION+GELU with model.peaknet.mlp_gelu set too (both validated
    by the config model)."""
    precision, _, gelu = mode.partition("+")
    mode_overrides = [f"inference.precision={precision}", *([f"model.peaknet.mlp_gelu={gelu}"] if gelu else [])]
    return load_config(path, [*overrides, *mode_overrides])


def score(masks: np.ndarray, truths: list[np.ndarray], reference: np.ndarray) -> dict:
    tally = PeakTally()
    tally.add_masks(masks, truths)
    both, either = np.logical_and(masks, reference).sum(), np.logical_or(masks, reference).sum()
    return {
        **tally.summary(),
        "mask_iou_vs_fp32": round(float(both / either), 5) if either else 1.0,
        "pixels_differing_from_fp32": int(np.count_nonzero(masks != reference)),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True)
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--frames", type=int, default=256)
    ap.add_argument("--modes", nargs="*", default=["fp32", "bf16", "fp16", "fp8"],
                    help="PRECISION or PRECISION+GELU (exact, tanh: model.peaknet.mlp_gelu); the config's GELU form "
                    "where none is named")  # fmt: skip
    ap.add_argument("--fp8-min-channels", type=int, default=fp8_ops.MIN_CHANNELS,
                    help="mode fp8: blocks this wide or more run FP8 GEMMs (0: every block)")  # fmt: skip
    ap.add_argument("--output")
    args = ap.parse_args()
    fp8_ops.MIN_CHANNELS = args.fp8_min_channels
    cfg = load_config(args.config, args.overrides)
    device = resolve_device(cfg.inference.device)
    synth = FrameSynthesizer(cfg.producer, require_frame_shape(cfg), "float32", HELD_OUT_SEED)
    batch = synth.batch(args.frames)
    reference = masks_of(cfg, batch.frames, device, reference=True)
    modes = {}
    for mode in args.modes:
        mcfg = mode_config(args.config, args.overrides, mode)
        masks = masks_of(mcfg, batch.frames, device, reference=False)
        spec = spec_from_config(mcfg, tuple(batch.frames.shape[1:]))  # the GELU form as the engine resolves it
        ran = {"ran_as": effective_precision(spec.precision, device), "mlp_gelu": spec.mlp_gelu}
        ran["fused_kernels"] = spec.fused_kernels if fused_ops.available(torch.device(device)) else "none"
        modes[mode] = {**ran, **score(masks, batch.true_peaks, reference)}
    baseline = modes.get("bf16+exact", modes.get("bf16"))
    if baseline:
        for result in modes.values():
            result["f1_minus_bf16"] = round(result["f1"] - baseline["f1"], 4)
    result = {
        "config": args.config,
        "overrides": args.overrides,
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "frames": args.frames,
        "frame_shape": list(cfg.data.frame_shape),
        "fp8_min_channels": args.fp8_min_channels,
        "reference": {"precision": "fp32", **score(reference, batch.true_peaks, reference)},
        "modes": modes,
    }
    emit_json(result, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
