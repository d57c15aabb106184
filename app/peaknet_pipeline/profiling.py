"""NVTX ranges for Nsight Systems, and a torch profiler trace where nsys is not in use."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

import torch

log = logging.getLogger(__name__)


class Nvtx:
    """Named ranges, free when profiling is off or there is no CUDA."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and torch.cuda.is_available()

    @contextlib.contextmanager
    def range(self, name: str) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        torch.cuda.nvtx.range_push(name)
        try:
            yield
        finally:
            torch.cuda.nvtx.range_pop()


class TorchTrace:
    """A torch profiler session that writes a Chrome trace on close, also after Ctrl-C."""

    def __init__(self, trace_dir: str | None, member: str):
        self._path = None
        self._prof = None
        if trace_dir is None:
            return
        os.makedirs(trace_dir, exist_ok=True)
        self._path = os.path.join(trace_dir, f"{member.replace(':', '_')}.trace.json")
        activities = [torch.profiler.ProfilerActivity.CPU]
        if torch.cuda.is_available():
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        self._prof = torch.profiler.profile(activities=activities)
        self._prof.__enter__()

    def close(self) -> str | None:
        if self._prof is None:
            return None
        self._prof.__exit__(None, None, None)
        self._prof.export_chrome_trace(self._path)
        self._prof = None
        log.info("torch profiler trace written to %s", self._path)
        return self._path
