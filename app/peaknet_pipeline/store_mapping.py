"""Map the node's object store into this process's page tables in one call, so that its puts stop faulting.

A Ray process maps the store's shared memory (a deleted file under /dev/shm) whole once it first touches an
object, but the kernel fills the page tables one page at a time, as each page is first written: a producer's
puts fault on most pages they write until the process has written the whole store, which for a large store
lasts minutes (docs/performance.md, "Two and four GPUs").
madvise(MADV_POPULATE_WRITE) (Linux 5.14) fills them in one system call instead, allocating the pages no
process has touched yet. The store's memory is the node's already; this only makes it resident sooner.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import random
import threading
import time
from dataclasses import dataclass

import numpy as np
import ray

log = logging.getLogger(__name__)

MADV_POPULATE_WRITE = 23  # linux/mman.h
# Ray's store file in its default plasma directory. Only tmpfs: where Ray fell back to a disk directory,
# populating would write the whole store to disk.
STORE_FILE = "/dev/shm/plasma"


@dataclass(frozen=True)
class Region:
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start


def store_regions(maps: str = "/proc/self/maps") -> list[Region]:
    """The writable shared mappings of Ray's store file in this process (none before it has touched an object,
    none where there is no /proc)."""
    regions = []
    if not os.path.exists(maps):
        return regions
    with open(maps) as lines:
        for line in lines:
            fields = line.split(maxsplit=5)  # range, perms, offset, device, inode, path
            shared_rw = len(fields) == 6 and fields[1].startswith("rw") and fields[1][3] == "s"
            if shared_rw and fields[5].startswith(STORE_FILE):
                start, end = (int(v, 16) for v in fields[0].split("-"))
                regions.append(Region(start, end))
    return regions


CHUNK = 1 << 30  # bytes per madvise call


def chunks(regions: list[Region], first: float) -> list[Region]:
    """The regions cut into CHUNK-sized pieces, the order rotated to start `first` (0-1) of the way through: the
    processes of a node that populate at once (every producer and inference actor) then start on different
    pages, each allocating its own share first, instead of all contending for the same pages in the same
    order."""
    pieces = [
        Region(start, min(start + CHUNK, region.end))
        for region in regions
        for start in range(region.start, region.end, CHUNK)
    ]
    k = int(first * len(pieces))
    return pieces[k:] + pieces[:k]


def populate(regions: list[Region], first: float = 0.0) -> int:
    """madvise(MADV_POPULATE_WRITE) over each region, CHUNK at a time from `first` of the way through (see
    chunks); returns the bytes populated. Kernels without it (before 5.14, EINVAL) and memory it cannot
    allocate are logged and what is left is skipped: those pages fault as puts first touch them."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    done = 0
    for piece in chunks(regions, first):
        if libc.madvise(piece.start, piece.size, MADV_POPULATE_WRITE) == 0:
            done += piece.size
            continue
        code = ctypes.get_errno()
        reason = "this kernel has no MADV_POPULATE_WRITE" if code == errno.EINVAL else os.strerror(code)
        log.warning(
            "object store pages not mapped up front after %.1f GiB (%s); the rest fault as puts touch them",
            done / 2**30,
            reason,
        )
        break
    return done


def prefault() -> int:
    """populate() this process's store mappings, logged; returns the bytes populated."""
    t0 = time.perf_counter()
    done = populate(store_regions(), first=random.random())
    if done:
        seconds = time.perf_counter() - t0
        log.info("mapped %.1f GiB of the object store in %.1f s (ray.prefault_store)", done / 2**30, seconds)
    return done


class Putter:
    """ray.put for a stage that puts batches. With `prefault` (ray.prefault_store) the store is mapped as the
    stage starts, not at its first batch: one object makes Ray map the store into this process, and prefault()
    fills the page tables on a thread (madvise releases the GIL) while the model warms up and the producers
    start, so that the run's first batches do not wait behind it."""

    TOUCH_BYTES = 1 << 20  # an object Ray keeps in the store, not inline with its reference

    def __init__(self, prefault: bool):
        self.mapped_bytes = 0
        self._mapping: threading.Thread | None = None
        if prefault:
            # Held for the putter's life: the store stays mapped whatever else this process frees.
            self._touch = ray.put(np.zeros(self.TOUCH_BYTES, np.uint8))
            self._mapping = threading.Thread(target=self._prefault, name="prefault-store", daemon=True)
            self._mapping.start()

    def _prefault(self) -> None:
        self.mapped_bytes = prefault()

    def wait_mapped(self, timeout_s: float | None = None) -> int:
        """Bytes mapped up front, once the mapping thread is done (0 without prefault or where it cannot)."""
        if self._mapping is not None:
            self._mapping.join(timeout_s)
        return self.mapped_bytes

    def put(self, value: object) -> ray.ObjectRef:
        return ray.put(value)
