"""Progress while a pipeline runs: a live line on a terminal, a plain log line now and then otherwise."""

from __future__ import annotations

import logging
import sys
import time

from .coordinator import STAGES, MemberStatus
from .queue import ShardStats

log = logging.getLogger(__name__)


class Progress:
    def __init__(self, mode: str, interval_s: float):
        if mode == "auto":
            mode = "live" if sys.stderr.isatty() else "log"
        self._mode = mode
        self._interval = interval_s if mode == "log" else 0.5
        self._last_time = time.monotonic()
        self._last_counts: dict[str, int] = {}
        self._live_shown = False

    def due(self) -> bool:
        return self._mode != "off" and time.monotonic() - self._last_time >= self._interval

    def show(self, members: list[MemberStatus], queues: dict[str, list[ShardStats]]) -> None:
        now = time.monotonic()
        dt = max(now - self._last_time, 1e-6)
        self._last_time = now
        parts = []
        for stage in STAGES:
            out = sum(m.frames_out for m in members if m.stage == stage)
            if not any(m.stage == stage for m in members):
                continue
            rate = (out - self._last_counts.get(stage, out)) / dt
            self._last_counts[stage] = out
            parts.append(f"{stage} {out} ({rate:.0f}/s)")
        for name, stats in queues.items():
            parts.append(f"{name} {sum(s.depth for s in stats)}/{sum(s.maxsize for s in stats)}")
        line = " | ".join(parts)
        if self._mode == "live":
            sys.stderr.write("\r\033[K" + line)
            sys.stderr.flush()
            self._live_shown = True
        else:
            log.info("progress: %s", line)

    def close(self) -> None:
        if self._live_shown:
            sys.stderr.write("\n")
