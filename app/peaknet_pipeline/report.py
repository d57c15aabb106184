"""The run summary: what every stage did, whether every frame is accounted for."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from .coordinator import STAGES, MemberStatus
from .ledger import LOSS_OUTCOMES
from .quality import PeakTally
from .queue import ShardStats


class StageSummary(BaseModel):
    members: int = 0
    frames_in: int = 0
    frames_out: int = 0
    failed: dict[str, int] = {}
    batches: int = 0
    frames_per_s: float = 0.0
    info: dict[str, Any] = {}


class QueueSummary(BaseModel):
    name: str
    shards: int
    capacity: int
    high_water: int
    depth_at_end: int


# Exit codes of run and the stage subcommands (the README's table).
EXIT_OK = 0  # every frame accounted for: written, filtered or rejected with a reason
EXIT_ERROR = 1  # the driver itself failed (no cluster, namespace busy)
EXIT_CONFIG = 2  # invalid configuration
EXIT_FRAMES_LOST = 3  # the run ended, but frames were lost (a member died, a file could not be written)
EXIT_STAGE_FAILED = 4  # a member could not start, a stage died for good, or nothing moved: the run was ended


class FrameLedger(BaseModel):
    """What became of every frame the producers accepted (ledger.py)."""

    produced: int = 0
    outcomes: dict[str, int] = {}  # written, delivered, filtered_min_num_peak, owner_died, ...
    lost_unsettled: int = 0  # taken by a dead member, left in a queue, or in a writer's unwritten buffer
    pending_files: int = 0  # announced by a dead writer, not resolved on disk
    files: int = 0

    @property
    def lost(self) -> int:
        return self.lost_unsettled + sum(self.outcomes.get(k, 0) for k in LOSS_OUTCOMES)


class RunReport(BaseModel):
    command: str
    wall_s: float
    stopped_by: str | None = None  # signal, stop, max_run_s, member_failed, stage_failed, stalled, or None
    error: str | None = None  # why the run was ended, when it was
    warnings: list[str] = []  # what did not work but did not end the run (e.g. the resource sampler)
    stages: dict[str, StageSummary]
    queues: list[QueueSummary]
    frames: FrameLedger | None = None
    accounted: bool | None = None  # every produced frame written, filtered or rejected with a reason
    gpu_busy_fraction: float | None = None
    model: dict[str, Any] | None = None
    # Synthetic runs: found peaks against the planted ones (quality.py); writer.kind none samples batches.
    peak_quality: dict[str, Any] | None = None

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.model_dump(mode="json"), indent=2) + "\n")

    @property
    def exit_code(self) -> int:
        if self.error is not None:
            return EXIT_STAGE_FAILED
        if self.accounted is False:
            return EXIT_FRAMES_LOST
        return EXIT_OK


def summarise_stage(members: list[MemberStatus], wall_s: float) -> StageSummary:
    s = StageSummary(members=len(members))
    for m in members:
        s.frames_in += m.frames_in
        s.frames_out += m.frames_out
        s.batches += m.batches
        for reason, n in m.failed.items():
            s.failed[reason] = s.failed.get(reason, 0) + n
        s.info[m.member] = m.info
    s.frames_per_s = round(s.frames_out / wall_s, 2) if wall_s > 0 else 0.0
    return s


def summarise_queues(name: str, stats: list[ShardStats]) -> QueueSummary:
    return QueueSummary(
        name=name,
        shards=len(stats),
        capacity=sum(s.maxsize for s in stats),
        high_water=max((s.high_water for s in stats), default=0),
        depth_at_end=sum(s.depth for s in stats),
    )


def build_report(
    command: str,
    members: list[MemberStatus],
    queues: list[QueueSummary],
    wall_s: float,
    stopped_by: str | None,
    ledger: dict[str, Any] | None = None,
) -> RunReport:
    stages = {st: summarise_stage([m for m in members if m.stage == st], wall_s) for st in STAGES}
    stages = {k: v for k, v in stages.items() if v.members}
    report = RunReport(command=command, wall_s=round(wall_s, 3), stopped_by=stopped_by, stages=stages, queues=queues)
    if ledger is not None:
        report.frames = FrameLedger(**ledger)
        report.accounted = report.frames.lost == 0 and report.frames.pending_files == 0
    infer_members = [m for m in members if m.stage == "infer"]
    busy = [m.info["busy_fraction"] for m in infer_members if "busy_fraction" in m.info]
    if busy and all(m.info.get("device") == "cuda" for m in infer_members):
        report.gpu_busy_fraction = round(sum(busy) / len(busy), 4)
    if infer_members:
        report.model = infer_members[0].info.get("model")
    tally = PeakTally()
    for m in members:
        if m.stage == "write" and "peak_quality" in m.info:
            tally.merge(m.info["peak_quality"])
    if tally.frames:
        report.peak_quality = tally.summary()
    return report
