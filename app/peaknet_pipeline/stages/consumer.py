"""What every Q2 consumer (CXI writer, counting sink) shares: its coordinator membership, its input drain,
its start guard and its stop()."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ray

from .. import logs
from ..config import PipelineConfig
from ..coordinator import MemberStatus
from ..records import SegmentedBatch
from .member import InputDrain, StageMember, fetch_failure
from .wiring import q2_client


class Q2Consumer:
    """Base of the write-stage actors; a subclass calls _join first and _ready last in its __init__."""

    def _join(self, cfg: PipelineConfig, coordinator, name: str) -> None:
        logs.configure(cfg.output.log_level)
        self._cfg = cfg
        self._member = StageMember(coordinator, "write", name)
        self._drain = InputDrain(self._member, q2_client(cfg), cfg.lifecycle.drain_timeout_s)
        self._start_error: MemberStatus | None = None

    def _guard(self, setup: Callable[[], None]) -> None:
        """Run the setup that depends on settings and the disk; a failure is kept for run() to report."""
        self._start_error = self._start_error or self._member.guard(setup)

    def _ready(self) -> None:
        if self._start_error is None:
            self._member.publish(force=True)

    def _fetch(self, items: list, refs: Callable[[Any], list]) -> list:
        """ray.get of each item's refs (the same number per item), batched; an item whose objects are gone
        (their owner died) gets the exception instead, so one dead producer or inference actor never takes
        the consumer down."""
        try:
            flat = ray.get([ref for item in items for ref in refs(item)])
            width = len(flat) // len(items) if items else 0
            return [flat[i * width : (i + 1) * width] for i in range(len(items))]
        except ray.exceptions.RayError:
            pass
        out = []
        for item in items:
            try:
                out.append(ray.get(refs(item)))
            except ray.exceptions.RayError as exc:
                out.append(exc)
        return out

    def _settle_failed(self, record: SegmentedBatch, exc: BaseException) -> None:
        reason = fetch_failure(exc)
        self._member.status.fail(reason, record.size)
        self._member.settle(record.owners, record.size, reason)

    def stop(self) -> None:
        self._member.local_stop.set()
