"""Frames from HDF5 and CXI files, in file order: what the file producer replays.

A file holds its frames as (B, C, H, W), or as (B, H, W): single-panel frames, or multi-panel frames laid
out in the CrystFEL slab, taken apart with the same geometry the writer uses to put them together."""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401  (registers the compression filters CXI files may use)
import numpy as np

from ..config import PipelineConfig
from ..config_sources import ConfigError
from ..output.cxi import DATA, PHOTON_ENERGY, TIMESTAMP
from ..output.geometry import SlabLayout, layout_for


def resolve_paths(patterns: list[str]) -> list[str]:
    """Each pattern's matches, sorted, in the order the patterns are given."""
    if not patterns:
        raise ConfigError("producer.kind=file needs producer.file.paths: files or glob patterns of HDF5/CXI files")
    paths: list[str] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        missing = [m for m in matches if not Path(m).is_file()]
        if not matches or missing:
            raise ConfigError(f"producer.file.paths: {missing[0] if missing else pattern!r} matches no file")
        paths += matches
    return paths


@dataclass(slots=True)
class FileBatch:
    frames: np.ndarray  # (B, C, H, W)
    event_ids: list[str]
    timestamps: np.ndarray
    photon_energy_eV: np.ndarray


class FrameFile:
    """One open file: checked at open (dataset, shape), then read batch by batch."""

    def __init__(self, path: str, cfg: PipelineConfig):
        self.path = path
        self._file = h5py.File(path, "r")
        try:
            self._open(cfg)
        except BaseException:
            self._file.close()
            raise

    def _open(self, cfg: PipelineConfig) -> None:
        fc = cfg.producer.file
        data = self._file.get(fc.dataset)
        if not isinstance(data, h5py.Dataset):
            usual = (DATA, "/data/data", "/data")
            found = [k for k in usual if isinstance(self._file.get(k), h5py.Dataset)]
            hint = f"; it has {found[0]}" if found else ""
            raise ValueError(f"producer.file.dataset {fc.dataset!r} is not a dataset in {self.path}{hint}")
        if data.ndim not in (3, 4):
            raise ValueError(
                f"producer.file.dataset {fc.dataset!r} in {self.path} is {data.shape}: "
                "expected (B, H, W) or (B, C, H, W)"
            )
        self._data, self.count = data, data.shape[0]
        self._layout = self._slab_layout(cfg, data.shape)
        self.frame_shape = self._frame_shape(data.shape)
        want = cfg.data.frame_shape
        if want is not None and tuple(want) != self.frame_shape:
            raise ValueError(
                f"data.frame_shape is {tuple(want)} but {self.path} holds frames of {self.frame_shape} "
                f"({fc.dataset} is {data.shape})"
            )
        self._dtype = np.dtype(cfg.data.dtype)
        self._ids = self._event_ids(fc.event_ids)
        self._energy = self._per_event(PHOTON_ENERGY, cfg.producer.photon_energy_eV)
        self._time = self._per_event(TIMESTAMP, np.nan)

    def _slab_layout(self, cfg: PipelineConfig, shape: tuple[int, ...]) -> SlabLayout | None:
        """Multi-panel frames stored as 2-D slabs need the geometry to be taken apart."""
        want = cfg.data.frame_shape
        if len(shape) == 4 or want is None or want[0] == 1:
            return None
        if not cfg.writer.geometry:
            raise ValueError(
                f"{self.path} holds 2-D slabs {shape[1:]} and data.frame_shape has {want[0]} panels: set "
                "writer.geometry to the detector's .geom file to take the panels apart"
            )
        return layout_for(cfg.writer.geometry, tuple(want))

    def _frame_shape(self, shape: tuple[int, ...]) -> tuple[int, int, int]:
        if len(shape) == 4:
            return tuple(shape[1:])
        if self._layout is not None:
            if tuple(shape[1:]) != self._layout.shape:
                raise ValueError(f"{self.path}: slabs {shape[1:]} differ from writer.geometry's {self._layout.shape}")
            return self._layout.frame_shape
        return (1, *shape[1:])

    def _event_ids(self, path: str | None) -> list[str] | None:
        ids = self._file.get(path) if path else None
        if not isinstance(ids, h5py.Dataset) or ids.shape != (self.count,):
            return None
        return [x.decode() if isinstance(x, bytes) else str(x) for x in ids[()]]

    def _per_event(self, path: str, default: float) -> np.ndarray:
        values = self._file.get(path)
        if isinstance(values, h5py.Dataset) and values.shape == (self.count,):
            return values[()].astype(np.float64)
        return np.full(self.count, default, np.float64)

    def read(self, start: int, stop: int) -> FileBatch:
        raw = self._data[start:stop]
        frames = self._layout.take(raw) if self._layout is not None else raw.reshape(stop - start, *self.frame_shape)
        name = Path(self.path).name
        ids = self._ids[start:stop] if self._ids is not None else [f"{name}:{i}" for i in range(start, stop)]
        return FileBatch(frames.astype(self._dtype, copy=False), ids, self._time[start:stop], self._energy[start:stop])

    def close(self) -> None:
        self._file.close()
