"""Decode one lclstreamer message (HDF5 bytes or NPZ bytes) into a batch of frames.

Anything that is not a usable batch raises MalformedMessage with a short reason, counted by the receiver.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

import h5py
import numpy as np

from ..config import DatasetNames

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
NPZ_MAGIC = b"PK"
HC_EV_ANGSTROM = 12398.42  # photon energy (eV) = this / wavelength (Å)


class MalformedMessage(ValueError):
    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(slots=True)
class DecodedBatch:
    frames: np.ndarray  # (B, C, H, W) in the configured dtype
    timestamps: np.ndarray  # (B,) float64 seconds
    photon_energy_eV: np.ndarray  # (B,) float64, NaN where unknown


def decode_message(payload: bytes, names: DatasetNames, dtype: np.dtype) -> DecodedBatch:
    if payload.startswith(HDF5_MAGIC):
        fields = _read_hdf5(payload, names)
    elif payload.startswith(NPZ_MAGIC):
        fields = _read_npz(payload, names)
    else:
        raise MalformedMessage("unknown_format", "neither HDF5 nor NPZ")
    data, timestamps, wavelengths, original = fields
    frames = _as_bchw(data, original)
    if not (np.issubdtype(frames.dtype, np.floating) or np.issubdtype(frames.dtype, np.integer)):
        raise MalformedMessage("dtype", f"detector data of dtype {frames.dtype}")
    b = frames.shape[0]
    return DecodedBatch(
        frames.astype(dtype, copy=False),  # once per batch, not per frame
        _per_event(timestamps, b, "timestamp", _timestamps_to_seconds),
        _per_event(wavelengths, b, "wavelength", lambda w: HC_EV_ANGSTROM / w.astype(np.float64)),
    )


def _read_hdf5(payload: bytes, names: DatasetNames):
    try:
        import hdf5plugin  # noqa: F401  (registers zfp/bitshuffle/lz4 filters where installed)
    except ImportError:
        pass
    try:
        with h5py.File(io.BytesIO(payload), "r") as f:
            if names.hdf5_detector not in f:
                raise MalformedMessage("no_detector_data", f"no dataset {names.hdf5_detector}")
            data = f[names.hdf5_detector][()]
            ts = f[names.hdf5_timestamp][()] if names.hdf5_timestamp in f else None
            wl = f[names.hdf5_wavelength][()] if names.hdf5_wavelength in f else None
    except MalformedMessage:
        raise
    except Exception as exc:  # truncated or corrupt files raise many kinds of errors
        raise MalformedMessage("bad_hdf5", str(exc)[:120]) from None
    return data, ts, wl, None


def _read_npz(payload: bytes, names: DatasetNames):
    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as z:
            if names.npz_detector not in z:
                raise MalformedMessage("no_detector_data", f"no key {names.npz_detector}")
            get = lambda k: z[k] if k in z else None  # noqa: E731
            return (
                get(names.npz_detector),
                get(names.npz_timestamp),
                get(names.npz_wavelength),
                get(names.npz_original_shape),
            )
    except MalformedMessage:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise MalformedMessage("bad_npz", str(exc)[:120]) from None


def _as_bchw(data: np.ndarray, original: np.ndarray | None) -> np.ndarray:
    if original is not None:
        b, c, h, w = (int(v) for v in np.ravel(original)[:4])
        if data.size < b * c * data.shape[-2] * data.shape[-1]:
            raise MalformedMessage("shape", f"{data.shape} cannot hold original shape {(b, c, h, w)}")
        data = data.reshape(b, c, data.shape[-2], data.shape[-1])[..., :h, :w]
    if data.ndim == 3:
        return data[:, None]
    if data.ndim == 4:
        return data
    raise MalformedMessage("rank", f"detector data of shape {data.shape}; expected (B, H, W) or (B, C, H, W)")


def _timestamps_to_seconds(ts: np.ndarray) -> np.ndarray:
    if ts.dtype == np.uint64:  # seconds << 32 | nanoseconds
        return (ts >> np.uint64(32)).astype(np.float64) + (ts & np.uint64(0xFFFFFFFF)).astype(np.float64) * 1e-9
    if ts.dtype.kind in "SUO":
        return np.array([float(t) for t in ts], np.float64)
    return ts.astype(np.float64)


def _per_event(values, b: int, what: str, convert) -> np.ndarray:
    if values is None:
        return np.full(b, np.nan)
    values = np.ravel(values)
    if len(values) != b:
        raise MalformedMessage("meta_mismatch", f"{len(values)} {what} values for {b} frames")
    try:
        return convert(values)
    except (TypeError, ValueError) as exc:
        raise MalformedMessage(f"bad_{what}", str(exc)[:80]) from None


def encode_npz(frames: np.ndarray, timestamps: np.ndarray, wavelengths: np.ndarray, compressed: bool = False) -> bytes:
    """What lclstreamer's numpy serializer sends."""
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(
        buf, detector_data=frames, timestamp=timestamps, photon_wavelength=wavelengths
    )
    return buf.getvalue()


def encode_hdf5(frames: np.ndarray, timestamps: np.ndarray, wavelengths: np.ndarray, compression=None) -> bytes:
    """What lclstreamer's HDF5 serializer sends: the bytes of an in-memory HDF5 file."""
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.create_dataset("/data/data", data=frames, chunks=(1, *frames.shape[1:]), compression=compression)
        f["/data/timestamp"] = timestamps
        f["/data/wavelength"] = wavelengths
    return buf.getvalue()


def encode_message(
    flavour: str, frames: np.ndarray, timestamps: np.ndarray, wavelengths: np.ndarray, compress: bool = False
) -> bytes:
    """One lclstreamer message: flavour "npz" or "hdf5"; compress: savez_compressed or gzip."""
    if flavour == "npz":
        return encode_npz(frames, timestamps, wavelengths, compressed=compress)
    return encode_hdf5(frames, timestamps, wavelengths, compression="gzip" if compress else None)
