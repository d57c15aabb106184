"""lifecycle.stall_timeout_s: a run may wait only while frames move. Names the stage that holds things up."""

from __future__ import annotations

import time

from .coordinator import MemberStatus


def progress_signature(members: list[MemberStatus], ledger: dict) -> tuple:
    """Changes whenever any frame moves anywhere: in or out of a member, produced or settled."""
    moved = sum(m.frames_in + m.frames_out + m.frames_failed for m in members)
    return moved, ledger.get("produced", 0), sum(ledger.get("outcomes", {}).values())


def stalled_stage(queue_depths: dict[str, int]) -> str:
    """The last stage that has input and takes none of it (the ones before it are blocked on it); with no
    input anywhere, the producers."""
    if queue_depths.get("Q2", 0):
        return "write"
    if queue_depths.get("Q1", 0):
        return "infer"
    return "produce"


class StallWatch:
    def __init__(self, timeout_s: float | None):
        self._timeout = timeout_s
        self._signature: tuple | None = None
        self._since = time.monotonic()

    def observe(self, members: list[MemberStatus], ledger: dict, expected: int) -> float:
        """Seconds since anything moved. Members still starting (placed, loading, compiling; `expected` is how
        many should report) count as moving: the clock runs only once every one of them is at work."""
        signature = progress_signature(members, ledger)
        starting = len(members) < expected or any(m.state in ("starting", "restarting") for m in members)
        if signature != self._signature or starting:
            self._signature, self._since = signature, time.monotonic()
        return time.monotonic() - self._since

    def expired(self, members: list[MemberStatus], ledger: dict, expected: int) -> bool:
        idle = self.observe(members, ledger, expected)
        return self._timeout is not None and idle > self._timeout

    @property
    def timeout_s(self) -> float | None:
        return self._timeout
