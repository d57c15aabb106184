"""Model-only and end-to-end throughput in one run, same model, batch, precision and compile mode.

    python3 benchmarks/bench_pipeline.py --config examples/configs/gpu-512.yaml [--set k=v ...]

Prints one JSON object: model_only, pipeline and their ratio.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import torch

from peaknet_pipeline.bench import model_only
from peaknet_pipeline.config_sources import load_config
from peaknet_pipeline.driver import StageDriver
from peaknet_pipeline.ray_session import connect
from peaknet_pipeline.stages.launch import cpus_needed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True)
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--iters", type=int, default=50, help="timed model-only batches")
    ap.add_argument("--output", help="also write the JSON here")
    args = ap.parse_args()
    cfg = load_config(args.config, args.overrides)
    cfg.output.progress = "off"
    alone = model_only(cfg, args.iters)
    stages = ("produce", "infer", "write")
    connect(cfg, embedded=True, cpus_needed=cpus_needed(cfg, stages))
    report = StageDriver(cfg, stages, "bench", whole_pipeline=True).execute()
    infer_info = list(report.stages["infer"].info.values())
    steady = sum(i.get("steady_frames_per_s") or 0 for i in infer_info)
    result = {
        "config": args.config,
        "overrides": args.overrides,
        "machine": machine(),
        "model": report.model,
        "batch_size": cfg.data.batch_size,
        "frame_shape": cfg.data.frame_shape,
        "precision": cfg.inference.precision,
        "compile_mode": cfg.inference.compile_mode,
        "model_only": alone,
        "pipeline": {
            "steady_frames_per_s": round(steady, 2),
            "frames": report.stages["write"].frames_in,
            "wall_s": report.wall_s,
            "gpu_busy_fraction": report.gpu_busy_fraction,
            "accounted": report.accounted,
            "queue_high_water": {q.name: q.high_water for q in report.queues},
        },
        "ratio": round(steady / alone["frames_per_s"], 3) if alone["frames_per_s"] else None,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")
    return 0


def machine() -> dict:
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    return {
        "gpu": gpu,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpus": __import__("os").cpu_count(),
    }


if __name__ == "__main__":
    sys.exit(main())
