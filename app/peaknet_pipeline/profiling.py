"""NVTX ranges for Nsight Systems, and a torch profiler trace where nsys is not in use."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Iterator

from .config import ProfilingSection

log = logging.getLogger(__name__)


class Nvtx:
    """Named ranges for each stage and batch step, free when profiling is off: NVTX ranges for Nsight Systems
    where there is CUDA, and torch profiler ranges, so that a torch trace (where nsys is absent) shows the
    same steps. torch is imported only when on, so CPU-only stages (producers, writers) do not pay for it."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        if enabled:
            import torch

            self._nvtx = torch.cuda.nvtx if torch.cuda.is_available() else None
            self._record = torch.profiler.record_function

    @contextlib.contextmanager
    def range(self, name: str) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        if self._nvtx is not None:
            self._nvtx.range_push(name)
        try:
            with self._record(name):
                yield
        finally:
            if self._nvtx is not None:
                self._nvtx.range_pop()


def profiling_tool(cfg: ProfilingSection) -> str | None:
    """Which profiler a profiled run uses: nsys where it is installed, the torch profiler elsewhere."""
    if not cfg.enabled:
        return None
    if cfg.tool == "auto":
        return "nsys" if shutil.which("nsys") else "torch"
    return cfg.tool


def nsight_runtime_env(cfg: ProfilingSection) -> dict | None:
    """Ray starts the actor's worker under `nsys profile` (reports land in the Ray session's logs/nsight),
    unless this driver already runs under nsys, which then follows the workers itself."""
    if profiling_tool(cfg) != "nsys" or under_nsys():
        return None
    return {"nsight": "default"}


def under_nsys(pid: int | None = None) -> bool:
    """Whether an ancestor of this process is nsys (Linux /proc; elsewhere: no)."""
    pid = pid or os.getpid()
    for _ in range(64):
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            return False
        comm, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
        if comm.startswith("nsys"):
            return True
        pid = int(rest[1])  # the parent
        if pid <= 1:
            return False
    return False


class TorchTrace:
    """A window of `batches` batch steps after `skip` steps, written as a Chrome trace when the window
    ends or at close (so Ctrl-C during the window still leaves a trace)."""

    def __init__(self, cfg: ProfilingSection, member: str):
        self._enabled = profiling_tool(cfg) == "torch"
        self._path = os.path.join(cfg.torch_trace_dir, f"{member.replace(':', '_')}.trace.json")
        self._start_at = cfg.trace_skip_batches
        self._stop_at = cfg.trace_skip_batches + cfg.trace_batches
        self._steps = 0
        self._prof = None
        self.written: str | None = None

    def step(self) -> None:
        """Call once per batch, before its work."""
        if not self._enabled:
            return
        if self._steps == self._start_at:
            self._start()
        elif self._steps == self._stop_at:
            self.close()
        self._steps += 1

    def _start(self) -> None:
        import torch

        activities = [torch.profiler.ProfilerActivity.CPU]
        if torch.cuda.is_available():
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        self._prof = torch.profiler.profile(activities=activities)
        self._prof.__enter__()

    def close(self) -> str | None:
        if self._prof is None:
            return self.written
        self._prof.__exit__(None, None, None)
        os.makedirs(os.path.dirname(self._path) or ".", exist_ok=True)
        self._prof.export_chrome_trace(self._path)
        self._prof = None
        self.written = os.path.abspath(self._path)
        log.info("torch profiler trace written to %s", self.written)
        return self.written
