"""File producer stage: frames from HDF5/CXI files into Q1, in file order, optionally looped and paced."""

from __future__ import annotations

import logging
import time

import ray

from .. import logs
from ..config import PipelineConfig
from ..coordinator import MemberStatus
from ..ingest.files import FileBatch, FrameFile, resolve_paths
from ..kinds import ProducerKind
from ..records import FrameBatch, FrameMeta
from ..store_mapping import Putter
from .member import StageMember
from .wiring import q1_client

log = logging.getLogger(__name__)


@ray.remote(max_concurrency=2)  # a second thread serves stop() while run() works
class FileProducer:
    def __init__(self, cfg: PipelineConfig, coordinator, name: str, paths: list[str]):
        logs.configure(cfg.output.log_level)
        self._cfg = cfg
        self._member = StageMember(coordinator, "produce", name)
        self._putter = Putter(cfg.ray.prefault_store)
        self._files: list[FrameFile] = []

        def open_all() -> None:  # every file checked before the first frame moves: a bad one ends the run
            self._files.extend(FrameFile(path, cfg) for path in paths)

        self._failed: MemberStatus | None = self._member.guard(open_all)
        if self._failed is not None:
            self._close()
            return
        self._q1 = q1_client(cfg)
        self._member.status.info.update(files=len(paths), events_per_loop=sum(f.count for f in self._files))
        self._member.publish(force=True)

    def stop(self) -> None:
        self._member.local_stop.set()

    def run(self) -> MemberStatus:
        if self._failed is not None:
            return self._failed
        member = self._member
        member.status.state = "running"
        started, seq, finished = time.monotonic(), 0, True
        for loop, frame_file, start, stop in self._batches():
            if member.local_stop.is_set() or member.publish() or not self._push(frame_file, start, stop, seq, loop):
                finished = False
                break
            seq += stop - start
            self._pace(started, seq)
        self._close()
        member.finish(final=finished and not self._cfg.lifecycle.service)
        member.linger(seq, self._cfg.producer.linger_timeout_s)
        return member.status

    def _batches(self):
        """(loop, file, start, stop) of every batch, in replay order."""
        size = self._cfg.data.batch_size
        for loop in range(self._cfg.producer.file.loops):
            for frame_file in self._files:
                for start in range(0, frame_file.count, size):
                    yield loop, frame_file, start, min(start + size, frame_file.count)

    def _record(self, batch: FileBatch, seq: int, loop: int) -> FrameBatch:
        suffix = f"#{loop}" if loop else ""  # ids stay unique over loops; the first pass keeps the file's
        now = time.time()
        meta = [
            FrameMeta(f"{event_id}{suffix}", now if ts != ts else float(ts), float(energy))  # NaN: no timestamp
            for event_id, ts, energy in zip(batch.event_ids, batch.timestamps, batch.photon_energy_eV, strict=True)
        ]
        return FrameBatch(f"{self._member.name}:b{seq}", (self._member.name,), self._putter.put(batch.frames), meta)

    def _push(self, frame_file: FrameFile, start: int, stop: int, seq: int, loop: int) -> bool:
        """Read one batch and put it into Q1; False when a stop's drain deadline passed first."""
        record = self._record(frame_file.read(start, stop), seq, loop)
        retry_s = self._cfg.queues.poll_timeout_s * 5
        if not self._member.enqueue(self._q1, record, retry_s, self._cfg.lifecycle.drain_timeout_s):
            return False
        self._member.status.frames_out += record.size
        self._member.status.batches += 1
        return True

    def _pace(self, started: float, frames: int) -> None:
        time.sleep(pacing_delay(self._cfg.producer.file.frames_per_s, started, frames, time.monotonic()))

    def _close(self) -> None:
        for frame_file in self._files:
            frame_file.close()


def pacing_delay(rate: float | None, started: float, frames: int, now: float) -> float:
    """How long to wait so that `frames` sent since `started` keep to `rate` frames/s on average (no rate:
    none); a producer that fell behind catches up without waiting."""
    return max(0.0, started + frames / rate - now) if rate else 0.0


def plan(cfg: PipelineConfig) -> list[tuple]:
    """Files dealt round-robin over at most producer.num_producers actors, each replaying its share in order."""
    paths = resolve_paths(cfg.producer.file.paths)
    n = min(cfg.producer.num_producers, len(paths))
    return [(paths[i::n],) for i in range(n)]


KIND = ProducerKind(FileProducer, plan)
