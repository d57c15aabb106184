"""The run summary: what every stage did, whether every frame is accounted for."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from .coordinator import STAGES, MemberStatus
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


class RunReport(BaseModel):
    command: str
    wall_s: float
    stopped_by: str | None = None  # "signal", "stop" or None for a run that ended by itself
    stages: dict[str, StageSummary]
    queues: list[QueueSummary]
    accounted: bool | None = None  # every produced frame delivered or failed with a reason
    gpu_busy_fraction: float | None = None
    model: dict[str, Any] | None = None

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.model_dump(mode="json"), indent=2) + "\n")


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


# A member that crashed or was killed at the drain deadline took frames in flight with it.
LOST_WITH_MEMBER = ("member_crashed", "abandoned_at_deadline")


def build_report(
    command: str, members: list[MemberStatus], queues: list[QueueSummary], wall_s: float, stopped_by: str | None
) -> RunReport:
    stages = {st: summarise_stage([m for m in members if m.stage == st], wall_s) for st in STAGES}
    stages = {k: v for k, v in stages.items() if v.members}
    report = RunReport(command=command, wall_s=round(wall_s, 3), stopped_by=stopped_by, stages=stages, queues=queues)
    if set(stages) == set(STAGES):
        p, i, w = stages["produce"], stages["infer"], stages["write"]
        inferred_failed = sum(i.failed.values())
        balanced = p.frames_out == i.frames_in == i.frames_out + inferred_failed and w.frames_in == i.frames_out
        lost = any(reason in m.failed for m in members for reason in LOST_WITH_MEMBER)
        report.accounted = balanced and not lost
    infer_members = [m for m in members if m.stage == "infer"]
    busy = [m.info["busy_fraction"] for m in infer_members if "busy_fraction" in m.info]
    if busy and all(m.info.get("device") == "cuda" for m in infer_members):
        report.gpu_busy_fraction = round(sum(busy) / len(busy), 4)
    if infer_members:
        report.model = infer_members[0].info.get("model")
    return report
