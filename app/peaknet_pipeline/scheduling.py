"""Say so when stage actors cannot be placed: on a fixed-size cluster an actor waiting for CPUs that
never come stalls the pipeline without an error (a full queue, nobody reading it)."""

from __future__ import annotations

import logging
import time

import ray

from .config import PipelineConfig
from .plan import against, store_need, store_short
from .stages.launch import Member

log = logging.getLogger(__name__)
CPU_KNOBS = "producer.num_cpus, inference.num_cpus, writer.num_cpus, peaks.task_cpus"


def node_resources() -> list[dict[str, float]]:
    """Each alive node's resources (its totals: what the stages' own actors may use)."""
    return [dict(n["Resources"]) for n in ray.nodes() if n.get("Alive")]


def store_bytes(nodes: list[dict[str, float]]) -> float:
    return sum(n.get("object_store_memory", 0.0) for n in nodes)


def check_store(cfg: PipelineConfig, nodes: list[dict[str, float]] | None = None) -> str | None:
    """A warning when the cluster's object store (these nodes', else the live ones') cannot hold what the config
    can put in it at once."""
    return store_short(store_need(cfg), store_bytes(node_resources() if nodes is None else nodes))


def check_cpus(cfg: PipelineConfig, stages: tuple[str, ...], nodes: list[dict[str, float]] | None = None) -> str | None:
    """A warning when the stages' actors do not fit the cluster's nodes (these, else the live ones) now (it may
    still autoscale)."""
    _, problems = against(cfg, stages, node_resources() if nodes is None else nodes)
    if not problems:
        return None
    return (
        "; ".join(problems) + f": those actors wait until the cluster grows; lower {CPU_KNOBS}, producer.resources "
        "or the actor counts, or add workers (`peaknet-pipeline plan` shows what the config asks for)"
    )


class UnplacedWatch:
    """Once, after `grace_s`, names members that never reported (their actors are not running)."""

    def __init__(self, members: list[Member], grace_s: float = 60.0):
        self._members = members
        self._grace = grace_s
        self._due = time.monotonic() + grace_s
        self._done = False

    def pending(self) -> bool:
        """Due for its one check."""
        return not self._done and time.monotonic() >= self._due

    def check(self, reported: set[str]) -> list[str]:
        if not self.pending():
            return []
        self._done = True
        missing = [m.name for m in self._members if m.name not in reported]
        if missing:
            free = ray.available_resources()
            log.warning(
                "not running after %.0fs (waiting for resources?): %s; cluster has %s free; lower %s or add workers",
                self._grace,
                ", ".join(missing),
                {k: free.get(k, 0.0) for k in ("CPU", "GPU")},
                CPU_KNOBS,
            )
        return missing
