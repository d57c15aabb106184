"""Write stage: Q2 -> peak finding on parallel CPU tasks -> CXI files filled as events are kept.

A frame counts as written only when its file is renamed into place: the finished file is announced to the
coordinator (intent) just before the rename and committed after it, and a restarted writer resolves an
intent its dead predecessor left from what is on disk, then removes that predecessor's partial files.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import ray

from ..config import PipelineConfig
from ..coordinator import MemberStatus
from ..kinds import WriterKind
from ..ledger import FileIntent, resolve_on_disk
from ..output.cxi import (
    CxiChunkWriter,
    CxiFile,
    KeptEvent,
    check_writable,
    describe_os_error,
    remove_stale_temporaries,
)
from ..output.geometry import layout_for
from ..output.peaks import PeakList, find_peaks
from ..profiling import Nvtx
from ..quality import PeakTally, truths_of
from ..records import SegmentedBatch
from .consumer import Q2Consumer
from .prefetch import Prefetcher
from .steady import SteadyRate

log = logging.getLogger(__name__)


class WriteFailed(RuntimeError):
    """A CXI file could not be written (full disk, read-only or missing directory)."""


@ray.remote
def find_batch_peaks(mask: np.ndarray, frames: np.ndarray | None, truths: list) -> BatchPeaks:
    """One task per batch: a task per frame would cost more in scheduling than in labelling. Matching against
    planted peaks (synthetic frames) happens here too, off the writer's thread."""
    peaks = [find_peaks(mask[i], None if frames is None else frames[i]) for i in range(mask.shape[0])]
    tally = PeakTally()
    tally.add_batch((p.positions for p in peaks), truths)
    return BatchPeaks(peaks, tally.counts() if tally.frames else None)


@dataclass(slots=True)
class BatchPeaks:
    peaks: list[PeakList]
    quality: dict[str, int] | None  # PeakTally counts, when the frames carried their planted peaks


