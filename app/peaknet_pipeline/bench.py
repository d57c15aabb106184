"""Throughput measurements: the model alone with batches resident on the device, and the whole pipeline."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from .config import PipelineConfig
from .inference.engine import ModelRunner, resolve_device, spec_from_config
from .inference.models import build_model


def flops_per_frame(model: torch.nn.Module, frame_shape: tuple[int, int, int], device: torch.device) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros((1, *frame_shape), device=device)
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model.to(device)(x)
    return float(counter.get_total_flops())


def model_only(cfg: PipelineConfig, iters: int = 50, model: torch.nn.Module | None = None) -> dict[str, Any]:
    """Frames/s of the model on batches already on the device, same precision and compile mode."""
    if cfg.data.frame_shape is None:
        raise ValueError("bench needs data.frame_shape")
    device = torch.device(resolve_device(cfg.inference.device))
    if model is None:
        model, _ = build_model(cfg.model)
    flops = flops_per_frame(model, cfg.data.frame_shape, device) if device.type == "cuda" else None
    spec = spec_from_config(cfg, cfg.data.frame_shape)
    t0 = time.perf_counter()
    runner = ModelRunner(model, spec, device)
    g = torch.Generator(device=device).manual_seed(0)
    batches = [torch.rand((spec.batch_size, *spec.frame_shape), device=device, generator=g) for _ in range(3)]
    for i in range(max(cfg.inference.warmup_iters, 3)):
        runner.masks(batches[i % 3])
    sync(device)
    warmup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(iters):
        runner.masks(batches[i % 3])  # rotate inputs so caches do not flatter the numbers
    sync(device)
    seconds = time.perf_counter() - t0
    fps = iters * spec.batch_size / seconds
    out = {"frames_per_s": round(fps, 2), "warmup_s": round(warmup_s, 2), "iters": iters, "device": str(device)}
    if flops:
        out["gflop_per_frame"] = round(flops / 1e9, 2)
        out["tflop_per_s"] = round(flops * fps / 1e12, 2)
    return out


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def emit_json(result: dict, output: str | None) -> None:
    """Benchmarks print their result and, when asked, keep it as a file for benchmarks/results/."""
    print(json.dumps(result, indent=2))
    keep_json(result, output)


def keep_json(result: dict, output: str | None) -> None:
    """The result as a file for benchmarks/results/ (when `output`); benchmarks call it as they go too, so a
    run cut short keeps what it measured."""
    if output:
        Path(output).write_text(json.dumps(result, indent=2) + "\n")
