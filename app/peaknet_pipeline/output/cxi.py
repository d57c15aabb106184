"""CXI files as CrystFEL reads them (indexamajig --peaks=cxi), one per chunk of kept events.

Each file is filled under a temporary name and renamed when complete: a crash never leaves a partial .cxi.
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
import hdf5plugin
import numpy as np

from .geometry import SlabLayout
from .peaks import PeakList

FILL = -1.0
# Dataset paths: the CrystFEL geometry (crystfel.py) and the file producer (ingest/files.py) name the same ones.
DATA, PEAKS, EVENT_ID = "/entry_1/data_1/data", "/entry_1/result_1", "/entry_1/event_id"
PHOTON_ENERGY, TIMESTAMP = "/LCLS/photon_energy_eV", "/LCLS/timestamp"


# writer.compression -> the HDF5 filter the images are stored with (hdf5plugin's; readers outside Python load it
# from hdf5plugin's plugin directory through HDF5_PLUGIN_PATH). One frame per chunk, so each compresses alone.
FILTERS = {
    "none": {},
    "bitshuffle-lz4": dict(hdf5plugin.Bitshuffle(cname="lz4")),
    "zstd": dict(hdf5plugin.Zstd(clevel=1)),
}


@dataclass(slots=True)
class KeptEvent:
    event_id: str
    timestamp: float
    photon_energy_eV: float
    peaks: PeakList


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
    def __init__(
        self, output_dir: str, prefix: str, writer_name: str, layout: SlabLayout, max_num_peak: int,
        compression: str = "none",
    ):  # fmt: skip
        self._filters = FILTERS[compression]
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

    def open(self, capacity: int, images: np.dtype | None) -> CxiFile:
        """A new file for up to `capacity` events, with images of that dtype or peaks only (None)."""
        return CxiFile(self.next_path(), self._layout, capacity, images, self._max_peaks, self._filters)

    def write(self, events: list[KeptEvent], frames: np.ndarray | None = None) -> Path:
        """All at once: the events and, where given, their (N, C, H, W) frames."""
        out = self.open(len(events), None if frames is None else frames.dtype)
        try:
            for i, event in enumerate(events):
                out.add(event, None if frames is None else frames[i])
        except BaseException:
            out.discard()
            raise
        return out.close()


class CxiFile:
    """One CXI file filled as events are kept, under its temporary name: an image goes to disk when its event
    is added (one copy, straight from the frame where the slab is the frame itself), so the writer holds no
    images; peaks, ids and the rest are written at close, which renames the file into place. `filters`
    (FILTERS) compress each image; the free-space check assumes they save nothing."""

    def __init__(
        self, path: Path, layout: SlabLayout, capacity: int, images: np.dtype | None, max_num_peak: int,
        filters: dict | None = None,
    ):  # fmt: skip
        self.path, self.events = path, []
        self.opened = time.monotonic()
        self._tmp = temporary_name(path)
        self._layout, self._max_peaks = layout, max_num_peak
        image_bytes = 0 if images is None else capacity * int(np.prod(layout.shape)) * np.dtype(images).itemsize
        check_space(path.parent, image_bytes)
        self._f = h5py.File(self._tmp, "w")
        self._images = self._scratch = None
        self._direct = not filters  # raw chunks go straight to disk; filtered ones through HDF5's pipeline
        if images is not None:
            shape = (capacity, *layout.shape)  # chunks never written are never allocated; close trims the rest
            try:
                self._images = self._f.create_dataset(
                    DATA, shape=shape, maxshape=(None, *layout.shape), dtype=images, chunks=(1, *layout.shape),
                    **(filters or {}),
                )  # fmt: skip
            except BaseException:
                self.discard()
                raise
            if not layout.is_identity:
                self._scratch = np.zeros(layout.shape, images)  # panel gaps stay 0 for good

    def __len__(self) -> int:
        return len(self.events)

    def add(self, event: KeptEvent, frame: np.ndarray | None = None) -> None:
        """The event, and its (C, H, W) frame written now as one chunk: uncompressed, straight to disk (HDF5's
        chunking and type conversion skipped; the bytes on disk are those of create_dataset(data=...)), or
        through the dataset's compression filter."""
        if self._images is not None:
            if self._scratch is None:
                image = np.ascontiguousarray(frame[0], self._images.dtype)
            else:
                self._layout.place(self._scratch, frame)
                image = self._scratch
            if self._direct:
                self._images.id.write_direct_chunk((len(self.events), 0, 0), image)
            else:
                self._images[len(self.events)] = image
        self.events.append(event)

    def close(self) -> Path:
        """finish, then publish."""
        self.finish()
        return self.publish()

    def finish(self) -> None:
        """Peaks and per-event data written and the file closed, still under its temporary name. On any error
        the partial file is removed and the error raised."""
        events = self.events
        try:
            if self._images is not None:
                self._images.resize(len(events), axis=0)
            write_peaks(self._f, events, self._layout, self._max_peaks)
            self._f[PHOTON_ENERGY] = np.array([e.photon_energy_eV for e in events], np.float32)
            self._f[TIMESTAMP] = np.array([e.timestamp for e in events], np.float64)
            self._f[EVENT_ID] = np.array([e.event_id for e in events], dtype=h5py.string_dtype())
            self._f.close()
        except BaseException:
            self.discard()
            raise

    def publish(self) -> Path:
        """The finished file renamed into place (atomic on one filesystem)."""
        try:
            os.replace(self._tmp, self.path)
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise
        return self.path

    def discard(self) -> None:
        """Close and remove the partial file; closing a file HDF5 could not write may fail again."""
        try:
            self._f.close()
        except (OSError, RuntimeError):
            pass
        self._tmp.unlink(missing_ok=True)


def write_peaks(f: h5py.File, events: list[KeptEvent], layout: SlabLayout, max_num_peak: int) -> None:
    # As wide as this file's fullest event needs, up to max_num_peak: CrystFEL reads nPeaks entries per
    # row, and a fixed 2048-wide table made peaks-only files ~40 kB per event.
    n = len(events)
    m = max(1, min(max_num_peak, max((len(e.peaks) for e in events), default=0)))
    x = np.full((n, m), FILL, np.float32)
    y = np.full((n, m), FILL, np.float32)
    seg = np.full((n, m), FILL, np.float32)
    intensity = np.full((n, m), FILL, np.float32)
    counts = np.zeros(n, np.int32)
    for i, event in enumerate(events):
        k = min(len(event.peaks), m)
        sx, sy, panel = layout.peaks_to_slab(event.peaks.positions[:k])
        x[i, :k], y[i, :k], seg[i, :k] = sx, sy, panel
        intensity[i, :k] = event.peaks.intensity[:k]
        counts[i] = k
    group = f.create_group(PEAKS)
    group["nPeaks"] = counts
    group["peakXPosRaw"] = x
    group["peakYPosRaw"] = y
    group["peakSegPosRaw"] = seg
    group["peakTotalIntensity"] = intensity
