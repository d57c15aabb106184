"""Run a segmentation model over batches: frames (B, C, H, W) in, uint8 class masks (B, C, H, W) out.

The CUDA engine keeps N batches in flight on three streams (host-to-device copy, compute,
device-to-host copy) with pinned host buffers allocated once. Ordering is by CUDA events between the
streams; the host waits only for the oldest batch's own copy-back event, never for the whole device.
"""

from __future__ import annotations

import time
import warnings
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..config import PipelineConfig
from ..model import fp8_ops, fused_ops
from ..model.segmenter import Segmenter
from ..profiling import Nvtx

ResultSink = Callable[[Any, np.ndarray], None]  # (tag, masks view valid only during the call)

AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp8": torch.bfloat16}  # fp8: bf16 + FP8 GEMMs


@dataclass(frozen=True, slots=True)
class EngineSpec:
    batch_size: int
    frame_shape: tuple[int, int, int]
    dtype: np.dtype
    num_buffers: int = 2
    precision: str = "fp32"
    compile_mode: str = "none"
    tune_kernels: bool = False  # inductor's coordinate-descent tuning of its own kernels (compiled only)
    channels_last: bool = False
    cast_weights: bool = False  # reduced precision by casting weights once, not per-op autocast
    fused_kernels: str = "none"  # PeakNet's ConvNeXt blocks as Triton kernels (fused_ops.MODES), where Triton runs
    mlp_gelu: str = "exact"  # the GELU of PeakNet's ConvNeXt blocks: exact or tanh (fused_ops.GELU_FORMS)
    gpu_wait: str = "sleep"  # the wait for a batch's masks blocks the thread; "spin" polls (CUDA's default)


def spec_from_config(cfg: PipelineConfig, frame_shape: tuple[int, int, int]) -> EngineSpec:
    """The engine settings a config asks for; memory format and weight cast apply to PeakNet only."""
    pn, inf = cfg.model.peaknet, cfg.inference
    peaknet = cfg.model.kind == "peaknet"
    return EngineSpec(
        cfg.data.batch_size,
        frame_shape,
        np.dtype(cfg.data.dtype),
        inf.num_buffers,
        inf.precision,
        inf.compile_mode,
        tune_kernels=inf.tune_kernels,
        channels_last=peaknet and pn.channels_last,
        cast_weights=peaknet and pn.cast_weights,
        fused_kernels=fused_ops.mode_for(pn.preset, pn.fused_kernels) if peaknet else "none",
        mlp_gelu=fused_ops.gelu_for(pn.preset, pn.mlp_gelu) if peaknet else "exact",
        gpu_wait=inf.gpu_wait,
    )


def effective_precision(precision: str, device: str) -> str:
    """The precision the model runs in: the configured one on a GPU; on a CPU always fp32."""
    return precision if device == "cuda" else "fp32"


def enable_fp8(model: torch.nn.Module, device: torch.device) -> int:
    """precision fp8: the ConvNeXt blocks' GEMMs in FP8 where the GPU has FP8 tensor cores; refused elsewhere."""
    if not fp8_ops.supported(device):
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
        raise ValueError(
            f"inference.precision=fp8 needs a GPU of compute capability {'.'.join(map(str, fp8_ops.MIN_CAPABILITY))}"
            f" or newer (Hopper); {name} is not one: use bf16"
        )
    blocks = fp8_ops.enable(model)
    if not blocks:
        warnings.warn(
            f"inference.precision=fp8: no ConvNeXt block is {fp8_ops.MIN_CHANNELS} channels wide or more; "
            "the model runs bf16",
            stacklevel=2,
        )
    return blocks


def compile_options(spec: EngineSpec) -> dict:
    """torch.compile's inductor options for the spec: its mode's, plus kernel tuning when asked for."""
    from torch._inductor import list_mode_options  # compiling only: a heavy import

    options = dict(list_mode_options(spec.compile_mode))
    if spec.tune_kernels:
        options["coordinate_descent_tuning"] = True
    return options


