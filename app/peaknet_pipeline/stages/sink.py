"""Q2 consumer that only checks and counts what arrives (writer.kind: none): for tests and for
measuring the front half of the pipeline without files."""

from __future__ import annotations

import logging

import numpy as np
import ray

from ..config import PipelineConfig
from ..coordinator import MemberStatus
from ..records import SegmentedBatch
from .consumer import Q2Consumer
from .steady import SteadyRate

log = logging.getLogger(__name__)


@ray.remote(max_concurrency=2)
class SinkActor(Q2Consumer):
    def __init__(self, cfg: PipelineConfig, coordinator, name: str):
        self._join(cfg, coordinator, name)
        self._frame_ids: list[str] = []
        self._frames_with_peak_pixels = 0
        self._steady = SteadyRate()
        self._ready()

    def run(self) -> MemberStatus:
        self._member.status.state = "running"
        max_items = 4
        while (records := self._drain.next_records(max_items, self._cfg.queues.poll_timeout_s)) is not None:
            if records:
                self._consume(records)
        unique = len(set(self._frame_ids))
        self._member.status.info.update(
            unique_frames=unique,
            duplicate_frames=len(self._frame_ids) - unique,
            frames_with_peak_pixels=self._frames_with_peak_pixels,
            steady_frames_per_s=self._steady.rate(),
        )
        return self._member.finish(final=self._drain.ended_by_upstream())

    def _consume(self, records: list[SegmentedBatch]) -> None:
        status = self._member.status
        masks = ray.get([r.mask_ref for r in records])  # one batched get, not one per record
        for mask in masks:
            self._frames_with_peak_pixels += int(np.count_nonzero(mask.reshape(mask.shape[0], -1).any(axis=1)))
        settle: dict[str, int] = {}
        for record in records:
            self._frame_ids.extend(m.frame_id for m in record.meta)
            status.frames_in += record.size
            status.frames_out += record.size
            status.batches += 1
            for owner in record.owners:
                settle[owner] = settle.get(owner, 0) + record.size
        self._steady.record(sum(r.size for r in records))
        self._member.settle(settle)
