"""Inference stage: Q1 -> model on GPU (or CPU) -> uint8 masks -> Q2."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import ray
import torch

from .. import logs
from ..config import PipelineConfig
from ..coordinator import MemberStatus
from ..inference.batch_check import BatchRejected, check_batch
from ..inference.engine import effective_precision, make_engine, resolve_device, spec_from_config, warm_up
from ..inference.models import build_model
from ..model.segmenter import InputError
from ..profiling import Nvtx, TorchTrace
from ..records import FrameBatch, SegmentedBatch
from ..store_mapping import Putter
from .member import InputDrain, StageMember, fetch_failure
from .prefetch import BackgroundPutter, Prefetcher
from .ratelimit import RateLimitedLog
from .steady import SteadyRate
from .wiring import q1_client, q2_client

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Assembly:
    """Masks of one record, filled chunk by chunk when a record is larger than the batch buffers."""

    record: FrameBatch
    masks: np.ndarray
    missing: int


class InferenceWorker:
    """Plain class holding the stage logic; InferenceActor wraps it for Ray."""

    def __init__(self, cfg: PipelineConfig, member: StageMember):
        self._cfg = cfg
        self._member = member
        self._store = Putter(cfg.ray.prefault_store)
        self._device = resolve_device(cfg.inference.device)
        if self._device == "cpu":
            torch.set_num_threads(cfg.inference.cpu_threads or max(1, int(cfg.inference.num_cpus)))
        self._model, model_info = build_model(cfg.model)
        precision = effective_precision(cfg.inference.precision, self._device)
        self._member.status.info.update(model={**model_info, "precision": precision}, device=self._device)
        self._nvtx = Nvtx(cfg.profiling.enabled)
        self._trace = TorchTrace(cfg.profiling, member.name)
        self._q1 = q1_client(cfg)
        self._q2 = q2_client(cfg)
        self._dtype = np.dtype(cfg.data.dtype)
        self._frame_shape = cfg.data.frame_shape
        self._engine = None
        self._errors = RateLimitedLog(log, every_s=10.0)
        self._steady = SteadyRate()
        self._putter = BackgroundPutter(self._put_q2, cfg.inference.num_buffers)
        self._drain = InputDrain(self._member, self._q1, cfg.lifecycle.drain_timeout_s)
        self._member.publish(force=True)

    @property
    def member(self) -> StageMember:
        return self._member

    def _ensure_engine(self, frame_shape: tuple[int, int, int]) -> None:
        if self._engine is not None:
            return
        inf = self._cfg.inference
        self._model.check_input((1, *frame_shape), torch.float32)
        spec = spec_from_config(self._cfg, frame_shape)
        self._engine = make_engine(self._model, spec, self._device, self._emit, self._nvtx)
        with self._nvtx.range("warm_up"):
            seconds = warm_up(self._engine, inf.warmup_iters)
        self._engine.busy_s = 0.0
        self._frame_shape = frame_shape
        fused, fp8 = self._engine.fused_blocks, self._engine.fp8_blocks
        self._member.status.info.update(
            warmup_s=round(seconds, 3), warmup_shape=list(frame_shape), fused_blocks=fused, fp8_blocks=fp8
        )
        log.info(
            "%s: warm-up on %s done in %.1fs (%s, %d blocks on Triton kernels, %d with FP8 GEMMs, GELU %s)",
            self._member.name, frame_shape, seconds, self._device, fused, fp8, spec.mlp_gelu,
        )  # fmt: skip

    def run(self) -> MemberStatus:
        member = self._member
        if self._frame_shape is not None:  # pre-warm-up: ready before the first frame arrives
            try:
                self._ensure_engine(self._frame_shape)
            except Exception as exc:  # a shape the model cannot take, a kernel that does not compile
                return member.start_failed(exc)
        member.status.state = "running"
        t_start = t_last = None
        waited_s = waited_by_last = 0.0  # blocked on the prefetcher, counted from the first batch on
        depth = self._cfg.inference.num_buffers
        prefetched = iter(
            Prefetcher(self._drain, lambda r: ray.get(r.frames_ref), depth, self._cfg.queues.poll_timeout_s)
        )
        while True:
            t_wait = time.perf_counter()
            item = next(prefetched, None)
            if t_start is not None:
                waited_s += time.perf_counter() - t_wait
            if item is None:
                break
            record, frames = item
            if record is None:  # input idle
                continue
            t_start = t_start or time.perf_counter()
            self._trace.step()
            with self._nvtx.range(f"batch {record.batch_id}"):
                self._process(record, frames)
            t_last, waited_by_last = time.perf_counter(), waited_s
        if self._engine is not None:
            self._engine.flush()
        self._putter.close()
        if t_start is not None and t_last > t_start:
            member.status.info["input_wait_fraction"] = round(waited_by_last / (t_last - t_start), 4)
        if t_start is not None and self._engine is not None:
            member.status.info["busy_fraction"] = round(self._engine.busy_s / (time.perf_counter() - t_start), 4)
        member.status.info["steady_frames_per_s"] = self._steady.rate()
        if self._trace.close():
            member.status.info["torch_trace"] = self._trace.written
        member.finish(final=self._drain.ended_by_upstream())
        member.linger(member.status.frames_out, self._cfg.producer.linger_timeout_s)
        return member.status

    def _process(self, record: FrameBatch, frames) -> None:
        status = self._member.status
        status.frames_in += record.size
        try:
            if isinstance(frames, Exception):
                raise frames
            if self._frame_shape is None and isinstance(frames, np.ndarray) and frames.ndim == 4:
                self._ensure_engine(tuple(frames.shape[1:]))  # post-warm-up on the first batch's shape
            check_batch(frames, self._frame_shape, self._dtype)
            if frames.shape[0] != record.size:
                raise BatchRejected("meta_mismatch", f"{record.size} metadata entries for {frames.shape[0]} frames")
        except BatchRejected as exc:
            self._reject(record, exc.reason, str(exc))
            return
        except InputError as exc:
            self._reject(record, "model_input", str(exc))
            return
        except Exception as exc:  # a lost object or a broken producer must not end the stage
            self._reject(record, fetch_failure(exc), str(exc))
            return
        assembly = _Assembly(record, np.empty(frames.shape, np.uint8), frames.shape[0])
        step = self._cfg.data.batch_size
        for start in range(0, frames.shape[0], step):
            self._engine.submit(frames[start : start + step], (assembly, start))

    def _emit(self, tag, masks: np.ndarray) -> None:
        if tag is None:  # warm-up batch
            return
        assembly, start = tag
        assembly.masks[start : start + masks.shape[0]] = masks
        assembly.missing -= masks.shape[0]
        if assembly.missing:
            return
        self._putter.submit(assembly)

    def _put_q2(self, assembly: _Assembly) -> None:
        """On the putter thread: masks into the object store, the record into Q2."""
        rec = assembly.record
        out = SegmentedBatch(
            rec.batch_id, (*rec.owners, self._member.name), rec.frames_ref, self._store.put(assembly.masks), rec.meta
        )
        with self._nvtx.range("put_q2"):
            retry_s = self._cfg.queues.poll_timeout_s * 5
            if not self._member.put_until_accepted(self._q2, out, retry_s, self._cfg.lifecycle.drain_timeout_s):
                self._reject(rec, "abandoned_at_deadline", "Q2 stayed full past lifecycle.drain_timeout_s")
                return
        self._member.status.frames_out += rec.size
        self._member.status.batches += 1
        self._steady.record(rec.size)

    def _reject(self, record: FrameBatch, reason: str, message: str) -> None:
        self._member.status.fail(reason, record.size)
        self._member.settle(record.owners, record.size, reason)
        self._errors.warning(reason, "%s: batch %s rejected: %s", self._member.name, record.batch_id, message)


@ray.remote(max_concurrency=2)
class InferenceActor:
    def __init__(self, cfg: PipelineConfig, coordinator, name: str):
        logs.configure(cfg.output.log_level)
        self._member = StageMember(coordinator, "infer", name)

        def start() -> None:  # a missing weights file, a bad model setting: said once, by the driver
            self._worker = InferenceWorker(cfg, self._member)

        self._failed = self._member.guard(start)

    def stop(self) -> None:
        self._member.local_stop.set()

    def run(self) -> MemberStatus:
        return self._failed or self._worker.run()
