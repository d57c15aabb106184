"""Producer stage: synthetic frames into Q1."""

from __future__ import annotations

import logging
import time

import ray

from .. import logs
from ..config import PipelineConfig
from ..coordinator import MemberStatus
from ..kinds import ProducerKind
from ..profiling import Nvtx
from ..records import FrameBatch, FrameMeta
from ..store_mapping import Putter
from ..synthetic import FrameSynthesizer, SyntheticBatch, require_frame_shape
from .member import StageMember
from .wiring import q1_client

log = logging.getLogger(__name__)


def split_frames(total: int | None, parts: int) -> list[int | None]:
    if total is None:
        return [None] * parts
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


@ray.remote(max_concurrency=2)  # a second thread serves stop() while run() works
class SyntheticProducer:
    def __init__(self, cfg: PipelineConfig, coordinator, name: str, index: int, frames: int | None):
        logs.configure(cfg.output.log_level)
        self._cfg = cfg
        self._frames = frames
        self._member = StageMember(coordinator, "produce", name)
        self._putter = Putter(cfg.ray.prefault_store)
        seed = cfg.producer.seed * 1_000_003 + index
        self._synth = FrameSynthesizer(cfg.producer, require_frame_shape(cfg), cfg.data.dtype, seed)
        self._q1 = q1_client(cfg)
        self._pool: list[SyntheticBatch] = []
        self._pool_index = 0
        self._nvtx = Nvtx(cfg.profiling.enabled)
        self._member.publish(force=True)

    def stop(self) -> None:
        self._member.local_stop.set()

    def run(self) -> MemberStatus:
        member, cfg = self._member, self._cfg
        member.status.state = "running"
        seq = 0
        while self._frames is None or seq < self._frames:
            if member.local_stop.is_set() or member.publish():
                break
            size = cfg.data.batch_size if self._frames is None else min(cfg.data.batch_size, self._frames - seq)
            with self._nvtx.range("produce batch"):
                record = self._make_batch(seq, size)
            with self._nvtx.range("put_q1"):
                if not self._push(record):
                    break
            seq += size
            member.status.frames_out = seq
            member.status.batches += 1
            if cfg.producer.push_interval_s:
                time.sleep(cfg.producer.push_interval_s)
        finished = self._frames is not None and seq >= self._frames
        service = bool(cfg.lifecycle.service)
        member.finish(final=finished and not service)
        member.linger(seq, cfg.producer.linger_timeout_s)
        return member.status

    def _make_batch(self, seq: int, size: int) -> FrameBatch:
        batch = self._next_synthetic(size)
        now = time.time()
        energy = self._cfg.producer.photon_energy_eV
        meta = [
            FrameMeta(f"{self._member.name}:{seq + i}", now, energy, extra={"true_peaks": batch.true_peaks[i]})
            for i in range(size)
        ]
        return FrameBatch(f"{self._member.name}:b{seq}", (self._member.name,), self._putter.put(batch.frames), meta)

    def _next_synthetic(self, size: int) -> SyntheticBatch:
        pool_size = self._cfg.producer.unique_batches
        if pool_size is None or size != self._cfg.data.batch_size:
            return self._synth.batch(size)
        if len(self._pool) < pool_size:
            self._pool.append(self._synth.batch(size))
            return self._pool[-1]
        self._pool_index = (self._pool_index + 1) % pool_size
        return self._pool[self._pool_index]

    def _push(self, record: FrameBatch) -> bool:
        """Blocks while Q1 is full. Gives up only when told to stop and the drain deadline passes."""
        retry_s = self._cfg.queues.poll_timeout_s * 5
        return self._member.enqueue(self._q1, record, retry_s, self._cfg.lifecycle.drain_timeout_s)


def plan(cfg: PipelineConfig) -> list[tuple]:
    """One actor per producer, each with its share of the frames."""
    require_frame_shape(cfg)
    return list(enumerate(split_frames(cfg.producer.total_frames, cfg.producer.num_producers)))


KIND = ProducerKind(SyntheticProducer, plan)