@ray.remote(max_concurrency=2)
class CxiWriterActor(Q2Consumer):
    def __init__(self, cfg: PipelineConfig, coordinator, name: str):
        self._join(cfg, coordinator, name)
        # Once: every .options() call makes a new wrapper class, cyclic garbage at the batch rate.
        self._find_peaks = find_batch_peaks.options(num_cpus=cfg.peaks.task_cpus)
        self._pending: deque = deque()  # (record, ObjectRef of peak lists), in Q2 order
        self._file: CxiFile | None = None  # the file being filled, under its temporary name
        self._quality = PeakTally()
        self._files: list[str] = []
        self._writer: CxiChunkWriter | None = None
        self._nvtx = Nvtx(cfg.profiling.enabled)
        self._steady = SteadyRate()
        self._guard(self._take_over_output)
        self._ready()

    def _take_over_output(self) -> None:
        """Check the directory, then finish what an earlier process of this writer left behind."""
        out = self._cfg.writer.output_dir
        check_writable(out)
        coordinator, name = self._member.coordinator, self._member.name
        committed = resolve_on_disk(coordinator, ray.get(coordinator.pending_intents.remote(name)))
        stale = remove_stale_temporaries(out, name)
        if committed or stale:
            log.warning("%s: restarted; %d file(s) of the last process committed, %d partial removed",
                        name, committed, len(stale))  # fmt: skip

    def run(self) -> MemberStatus:
        if self._start_error is not None:
            return self._start_error
        self._member.status.state = "running"
        try:
            self._consume_all()
        except WriteFailed as exc:
            return self._member.start_failed(exc)
        self._member.status.info.update(files=len(self._files), steady_frames_per_s=self._steady.rate())
        return self._member.finish(final=self._drain.ended_by_upstream())

    def _consume_all(self) -> None:
        prefetched = Prefetcher(self._drain, lambda r: r, 2, self._cfg.queues.poll_timeout_s)
        for record, _ in prefetched:
            if record is not None:
                with self._nvtx.range("dispatch peaks"):
                    self._dispatch(record)
            with self._nvtx.range("collect peaks"):
                self._collect(block=len(self._pending) >= self._cfg.peaks.max_pending_tasks)
            if self._file and time.monotonic() - self._file.opened > self._cfg.writer.flush_interval_s:
                self._flush()  # slow input: events reach the disk (and count as written) in bounded time
        while self._pending:
            self._collect(block=True)
        self._flush()

    def _dispatch(self, record: SegmentedBatch) -> None:
        self._member.status.frames_in += record.size
        weighted = self._cfg.peaks.weighting == "intensity"
        task = self._find_peaks.remote(record.mask_ref, record.frames_ref if weighted else None, truths_of(record))
        self._pending.append((record, task))

    def _collect(self, block: bool) -> None:
        """Take finished tasks in order; ray.wait over all of them, never one ray.get per item."""
        if not self._pending:
            return
        if block:  # the oldest first, so events keep their Q2 order
            ray.wait([self._pending[0][1]])
        refs = [task for _, task in self._pending]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        ready_ids = {ref.hex() for ref in ready}  # compare ids: the refs ray.wait returns are new objects
        done = []
        while self._pending and self._pending[0][1].hex() in ready_ids:
            done.append(self._pending.popleft())
        if not done:
            return
        images = self._cfg.writer.store_images
        fetched = self._fetch(done, lambda pair: [pair[1], pair[0].frames_ref] if images else [pair[1]])
        for (record, _), got in zip(done, fetched):
            if isinstance(got, Exception):
                self._settle_failed(record, got)
            else:
                self._keep(record, got[0].peaks, got[1] if images else None)
                if got[0].quality:
                    self._quality.merge(got[0].quality)
                    self._member.status.info["peak_quality"] = self._quality.counts()

    def _keep(self, record: SegmentedBatch, peaks: list[PeakList], frames: np.ndarray | None) -> None:
        w, status = self._cfg.writer, self._member.status
        filtered = 0
        for i, (meta, peak_list) in enumerate(zip(record.meta, peaks)):
            if len(peak_list) < w.min_num_peak:
                filtered += 1
                continue
            event = KeptEvent(meta.frame_id, meta.timestamp, meta.photon_energy_eV, peak_list)
            # The image goes to disk now: the producer that owns the frame may leave once this batch is settled.
            with self._nvtx.range("write image"):
                self._add(event, None if frames is None else frames[i])
            if len(self._file) >= w.buffer_size:
                with self._nvtx.range("write cxi"):
                    self._flush()
        if filtered:
            status.fail("filtered_min_num_peak", filtered)
        # Kept images are in the file and peaks copied: the owners may let the objects go. Filtered frames
        # have their outcome now, kept events on commit; one call to the coordinator for both.
        self._member.settle(record.owners, filtered, "filtered_min_num_peak" if filtered else None, record.size)
        status.batches += 1
        self._steady.record(record.size)

    def _add(self, event: KeptEvent, frame: np.ndarray | None) -> None:
        """Into the file being filled, which the first event of a file opens."""
        try:
            if self._file is None:
                self._file = self._open_file(frame)
            self._file.add(event, frame)
        except (OSError, RuntimeError) as exc:  # h5py reports some failed writes as RuntimeError
            raise self._write_failed(exc, 1) from None

    def _open_file(self, frame: np.ndarray | None) -> CxiFile:
        """A new file; the file writer is made once, from the first frame's shape (peaks only: the config's)."""
        if self._writer is None:
            w = self._cfg.writer
            layout = layout_for(w.geometry, tuple(frame.shape) if frame is not None else self._shape_from_peaks())
            self._writer = CxiChunkWriter(
                w.output_dir, w.file_prefix, self._member.name, layout, w.max_num_peak, w.compression
            )
        return self._writer.open(self._cfg.writer.buffer_size, None if frame is None else frame.dtype)

    def _flush(self) -> None:
        """Finish the file, announce it, rename it into place, commit it. The intent comes once the data is
        written and just before the rename: a crash from there is resolvable from the disk, and a writer
        that was stalled past the end of its run finds the coordinator gone and renames nothing."""
        out, self._file = self._file, None
        if out is None:
            return
        intent = FileIntent(self._member.name, str(out.path), len(out))
        coordinator = self._member.coordinator
        try:
            out.finish()
        except (OSError, RuntimeError) as exc:  # h5py reports a failed write at close as RuntimeError
            raise self._write_failed(exc, len(out)) from None
        try:
            ray.get(coordinator.intend.remote(intent))
        except ray.exceptions.RayActorError:
            out.discard()
            raise
        try:
            out.publish()
        except OSError as exc:
            coordinator.drop.remote(intent.writer, intent.path, "write_failed")
            raise self._write_failed(exc, len(out)) from None
        coordinator.commit.remote(intent.writer, intent.path)
        self._files.append(str(out.path))
        self._member.status.frames_out += len(out)

    def _write_failed(self, exc: BaseException, unfiled: int) -> WriteFailed:
        """The file being filled is given up: its events and `unfiled` more were not written."""
        lost = unfiled
        if self._file is not None:
            lost += len(self._file)
            self._file.discard()
            self._file = None
        self._member.status.fail("write_failed", lost)
        return WriteFailed(
            f"cannot write a CXI file in writer.output_dir={self._cfg.writer.output_dir!r}: "
            f"{describe_os_error(exc)}; {lost} events not written"
        )

    def _shape_from_peaks(self) -> tuple[int, int, int]:
        if self._cfg.data.frame_shape is None:
            raise ValueError("writer.store_images=false needs data.frame_shape to place peaks in the slab")
        return self._cfg.data.frame_shape


KIND = WriterKind(CxiWriterActor, peak_tasks=True)
