"""Write stage: Q2 -> peak finding on parallel CPU tasks -> buffered CXI files."""

from __future__ import annotations

import logging
from collections import deque

import numpy as np
import ray

from ..config import PipelineConfig
from ..coordinator import MemberStatus
from ..output.cxi import CxiChunkWriter, KeptEvent, SlabBuffer
from ..output.geometry import layout_for
from ..output.peaks import PeakList, find_peaks
from ..profiling import Nvtx
from ..records import SegmentedBatch
from .consumer import Q2Consumer
from .prefetch import Prefetcher
from .steady import SteadyRate

log = logging.getLogger(__name__)


@ray.remote
def find_batch_peaks(mask: np.ndarray, frames: np.ndarray | None) -> list[PeakList]:
    """One task per batch: a task per frame would cost more in scheduling than in labelling."""
    return [find_peaks(mask[i], None if frames is None else frames[i]) for i in range(mask.shape[0])]


@ray.remote(max_concurrency=2)
class CxiWriterActor(Q2Consumer):
    def __init__(self, cfg: PipelineConfig, coordinator, name: str):
        self._join(cfg, coordinator, name)
        # Once: every .options() call makes a new wrapper class, cyclic garbage at the batch rate.
        self._find_peaks = find_batch_peaks.options(num_cpus=cfg.peaks.task_cpus)
        self._pending: deque = deque()  # (record, ObjectRef of peak lists), in Q2 order
        self._buffer: list[KeptEvent] = []
        self._files: list[str] = []
        self._writer: CxiChunkWriter | None = None
        self._slabs: SlabBuffer | None = None
        self._nvtx = Nvtx(cfg.profiling.enabled)
        self._steady = SteadyRate()
        self._ready()

    def run(self) -> MemberStatus:
        self._member.status.state = "running"
        prefetched = Prefetcher(self._drain, lambda r: r, 2, self._cfg.queues.poll_timeout_s)
        for record, _ in prefetched:
            if record is not None:
                with self._nvtx.range("dispatch peaks"):
                    self._dispatch(record)
            with self._nvtx.range("collect peaks"):
                self._collect(block=len(self._pending) >= self._cfg.peaks.max_pending_tasks)
        while self._pending:
            self._collect(block=True)
        self._flush()
        self._member.status.info.update(files=len(self._files), steady_frames_per_s=self._steady.rate())
        return self._member.finish(final=self._drain.ended_by_upstream())

    def _dispatch(self, record: SegmentedBatch) -> None:
        self._member.status.frames_in += record.size
        weighted = self._cfg.peaks.weighting == "intensity"
        task = self._find_peaks.remote(record.mask_ref, record.frames_ref if weighted else None)
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
        results = ray.get([task for _, task in done])
        images = ray.get([r.frames_ref for r, _ in done]) if self._cfg.writer.store_images else [None] * len(done)
        for (record, _), peaks, frames in zip(done, results, images):
            self._keep(record, peaks, frames)

    def _keep(self, record: SegmentedBatch, peaks: list[PeakList], frames: np.ndarray | None) -> None:
        w, status = self._cfg.writer, self._member.status
        for i, (meta, peak_list) in enumerate(zip(record.meta, peaks)):
            if len(peak_list) < w.min_num_peak:
                status.fail("filtered_min_num_peak", 1)
                continue
            if frames is not None:
                # Copied now: the producer that owns the frame may leave once this batch is settled.
                self._open(frames.shape[1:]).add(frames[i])
            self._buffer.append(KeptEvent(meta.frame_id, meta.timestamp, meta.photon_energy_eV, peak_list))
            status.frames_out += 1
            if len(self._buffer) >= w.buffer_size:
                with self._nvtx.range("write cxi"):
                    self._flush()
        status.batches += 1
        self._steady.record(record.size)
        self._member.settle({owner: record.size for owner in record.owners})

    def _open(self, frame_shape: tuple[int, ...]) -> SlabBuffer | None:
        """The file writer and, when images are stored, the slab buffer; made once, on the first frame."""
        if self._writer is None:
            w = self._cfg.writer
            layout = layout_for(w.geometry, tuple(frame_shape))
            self._writer = CxiChunkWriter(w.output_dir, w.file_prefix, self._member.name, layout, w.max_num_peak)
            self._slabs = SlabBuffer(layout, w.buffer_size) if w.store_images else None
        return self._slabs

    def _flush(self) -> None:
        if not self._buffer:
            return
        if self._writer is None:  # peaks only: no frame has opened the output yet
            self._open(self._shape_from_peaks())
        slabs = self._slabs.take() if self._slabs else None
        self._files.append(str(self._writer.write(self._buffer, slabs)))
        self._buffer = []

    def _shape_from_peaks(self) -> tuple[int, int, int]:
        if self._cfg.data.frame_shape is None:
            raise ValueError("writer.store_images=false needs data.frame_shape to place peaks in the slab")
        return self._cfg.data.frame_shape
