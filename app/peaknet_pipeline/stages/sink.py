"""Q2 consumer that only checks and counts what arrives (writer.kind: none): for tests and for
measuring the front half of the pipeline without files."""

from __future__ import annotations

import logging

import numpy as np
import ray

from ..config import PipelineConfig
from ..coordinator import MemberStatus
from ..kinds import WriterKind
from ..quality import PeakTally, truths_of
from ..records import SegmentedBatch
from .consumer import Q2Consumer
from .steady import SteadyRate

log = logging.getLogger(__name__)
QUALITY_EVERY = 8  # batches: peak finding on every one would slow the stage it measures


@ray.remote(max_concurrency=2)
class SinkActor(Q2Consumer):
    def __init__(self, cfg: PipelineConfig, coordinator, name: str):
        self._join(cfg, coordinator, name)
        self._frame_ids: list[str] = []
        self._frames_with_peak_pixels = 0
        self._steady = SteadyRate()
        self._quality = PeakTally()
        self._ready()

    def run(self) -> MemberStatus:
        if self._start_error is not None:
            return self._start_error
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
        for record, got in zip(records, self._fetch(records, lambda r: [r.mask_ref])):
            status.frames_in += record.size
            if isinstance(got, Exception):
                self._settle_failed(record, got)
                continue
            mask = got[0]
            self._frames_with_peak_pixels += int(np.count_nonzero(mask.reshape(mask.shape[0], -1).any(axis=1)))
            self._frame_ids.extend(m.frame_id for m in record.meta)
            if status.batches % QUALITY_EVERY == 0:
                self._tally(record, mask)
            status.frames_out += record.size
            status.batches += 1
            self._member.settle(record.owners, record.size, "delivered")
        self._steady.record(sum(r.size for r in records))

    def _tally(self, record: SegmentedBatch, mask: np.ndarray) -> None:
        """Peak-level quality of synthetic frames, on a sample of batches: this stage measures speed."""
        self._quality.add_masks(mask, truths_of(record))
        if self._quality.frames:
            self._member.status.info["peak_quality"] = self._quality.counts()


KIND = WriterKind(SinkActor, peak_tasks=False)
