"""Steady-state throughput of a stage, for reports and benchmarks."""

from __future__ import annotations

import time


class SteadyRate:
    """Frames/s from the first output batch to the last: start-up and warm-up excluded."""

    def __init__(self) -> None:
        self._first: float | None = None
        self._last = 0.0
        self._frames_after_first = 0

    def record(self, frames: int) -> None:
        now = time.perf_counter()
        if self._first is None:
            self._first = now
        else:
            self._frames_after_first += frames
        self._last = now

    def rate(self) -> float | None:
        if self._first is None or self._last <= self._first:
            return None
        return round(self._frames_after_first / (self._last - self._first), 2)
