"""Lifecycle coordinator: who is running, who is done, whether a stop was asked, what is settled.

Stages never talk to each other directly: they share queues and this one named, detached actor.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import ray

from .memory import process_rss

STAGES = ("produce", "infer", "write")
COORDINATOR_NAME = "peaknet-coordinator"


def upstream_of(stage: str) -> str:
    return STAGES[STAGES.index(stage) - 1]


@dataclass(slots=True)
class MemberStatus:
    """What one stage member (an actor) reports about itself."""

    stage: str
    member: str
    state: str = "starting"  # starting | running | done
    final: bool = False  # done because its input really ended (not just this process going away)
    frames_in: int = 0
    frames_out: int = 0
    batches: int = 0
    failed: dict[str, int] = field(default_factory=dict)  # reason -> frames
    info: dict[str, Any] = field(default_factory=dict)  # warm-up time, busy fraction, model...
    rss_bytes: int = 0  # resident memory of the member's process at the last update
    started: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)

    def fail(self, reason: str, frames: int) -> None:
        self.failed[reason] = self.failed.get(reason, 0) + frames

    @property
    def frames_failed(self) -> int:
        return sum(self.failed.values())


@ray.remote(num_cpus=0)
class Coordinator:
    def __init__(self) -> None:
        self._members: dict[tuple[str, str], MemberStatus] = {}
        self._stop_requested = False
        self._stop_time: float | None = None
        self._settled: dict[str, int] = defaultdict(int)

    def update(self, status: MemberStatus) -> bool:
        """Record a member's status; returns whether a stop was requested, so one call does both."""
        status.updated = time.time()
        self._members[(status.stage, status.member)] = status
        return self._stop_requested

    def request_stop(self) -> None:
        if not self._stop_requested:
            self._stop_requested = True
            self._stop_time = time.time()

    def stop_requested(self) -> bool:
        return self._stop_requested

    def stage_closed(self, stage: str) -> bool:
        """No more input will come from `stage`: it ran, every member is done, and it really ended."""
        members = [m for (s, _), m in self._members.items() if s == stage]
        if not members or any(m.state != "done" for m in members):
            return False
        return self._stop_requested or any(m.final for m in members)

    def settle(self, counts: dict[str, int]) -> None:
        """Frames per source that no stage needs any more (written, filtered or failed)."""
        for source, n in counts.items():
            self._settled[source] += n

    def settled(self, source: str) -> int:
        return self._settled[source]

    def snapshot(self) -> dict[str, Any]:
        return {
            "stop_requested": self._stop_requested,
            "members": list(self._members.values()),
            "rss_bytes": process_rss(),
        }

    def forget_members(self) -> None:
        """A new finite `run` in a namespace reused from an earlier one starts from a clean slate."""
        self._members.clear()
        self._settled.clear()
        self._stop_requested = False


def get_or_create_coordinator(namespace: str) -> ray.actor.ActorHandle:
    return Coordinator.options(
        name=COORDINATOR_NAME, namespace=namespace, lifetime="detached", get_if_exists=True
    ).remote()


def attach_coordinator(namespace: str) -> ray.actor.ActorHandle:
    try:
        return ray.get_actor(COORDINATOR_NAME, namespace=namespace)
    except ValueError:
        raise LookupError(
            f"no running pipeline: actor {COORDINATOR_NAME!r} not found in Ray namespace {namespace!r}"
        ) from None
