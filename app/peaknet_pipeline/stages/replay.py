"""File producer stage: frames from HDF5/CXI files into Q1, in file order, optionally looped and paced."""

from __future__ import annotations

import logging
import time

import ray

from ..config import PipelineConfig
from ..coordinator import MemberStatus
from ..ingest.files import FileBatch, FrameFile, resolve_paths
from ..kinds import ProducerKind
from ..records import FrameBatch, FrameMeta
from .member import StageMember
from .wiring import q1_client

log = logging.getLogger(__name__)


@ray.remote(max_concurrency=2)  # a second thread serves stop() while run() works
class FileProducer:
    def __init__(self, cfg: PipelineConfig, coordinator, name: str, paths: list[str]):
        self._cfg = cfg
        self._member = StageMember(coordinator, "produce", name)
        self._files: list[FrameFile] = []

        def open_all() -> None:  # every file checked before the first frame moves: a bad one ends the run
            self._files.extend(FrameFile(path, cfg) for path in paths)

        if (failed := self._member.guard(open_all)) is not None:
            self._close()
            self._failed = failed
            return
        self._failed: MemberStatus | None = None
        self._q1 = q1_client(cfg)
        self._member.status.info.update(files=len(paths), events_per_loop=sum(f.count for f in self._files))
        self._member.publish(force=True)

    def stop(self) -> None:
        self._member.local_stop.set()

    def run(self) -> MemberStatus:
        if self._failed is not None:
            return self._failed
        member, fc = self._member, self._cfg.producer.file
        member.status.state = "running"
        started, seq, finished = time.monotonic(), 0, True
        for loop in range(fc.loops):
            for frame_file in self._files:
                for start in range(0, frame_file.count, self._cfg.data.batch_size):
                    if member.local_stop.is_set() or member.publish():
                        finished = False
                        break
                    stop = min(start + self._cfg.data.batch_size, frame_file.count)
                    if not self._push(self._record(frame_file.read(start, stop), seq, loop)):
                        finished = False
                        break
                    seq += stop - start
                    self._pace(started, seq)
                if not finished:
                    break
            if not finished:
                break
        self._close()
        member.finish(final=finished and not self._cfg.lifecycle.service)
        member.linger(seq, self._cfg.producer.linger_timeout_s)
        return member.status

    def _record(self, batch: FileBatch, seq: int, loop: int) -> FrameBatch:
        suffix = f"#{loop}" if loop else ""  # ids stay unique over loops; the first pass keeps the file's
        now = time.time()
        meta = [
            FrameMeta(f"{event_id}{suffix}", now if ts != ts else float(ts), float(energy))  # NaN: no timestamp
            for event_id, ts, energy in zip(batch.event_ids, batch.timestamps, batch.photon_energy_eV, strict=True)
        ]
        return FrameBatch(f"{self._member.name}:b{seq}", (self._member.name,), ray.put(batch.frames), meta)

    def _push(self, record: FrameBatch) -> bool:
        """Blocks while Q1 is full. Gives up only when told to stop and the drain deadline passes."""
        member = self._member
        member.produced(record.size)
        retry_s = self._cfg.queues.poll_timeout_s * 5
        if member.put_until_accepted(self._q1, record, retry_s, self._cfg.lifecycle.drain_timeout_s):
            member.status.frames_out += record.size
            member.status.batches += 1
            return True
        member.status.fail("not_enqueued_at_stop", record.size)
        member.settle(record.owners, record.size, "not_enqueued_at_stop")
        return False

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