class ModelRunner:
    """The model on its device in the chosen precision, memory format and compile mode."""

    def __init__(self, model: Segmenter, spec: EngineSpec, device: torch.device):
        self.mask_channels = model.mask_channels(spec.frame_shape[0])
        precision = effective_precision(spec.precision, device.type)
        reduced = AUTOCAST.get(precision)  # CPU: fp32 is faster
        self._cast = reduced if spec.cast_weights else None
        self._autocast = reduced if not spec.cast_weights else None
        if device.type == "cuda":
            # Shapes are static, so cuDNN's autotuning pays off; set here so that the model-only benchmark
            # and the pipeline run the same kernels.
            torch.backends.cudnn.benchmark = True
        model = model.to(device).eval()
        if self._cast is not None:
            model = model.to(self._cast)
        if spec.channels_last and device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        self.fused_blocks = fused_ops.enable(model, spec.fused_kernels) if fused_ops.available(device) else 0
        fused_ops.set_gelu(model, spec.mlp_gelu)
        self.fp8_blocks = enable_fp8(model, device) if precision == "fp8" else 0
        options = compile_options(spec) if spec.compile_mode != "none" else {}
        self._graphs = bool(options.get("triton.cudagraphs")) and device.type == "cuda"
        if spec.compile_mode != "none":
            model = torch.compile(model, options=options)
        self._model = model

    @property
    def model(self) -> torch.nn.Module:
        """The model as prepared: on its device, cast, in its memory format, fused, compiled if asked."""
        return self._model

    @property
    def input_dtype(self) -> torch.dtype:
        """What frames are cast to before the model sees them."""
        return self._cast or torch.float32

    @torch.inference_mode()
    def masks(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) frames of any dtype -> (B, C', H, W) uint8 class ids."""
        if self._graphs:
            torch.compiler.cudagraph_mark_step_begin()
        x = frames.to(self.input_dtype)
        if self._autocast is not None:
            with torch.autocast("cuda", dtype=self._autocast):
                logits = self._model(x)
        else:
            logits = self._model(x)
        b, _, h, w = frames.shape
        return class_ids(logits).view(b, self.mask_channels, h, w)


def class_ids(logits: torch.Tensor) -> torch.Tensor:
    """argmax over classes as uint8; for two classes a comparison (same ties rule, far cheaper on CPU)."""
    if logits.shape[1] == 2:
        return (logits[:, 1] > logits[:, 0]).to(torch.uint8)
    return logits.argmax(1).to(torch.uint8)


class CpuEngine:
    """Synchronous: results are delivered inside submit(). CPU autocast to bf16 is slower, so fp32."""

    def __init__(self, model: Segmenter, spec: EngineSpec, on_result: ResultSink, nvtx: Nvtx | None = None):
        self.spec = spec
        self._runner = ModelRunner(model, spec, torch.device("cpu"))
        self.fused_blocks = self._runner.fused_blocks  # always 0: Triton kernels are GPU-only
        self.fp8_blocks = self._runner.fp8_blocks  # always 0: a CPU runs fp32
        self._on_result = on_result
        self.busy_s = 0.0

    def submit(self, frames: np.ndarray, tag: Any) -> None:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            # Frames from the object store are read-only; the model never writes to its input.
            warnings.simplefilter("ignore", UserWarning)
            x = torch.from_numpy(frames)
        masks = self._runner.masks(x)
        self.busy_s += time.perf_counter() - t0
        self._on_result(tag, masks.numpy())

    def flush(self) -> None:
        pass


class _Slot:
    """One in-flight batch: its buffers on both sides and the events between the streams."""

    def __init__(self, spec: EngineSpec, device: torch.device, mask_channels: int):
        shape = (spec.batch_size, *spec.frame_shape)
        mask_shape = (spec.batch_size, mask_channels, *spec.frame_shape[1:])
        torch_dtype = torch.from_numpy(np.empty(0, spec.dtype)).dtype
        self.host_in = torch.empty(shape, dtype=torch_dtype, pin_memory=True)
        self.host_in_np = self.host_in.numpy()
        self.dev_in = torch.empty(shape, dtype=torch_dtype, device=device)
        self.dev_mask = torch.empty(mask_shape, dtype=torch.uint8, device=device)
        self.host_out = torch.empty(mask_shape, dtype=torch.uint8, pin_memory=True)
        self.host_out_np = self.host_out.numpy()
        self.h2d_done = torch.cuda.Event()
        self.compute_start = torch.cuda.Event(enable_timing=True)
        self.compute_done = torch.cuda.Event(enable_timing=True)
        # The event the actor's thread waits on: spinning keeps a core busy for the whole batch; a blocking
        # event lets the thread sleep until the driver wakes it.
        self.d2h_done = torch.cuda.Event(blocking=spec.gpu_wait == "sleep")
        self.tag: Any = None
        self.size = 0


class CudaEngine:
    def __init__(self, model: Segmenter, spec: EngineSpec, on_result: ResultSink, nvtx: Nvtx | None = None):
        self.spec = spec
        self._device = torch.device("cuda", torch.cuda.current_device())
        self._runner = ModelRunner(model, spec, self._device)
        self.fused_blocks, self.fp8_blocks = self._runner.fused_blocks, self._runner.fp8_blocks
        self._on_result = on_result
        self._nvtx = nvtx or Nvtx(False)
        self._h2d = torch.cuda.Stream()
        self._compute = torch.cuda.Stream()
        self._d2h = torch.cuda.Stream()
        self._slots = [_Slot(spec, self._device, self._runner.mask_channels) for _ in range(spec.num_buffers)]
        self._next = 0
        self._inflight: deque[_Slot] = deque()
        self.busy_s = 0.0

    def submit(self, frames: np.ndarray, tag: Any) -> None:
        if len(self._inflight) == len(self._slots):
            self._collect(self._inflight.popleft())
        slot = self._slots[self._next]
        self._next = (self._next + 1) % len(self._slots)
        slot.tag, slot.size = tag, frames.shape[0]
        with self._nvtx.range("stage_to_pinned"):
            # A partial batch keeps the stale tail of the buffer: static shapes for compile and graphs.
            np.copyto(slot.host_in_np[: slot.size], frames)
        with torch.cuda.stream(self._h2d), self._nvtx.range("h2d"):
            slot.dev_in.copy_(slot.host_in, non_blocking=True)
            slot.h2d_done.record()
        with torch.cuda.stream(self._compute), self._nvtx.range("compute"):
            self._compute.wait_event(slot.h2d_done)
            slot.compute_start.record()
            slot.dev_mask.copy_(self._runner.masks(slot.dev_in))
            slot.compute_done.record()
        with torch.cuda.stream(self._d2h), self._nvtx.range("d2h"):
            self._d2h.wait_event(slot.compute_done)
            slot.host_out.copy_(slot.dev_mask, non_blocking=True)
            slot.d2h_done.record()
        self._inflight.append(slot)

    def _collect(self, slot: _Slot) -> None:
        with self._nvtx.range("wait_result"):
            slot.d2h_done.synchronize()
        self.busy_s += slot.compute_start.elapsed_time(slot.compute_done) / 1000.0
        self._on_result(slot.tag, slot.host_out_np[: slot.size])
        slot.tag = None

    def flush(self) -> None:
        while self._inflight:
            self._collect(self._inflight.popleft())


def make_engine(model: Segmenter, spec: EngineSpec, device: str, on_result: ResultSink, nvtx: Nvtx | None = None):
    if device == "cuda":
        return CudaEngine(model, spec, on_result, nvtx)
    return CpuEngine(model, spec, on_result, nvtx)


def resolve_device(requested: str) -> str:
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("inference.device is 'cuda' but no CUDA device is visible; use 'auto' or 'cpu'")
    return requested


def warm_up(engine, iters: int) -> float:
    """Run full batches of random frames through the engine; returns seconds taken."""
    if iters <= 0:
        return 0.0
    spec = engine.spec
    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    frames = rng.random((spec.batch_size, *spec.frame_shape), dtype=np.float32).astype(spec.dtype)
    for _ in range(iters):
        engine.submit(frames, None)
    engine.flush()
    return time.perf_counter() - t0
