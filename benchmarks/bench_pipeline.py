"""Model-only against the pipeline, side by side: same model, batch, precision and compile mode.

    python3 benchmarks/bench_pipeline.py --config examples/configs/gpu-512.yaml --seconds 30 \
        [--runs infer images peaks] [--gpus N] [--set k=v ...] [--output result.json]

(a) model_only: batches resident on the device.
(b) infer: synthetic producers -> Q1 -> inference -> Q2 -> a counting sink (writer.kind=none).
(c) images / peaks: the full pipeline with peak finding and CXI files, with and without images.
With --gpus N the pipeline gets N inference actors and N times the producers, writers and queue shards, and
its rates are compared with N times one GPU's model-only rate. Each pipeline run moves about `--seconds` worth
of frames at that rate. Rates are steady state
(first to last output batch); the limiting stage is named from the stage rates and queue high-water marks.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shutil
import sys
import tempfile
import threading
from pathlib import Path

from peaknet_pipeline.bench import emit_json, model_only
from peaknet_pipeline.config import PipelineConfig
from peaknet_pipeline.config_sources import load_config
from peaknet_pipeline.driver import StageDriver
from peaknet_pipeline.ray_session import connect
from peaknet_pipeline.report import RunReport
from peaknet_pipeline.stages.launch import cpus_needed

RUNS = {
    "infer": ["writer.kind=none"],
    "images": ["writer.kind=cxi", "writer.store_images=true"],
    "peaks": ["writer.kind=cxi", "writer.store_images=false"],
}
STAGES = ("produce", "infer", "write")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True)
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--runs", nargs="*", default=list(RUNS), choices=list(RUNS))
    ap.add_argument("--seconds", type=float, default=30.0, help="pipeline run length at the model-only rate")
    ap.add_argument("--iters", type=int, default=50, help="timed model-only batches")
    ap.add_argument("--output", help="also write the JSON here")
    ap.add_argument("--output-dir", help="where the CXI runs write (default: a new temporary directory)")
    ap.add_argument("--gpus", type=int, default=1, help="inference actors, one GPU each; the rest scales with them")
    ap.add_argument(
        "--discard-files",
        action="store_true",
        help="delete each CXI file once published (counting its bytes), as a transfer off the node "
        "would: a run longer than the output directory holds (tmpfs at several GPUs)",
    )
    args = ap.parse_args()
    base = load_config(args.config, args.overrides)
    base.output.progress = "off"
    alone = model_only(base, args.iters)
    target = alone["frames_per_s"] * args.gpus
    frames = frames_for(scaled(base, args.gpus), target, args.seconds)
    configs = {name: scaled(run_config(args, extra, frames), args.gpus) for name, extra in RUNS.items()
               if name in args.runs}  # fmt: skip
    connect(base, embedded=True, cpus_needed=max(cpus_needed(c, STAGES) for c in configs.values()))
    runs = {name: pipeline_run(cfg, target, args.output_dir, args.discard_files) for name, cfg in configs.items()}
    result = {
        "config": args.config,
        "overrides": args.overrides,
        "machine": machine(),
        "preset": base.model.peaknet.preset,
        "batch_size": base.data.batch_size,
        "frame_shape": base.data.frame_shape,
        "precision": base.inference.precision,
        "compile_mode": base.inference.compile_mode,
        "model_only": alone,
        "gpus": args.gpus,
        "cxi_output": args.output_dir or "a temporary directory on the host's disk",
        "cxi_discarded_once_published": args.discard_files,
        "runs": runs,
    }
    emit_json(result, args.output)
    return 0


def frames_for(cfg: PipelineConfig, fps: float, seconds: float) -> int:
    per_batch = cfg.data.batch_size * cfg.producer.num_producers
    return max(per_batch, math.ceil(fps * seconds / per_batch) * per_batch)


def scaled(cfg: PipelineConfig, gpus: int) -> PipelineConfig:
    """N inference actors, and N times what feeds and drains one."""
    if gpus > 1:
        cfg = cfg.model_copy(deep=True)
        cfg.inference.num_actors *= gpus
        cfg.producer.num_producers *= gpus
        cfg.writer.num_actors *= gpus
        cfg.queues.num_shards *= gpus
    return cfg


def run_config(args: argparse.Namespace, extra: list[str], frames: int) -> PipelineConfig:
    cfg = load_config(args.config, [*args.overrides, *extra, f"producer.total_frames={frames}"])
    cfg.output.progress = "off"
    return cfg


def pipeline_run(cfg: PipelineConfig, model_fps: float, parent: str | None = None, discard: bool = False) -> dict:
    """model_fps: what the run is compared with (N GPUs x one GPU's model-only rate)."""
    out_dir = Path(tempfile.mkdtemp(prefix="peaknet-bench-", dir=parent))
    cfg.writer.output_dir = str(out_dir)
    sweeper = Sweeper(out_dir, 1.0 if discard else None)
    try:
        with sweeper:
            report = StageDriver(cfg, STAGES, "bench", whole_pipeline=True).execute()
        written = sweeper.sweep(discard=False)
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    rates = {stage: steady_rate(report, stage) for stage in ("infer", "write")}
    end_to_end = min(r for r in rates.values() if r) if all(rates.values()) else None
    queues = {q.name: {"high_water": q.high_water, "maxsize": q.capacity // q.shards} for q in report.queues}
    waited = input_wait(report)
    return {
        "frames": report.stages["write"].frames_in,
        "accounted": report.accounted,
        "wall_s": report.wall_s,
        "steady_frames_per_s": rates,
        "end_to_end_frames_per_s": end_to_end,
        "ratio_to_model_only": round(end_to_end / model_fps, 3) if end_to_end else None,
        "gpu_busy_fraction": report.gpu_busy_fraction,
        "infer_input_wait_fraction": waited,
        "queues": queues,
        "cxi_bytes": written,
        "limited_by": limiter(rates, queues, model_fps, waited),
    }


class Sweeper:
    """Counts the bytes of the published CXI files; with an interval, deletes them as they land."""

    def __init__(self, out_dir: Path, interval_s: float | None):
        self.out_dir, self.interval_s = out_dir, interval_s
        self.swept = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Sweeper:
        if self.interval_s:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sweep(discard=True)

    def sweep(self, discard: bool) -> int:
        """Bytes published so far, these and the ones swept before."""
        found = 0
        for f in self.out_dir.glob("*.cxi"):
            found += f.stat().st_size
            if discard:
                f.unlink()
        if discard:
            self.swept, found = self.swept + found, 0
        return self.swept + found


def steady_rate(report: RunReport, stage: str) -> float | None:
    rates = [i.get("steady_frames_per_s") for i in report.stages[stage].info.values()]
    return round(sum(r for r in rates if r), 2) if any(rates) else None


def input_wait(report: RunReport) -> float | None:
    """Mean share of the time the inference actors waited for input, first batch to last."""
    waits = [i["input_wait_fraction"] for i in report.stages["infer"].info.values() if "input_wait_fraction" in i]
    return round(sum(waits) / len(waits), 4) if waits else None


def limiter(rates: dict, queues: dict, model_fps: float, waited: float | None) -> str:
    """Per shard. Q2 reaching its limit: the write stage pushed back on the GPU. Inference waiting for input
    (over 10% of the time) or Q1 never near full: the producers limit. Otherwise inference itself. Q1's
    high-water mark alone cannot tell: Q1 fills while the model compiles. The stage is named even when the run
    kept within 10% of the model alone (then said so), since a target may sit inside that margin."""
    q1, q2 = queues.get("Q1", {}), queues.get("Q2", {})
    if q2 and q2["high_water"] >= q2["maxsize"]:
        named = f"write: Q2 reached its limit; inference held to {rates['infer']} frames/s (writer {rates['write']})"
    elif waited is not None and waited > 0.1:
        named = f"produce: inference waited for input {waited:.0%} of the time ({rates['infer']} frames/s)"
    elif q1 and q1["high_water"] < q1["maxsize"] // 2:
        named = f"produce: Q1 high water {q1['high_water']} of {q1['maxsize']}"
    else:
        fed = "with Q1 fed" if waited is None else f"waiting for input {waited:.0%} of the time"
        named = f"infer: {rates['infer']} frames/s, {fed}"
    close = (rates["infer"] or 0) >= 0.9 * model_fps
    return named + ("; within 10% of model-only" if close else "")


def machine() -> dict:
    import torch

    return {
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }


if __name__ == "__main__":
    sys.exit(main())
