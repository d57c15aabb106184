"""Where PeakNet's time goes: GPU time per kernel for the compiled model, grouped by what the kernels do.

    python3 benchmarks/profile_model.py --config examples/configs/gpu-512.yaml --iters 20 --output prof.json

Runs the model as the pipeline does (ModelRunner: same precision, memory format, compile mode) on batches
resident on the device, records `--iters` steps with the torch profiler after warm-up, and writes the top
kernels and a summary by kind (convolution / matmul, Triton-fused elementwise and norms, copies, other).
For issue 4: the base model reaches ~110 TFLOP/s of ~800, so the question is which non-matmul work costs.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile

from peaknet_pipeline.bench import emit_json
from peaknet_pipeline.cli import add_config_args, config_from_args
from peaknet_pipeline.inference.engine import ModelRunner, resolve_device, spec_from_config
from peaknet_pipeline.inference.models import build_model

KINDS = (  # first match wins: Triton kernel names mention the ops they fuse, "convolution" among them
    ("fused elementwise/norm (triton)", ("triton",)),
    (
        "conv/matmul",
        ("conv", "gemm", "_linear_kernel", "cutlass", "sm90", "xmma", "cudnn", "wgrad", "dgrad", "nchwToNhwc", "nvjet"),
    ),
    ("copy/memset", ("memcpy", "memset", "copy")),
)


def kind_of(name: str) -> str:
    low = name.lower()
    for kind, needles in KINDS:
        if any(n.lower() in low for n in needles):
            return kind
    return "other"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(ap, config_required=True)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--output")
    ap.add_argument("--trace", help="also write the profiler's chrome trace (with op shapes) here, .json.gz")
    args = ap.parse_args()
    cfg = config_from_args(args)
    device = torch.device(resolve_device(cfg.inference.device))
    model, _ = build_model(cfg.model)
    spec = spec_from_config(cfg, cfg.data.frame_shape)
    runner = ModelRunner(model, spec, device)
    x = torch.rand((spec.batch_size, *spec.frame_shape), device=device)
    for _ in range(max(3, cfg.inference.warmup_iters)):
        runner.masks(x)
    gpu = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if gpu else [])
    with profile(activities=activities, record_shapes=bool(args.trace)) as prof:
        for _ in range(args.iters):
            runner.masks(x)
        if gpu:
            torch.cuda.synchronize()
    rows = []
    for e in prof.key_averages():
        t = e.device_time_total if gpu else e.self_cpu_time_total  # microseconds over all iterations
        on_gpu = "CUDA" in str(getattr(e, "device_type", ""))  # kernels and copies, not the CPU ops launching them
        graph = e.key.startswith("## Call CompiledFxGraph")  # a CPU range whose device time is its kernels'
        if t > 0 and (on_gpu or not gpu) and not graph:
            rows.append({"name": e.key[:160], "us_per_iter": round(t / args.iters, 1), "calls": e.count // args.iters})
    rows.sort(key=lambda r: -r["us_per_iter"])
    by_kind: dict[str, float] = defaultdict(float)
    for r in rows:
        by_kind[kind_of(r["name"])] += r["us_per_iter"]
    total = sum(by_kind.values())
    result = {
        "config": args.config,
        "overrides": args.overrides,
        "device": torch.cuda.get_device_name() if gpu else "cpu",
        "batch_size": spec.batch_size,
        "frame_shape": list(spec.frame_shape),
        "ms_per_iter": round(total / 1000, 3),
        "by_kind": {k: {"ms_per_iter": round(v / 1000, 3), "share": round(v / total, 3)} for k, v in by_kind.items()},
        "top_kernels": rows[: args.top],
    }
    emit_json(result, args.output)
    if args.trace:
        prof.export_chrome_trace(args.trace)
    return 0


if __name__ == "__main__":
    sys.exit(main())
