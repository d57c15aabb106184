"""Lifecycle coordinator: who should be running, who is alive, who is done, what every frame became.

Stages never talk to each other directly: they share queues and this one named, detached actor. It also
holds the namespace claim (one driving `run` per namespace) and the frame ledger (see ledger.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import ray

from .ledger import FileIntent, Ledger
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
    # starting | running | done | restarting (died, Ray starts a new process) | failed (could not start, or
    # died for good) | silent (no heartbeat within lifecycle.heartbeat_timeout_s: its driver is gone)
    state: str = "starting"
    final: bool = False  # done because its input really ended (not just this process going away)
    incarnation: int = 0  # counts restarts of the actor (same name, new process)
    error: str | None = None  # why it failed
    frames_in: int = 0
    frames_out: int = 0
    batches: int = 0
    failed: dict[str, int] = field(default_factory=dict)  # reason -> frames
    info: dict[str, Any] = field(default_factory=dict)  # warm-up time, busy fraction, model, pid...
    rss_bytes: int = 0  # resident memory of the member's process at the last update
    started: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)

    def fail(self, reason: str, frames: int) -> None:
        self.failed[reason] = self.failed.get(reason, 0) + frames

    @property
    def frames_failed(self) -> int:
        return sum(self.failed.values())

    @property
    def ended(self) -> bool:
        return self.state in ("done", "failed")

    def absorb(self, earlier: MemberStatus) -> None:
        """Add the counts of an earlier incarnation of this member (before a restart)."""
        self.frames_in += earlier.frames_in
        self.frames_out += earlier.frames_out
        self.batches += earlier.batches
        for reason, n in earlier.failed.items():
            self.fail(reason, n)


@dataclass(slots=True)
class Claim:
    """The driver that runs the whole pipeline in this namespace, and since when."""

    driver: str
    since: float


@ray.remote(num_cpus=0)
class Coordinator:
    def __init__(self, heartbeat_timeout_s: float = 30.0) -> None:
        self._heartbeat_timeout = heartbeat_timeout_s
        self._members: dict[tuple[str, str], MemberStatus] = {}
        self._earlier: dict[tuple[str, str], MemberStatus] = {}  # counts of incarnations before a restart
        self._stop_requested = False
        self._claim: Claim | None = None
        self.ledger = Ledger()

    # -- members ---------------------------------------------------------------------------------------

    def update(self, status: MemberStatus) -> bool:
        """Record a member's status; returns whether a stop was requested, so one call does both."""
        key = (status.stage, status.member)
        status.updated = time.time()
        previous = self._members.get(key)
        if previous is not None and previous.incarnation != status.incarnation:
            self._fold_earlier(key, previous)
        if previous is not None and previous.state == "failed" and previous.incarnation == status.incarnation:
            return self._stop_requested  # declared dead: a late heartbeat of the old process changes nothing
        # A "restarting" mark may come after the new process's first report (the driver sends it async):
        # any report then wins, since only a live process sends one.
        self._members[key] = status
        return self._stop_requested

    def _fold_earlier(self, key: tuple[str, str], previous: MemberStatus) -> None:
        earlier = self._earlier.get(key)
        if earlier is None:
            self._earlier[key] = MemberStatus(previous.stage, previous.member)
            earlier = self._earlier[key]
        earlier.absorb(previous)

    def incarnation_of(self, stage: str, member: str) -> int:
        """The next incarnation number for a (re)starting member."""
        previous = self._members.get((stage, member))
        return 0 if previous is None else previous.incarnation + 1

    def mark_restarting(self, stage: str, member: str, error: str) -> None:
        """The member's process died and Ray is starting a new one: the stage is not over."""
        status = self._members.get((stage, member)) or MemberStatus(stage, member)
        status.state, status.error = "restarting", error
        self._members[(stage, member)] = status

    def mark_failed(self, stage: str, member: str, error: str) -> None:
        """The driver saw the member's process die (or fail to start) and no restart will come."""
        status = self._members.get((stage, member)) or MemberStatus(stage, member)
        status.state, status.error = "failed", error
        self._members[(stage, member)] = status

    def members(self) -> list[MemberStatus]:
        """Every member with the counts of its earlier incarnations added in."""
        out = []
        for key, status in self._members.items():
            merged = MemberStatus(**{f: getattr(status, f) for f in MemberStatus.__dataclass_fields__})
            merged.failed = dict(status.failed)
            if key in self._earlier:
                merged.absorb(self._earlier[key])
            silent = time.time() - status.updated > self._heartbeat_timeout
            if merged.state in ("starting", "running") and silent:
                merged.state = "silent"  # no heartbeat within lifecycle.heartbeat_timeout_s
            out.append(merged)
        return out

    def stage_closed(self, stage: str) -> bool:
        """No more input will come from `stage`: it ran, and every member is done or gone for good."""
        members = [m for m in self.members() if m.stage == stage]
        if not members or any(m.state not in ("done", "failed", "silent") for m in members):
            return False
        return self._stop_requested or any(m.final or m.state != "done" for m in members)

    # -- stop ------------------------------------------------------------------------------------------

    def request_stop(self) -> None:
        self._stop_requested = True

    def stop_requested(self) -> bool:
        return self._stop_requested

    # -- the frame ledger ------------------------------------------------------------------------------

    def produced(self, source: str, frames: int) -> None:
        self.ledger.produced(source, frames)

    def settle(self, counts: dict[str, int], frames: int = 0, outcome: str | None = None) -> None:
        """`frames` frames that no stage needs any more, with what became of them; `counts` per owner."""
        self.ledger.settle(counts, frames, outcome)

    def settled(self, source: str) -> int:
        return self.ledger.settled_by(source)

    def intend(self, intent: FileIntent) -> None:
        self.ledger.intend(intent)

    def commit(self, writer: str, path: str) -> None:
        self.ledger.commit(writer, path)

    def drop(self, writer: str, path: str, outcome: str) -> None:
        self.ledger.drop(writer, path, outcome)

    def pending_intents(self, writer: str | None = None) -> list[FileIntent]:
        return self.ledger.pending(writer)

    def ledger_summary(self) -> dict[str, Any]:
        return self.ledger.summary()

    # -- the namespace claim ---------------------------------------------------------------------------

    def claim(self, driver: str) -> str:
        """Atomic (one actor, one call at a time): 'won', or the id of the driver that holds the claim."""
        if self._claim is None or self._claim.driver == driver:
            self._claim = Claim(driver, time.time())
            return "won"
        return self._claim.driver

    def take_over(self, driver: str, stale: str) -> bool:
        """Compare and swap: win the claim from `stale`, a driver found dead, unless another got it first."""
        if self._claim is not None and self._claim.driver != stale:
            return False
        self._claim = Claim(driver, time.time())
        return True

    def release(self, driver: str) -> None:
        if self._claim is not None and self._claim.driver == driver:
            self._claim = None

    def reset(self) -> None:
        """A new run in a namespace reused from an earlier one starts from a clean slate."""
        self._members.clear()
        self._earlier.clear()
        self.ledger = Ledger()
        self._stop_requested = False

    def snapshot(self) -> dict[str, Any]:
        return {
            "stop_requested": self._stop_requested,
            "members": self.members(),
            "rss_bytes": process_rss(),
            "claim": self._claim,
        }


def get_or_create_coordinator(namespace: str, heartbeat_timeout_s: float = 30.0) -> ray.actor.ActorHandle:
    return Coordinator.options(
        name=COORDINATOR_NAME, namespace=namespace, lifetime="detached", get_if_exists=True
    ).remote(heartbeat_timeout_s)


def attach_coordinator(namespace: str) -> ray.actor.ActorHandle:
    try:
        return ray.get_actor(COORDINATOR_NAME, namespace=namespace)
    except ValueError:
        raise LookupError(
            f"no running pipeline: actor {COORDINATOR_NAME!r} not found in Ray namespace {namespace!r}"
        ) from None
