"""lifecycle.stall_timeout_s: a run may wait only while frames move. Names the stage that holds things up."""

from __future__ import annotations

import time

from .coordinator import MemberStatus


def progress_signature(members: list[MemberStatus], ledger: dict) -> tuple:
    """Changes whenever any frame moves anywhere: in or out of a member, produced or settled."""
    moved = sum(m.frames_in + m.frames_out + m.frames_failed for m in members)
    return moved, ledger.get("produced", 0), sum(ledger.get("outcomes", {}).values())


def stalled_stage(queue_depths: dict[str, int]) -> str:
    """The first stage that has input and takes none of it; with no input anywhere, the producers."""
    if queue_depths.get("Q1", 0):
        return "infer"
    if queue_depths.get("Q2", 0):
        return "write"
    return "produce"


class StallWatch:
    def __init__(self, timeout_s: float | None):
        self._timeout = timeout_s
        self._signature: tuple | None = None
        self._since = time.monotonic()

    def observe(self, members: list[MemberStatus], ledger: dict) -> float:
        """Seconds since anything moved. Members still starting (loading, compiling) count as moving."""
        signature = progress_signature(members, ledger)
        if signature != self._signature or any(m.state == "starting" for m in members):
            self._signature, self._since = signature, time.monotonic()
        return time.monotonic() - self._since

    def expired(self, members: list[MemberStatus], ledger: dict) -> bool:
        idle = self.observe(members, ledger)
        return self._timeout is not None and idle > self._timeout

    @property
    def timeout_s(self) -> float | None:
        return self._timeout
