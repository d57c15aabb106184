"""CXI files as CrystFEL reads them (indexamajig --peaks=cxi), one per chunk of kept events.

Each file is written under a temporary name and renamed when complete: a crash never leaves a partial .cxi.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from .geometry import SlabLayout
from .peaks import PeakList

FILL = -1.0
# Dataset paths: the CrystFEL geometry (crystfel.py) and the file producer (ingest/files.py) name the same ones.
DATA, PEAKS, EVENT_ID = "/entry_1/data_1/data", "/entry_1/result_1", "/entry_1/event_id"
PHOTON_ENERGY, TIMESTAMP = "/LCLS/photon_energy_eV", "/LCLS/timestamp"


@dataclass(slots=True)
class KeptEvent:
    event_id: str
    timestamp: float
    photon_energy_eV: float
    peaks: PeakList


class SlabBuffer:
    """Kept images go straight into slab layout in one buffer reused for every file: one copy per image
    instead of copy, stack and re-layout into fresh memory."""

    def __init__(self, layout: SlabLayout, capacity: int):
        self._layout = layout
        self._data = np.zeros((capacity, *layout.shape), np.float32)  # panel gaps stay 0 for good
        self.count = 0

    def add(self, frame: np.ndarray) -> None:
        self._layout.place(self._data[self.count], frame)
        self.count += 1

    def take(self) -> np.ndarray:
        """The images added since the last take; valid until the next add."""
        out, self.count = self._data[: self.count], 0
        return out


def write_images(f: h5py.File, slabs: np.ndarray) -> None:
    """One uncompressed chunk per image, each written as it lies in memory: HDF5's chunking and type
    conversion are skipped, the bytes on disk are the same as through create_dataset(data=...)."""
    data = f.create_dataset(DATA, shape=slabs.shape, dtype=slabs.dtype, chunks=(1, *slabs.shape[1:]))
    for i, image in enumerate(np.ascontiguousarray(slabs)):
        data.id.write_direct_chunk((i, 0, 0), image)


def temporary_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp")


def safe_writer_name(writer_name: str) -> str:
    return writer_name.replace(":", "_")


def remove_stale_temporaries(output_dir: str, writer_name: str) -> list[Path]:
    """Partial files an earlier process of this writer left when it died mid-file."""
    stale = list(Path(output_dir).glob(f".*-{safe_writer_name(writer_name)}-*.cxi.tmp"))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def check_writable(output_dir: str) -> None:
    """Fail at start, naming the setting, when files cannot be made there (a file, read-only, no space)."""
    directory = Path(output_dir)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".peaknet-probe-{os.getpid()}"
        probe.write_bytes(b"\0" * 4096)
        probe.unlink()
    except OSError as exc:
        raise OSError(f"writer.output_dir={output_dir!r} is not writable: {exc.strerror or exc}") from None


def check_space(directory: Path, payload_bytes: int) -> None:
    """Refuse before HDF5 starts a file that cannot fit: a write that fails half-way leaves h5py objects
    that complain again when they are collected."""
    free = shutil.disk_usage(directory).free
    if payload_bytes and free < payload_bytes * 1.05 + 2**16:
        raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} ({free} bytes free, {payload_bytes} to write)")


def describe_os_error(exc: BaseException) -> str:
    """The OS's words for a failed write, also when h5py wraps them in a long RuntimeError."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    found = re.search(r"error message = '([^']+)'", str(exc))
    return found.group(1) if found else str(exc).splitlines()[0]


class CxiChunkWriter:
    def __init__(self, output_dir: str, prefix: str, writer_name: str, layout: SlabLayout, max_num_peak: int):
        self._dir = Path(output_dir)
        self._dir.mkdir(parents=True, exist_ok=True)
        self._prefix = prefix
        self._writer = safe_writer_name(writer_name)
        self._layout = layout
        self._max_peaks = max_num_peak
        self._chunk = 0

    def next_path(self) -> Path:
        # UTC time first so names sort in time order across writers; the writer name keeps them apart.
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        self._chunk += 1
        return self._dir / f"{self._prefix}-{stamp}-{self._writer}-{self._chunk:05d}.cxi"

    def write(self, events: list[KeptEvent], slabs: np.ndarray | None = None, path: Path | None = None) -> Path:
        """slabs: the events' images in slab layout (from a SlabBuffer), or None for peaks only.
        On any error (a full disk) the partial file is removed and the error raised."""
        path = path or self.next_path()
        tmp = temporary_name(path)
        try:
            with h5py.File(tmp, "w") as f:
                self._write_peaks(f, events)
                if slabs is not None:
                    write_images(f, slabs)
                f[PHOTON_ENERGY] = np.array([e.photon_energy_eV for e in events], np.float32)
                f[TIMESTAMP] = np.array([e.timestamp for e in events], np.float64)
                f[EVENT_ID] = np.array([e.event_id for e in events], dtype=h5py.string_dtype())
            os.replace(tmp, path)  # atomic on one filesystem
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return path

    def _write_peaks(self, f: h5py.File, events: list[KeptEvent]) -> None:
        # As wide as this file's fullest event needs, up to max_num_peak: CrystFEL reads nPeaks entries per
        # row, and a fixed 2048-wide table made peaks-only files ~40 kB per event.
        n = len(events)
        m = max(1, min(self._max_peaks, max((len(e.peaks) for e in events), default=0)))
        x = np.full((n, m), FILL, np.float32)
        y = np.full((n, m), FILL, np.float32)
        seg = np.full((n, m), FILL, np.float32)
        intensity = np.full((n, m), FILL, np.float32)
        counts = np.zeros(n, np.int32)
        for i, event in enumerate(events):
            k = min(len(event.peaks), m)
            sx, sy, panel = self._layout.peaks_to_slab(event.peaks.positions[:k])
            x[i, :k], y[i, :k], seg[i, :k] = sx, sy, panel
            intensity[i, :k] = event.peaks.intensity[:k]
            counts[i] = k
        group = f.create_group(PEAKS)
        group["nPeaks"] = counts
        group["peakXPosRaw"] = x
        group["peakYPosRaw"] = y
        group["peakSegPosRaw"] = seg
        group["peakTotalIntensity"] = intensity
