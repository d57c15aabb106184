"""What each subcommand does once the config is known."""

from __future__ import annotations

import logging
import sys
import time

import ray

from .config import PipelineConfig
from .coordinator import attach_coordinator
from .driver import StageDriver
from .ledger import LOSS_OUTCOMES
from .ray_session import connect
from .report import RunReport
from .stages.launch import cpus_needed
from .stages.wiring import q1_client, q2_client, remove_shared_actors

log = logging.getLogger("peaknet_pipeline")


def run_stages(cfg: PipelineConfig, stages: tuple[str, ...], command: str) -> int:
    if cfg.lifecycle.service is None:
        # Stage subcommands are long-running services; `run` ends when its input ends.
        cfg.lifecycle.service = command != "run"
    connect(cfg, embedded=command == "run", cpus_needed=cpus_needed(cfg, stages))
    log.info(
        "%s: namespace=%s model=%s device=%s batch=%d shape=%s buffers=%d precision=%s compile=%s service=%s",
        command,
        cfg.ray.namespace,
        cfg.model.kind,
        cfg.inference.device,
        cfg.data.batch_size,
        cfg.data.frame_shape,
        cfg.inference.num_buffers,
        cfg.inference.precision,
        cfg.inference.compile_mode,
        cfg.lifecycle.service,
    )
    try:
        report = StageDriver(cfg, stages, command, whole_pipeline=command == "run").execute()
    finally:
        ray.shutdown()
    if cfg.output.report:
        report.write(cfg.output.report)
    log_summary(report)
    if report.error:
        print(f"peaknet-pipeline {command}: {report.error}", file=sys.stderr)
    return report.exit_code


def log_summary(report: RunReport) -> None:
    parts = [f"{name}: {s.frames_out} frames ({s.frames_per_s:.1f}/s)" for name, s in report.stages.items()]
    failed = {k: v for s in report.stages.values() for k, v in s.failed.items() if v}
    log.info(
        "%s done in %.1fs%s: %s%s%s",
        report.command,
        report.wall_s,
        f" (stopped by {report.stopped_by})" if report.stopped_by else "",
        "; ".join(parts),
        f"; failed {failed}" if failed else "",
        "" if report.accounted is None else f"; all frames accounted: {report.accounted}",
    )
    if q := report.peak_quality:
        log.info("peaks against the planted ones (within %s px, %d frames): precision %.4f, recall %.4f, F1 %.4f",
                 q["match_radius_px"], q["frames"], q["precision"], q["recall"], q["f1"])  # fmt: skip
    if report.frames is not None and report.frames.lost:
        log.warning("%s: %d of %d accepted frames lost (%s)", report.command, report.frames.lost,
                    report.frames.produced, lost_by_reason(report))  # fmt: skip


def lost_by_reason(report: RunReport) -> str:
    frames = report.frames
    parts = {k: v for k, v in frames.outcomes.items() if k in LOSS_OUTCOMES}
    if frames.lost_unsettled:
        parts["held by dead members or left in queues"] = frames.lost_unsettled
    return ", ".join(f"{k}: {v}" for k, v in parts.items())


def status(cfg: PipelineConfig) -> int:
    connect(cfg, embedded=False)
    coordinator = attach_coordinator(cfg.ray.namespace)
    snap = ray.get(coordinator.snapshot.remote())
    print(f"namespace {cfg.ray.namespace}: stop requested: {snap['stop_requested']}")
    for name, client in (("Q1", q1_client(cfg)), ("Q2", q2_client(cfg))):
        stats = client.stats()
        depth, cap, hwm = sum(s.depth for s in stats), sum(s.maxsize for s in stats), max(s.high_water for s in stats)
        print(f"{name} ({client.name}): depth {depth}/{cap}, high-water mark per shard {hwm}")
    now = time.time()
    for m in snap["members"]:
        failed = f" failed {m.failed}" if m.failed else ""
        if m.info.get("malformed"):
            failed += f" malformed messages {m.info['malformed_by_reason']}"
        print(
            f"{m.stage:8s} {m.member:24s} {m.state:8s} in {m.frames_in} out {m.frames_out}{failed} "
            f"rss {m.rss_bytes / 2**20:.0f} MiB (updated {now - m.updated:.0f}s ago)"
        )
    return 0


def stop(cfg: PipelineConfig) -> int:
    connect(cfg, embedded=False)
    ray.get(attach_coordinator(cfg.ray.namespace).request_stop.remote())
    print(f"stop requested for the pipeline in namespace {cfg.ray.namespace}; stages drain and finish")
    return 0


def cleanup(cfg: PipelineConfig) -> int:
    connect(cfg, embedded=False)
    removed = remove_shared_actors(cfg)
    print(f"removed {len(removed)} detached actors: {', '.join(removed) or 'none'}")
    return 0
