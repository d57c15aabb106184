"""What CrystFEL needs to read the CXI files: a geometry that points at the writer's datasets, and, for
files written without images, an explicit event list (CrystFEL enumerates events from the image data)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import h5py

from .cxi import DATA, PEAKS, PHOTON_ENERGY

# The keys that tie a geometry to the writer's layout: events along dim0, then slow scan, fast scan.
HEADER = {
    "photon_energy": PHOTON_ENERGY,
    "data": DATA,
    "dim0": "%",
    "dim1": "ss",
    "dim2": "fs",
    "peak_list": PEAKS,  # a CXI peak group (nPeaks, peakXPosRaw, ...): CrystFEL detects the type
}


def single_panel_geometry(h: int, w: int, clen_m: float = 0.1, pixels_per_m: float = 1 / 75e-6) -> str:
    """A complete geometry for single-panel frames of h x w, beam at the centre. clen and res are placeholders
    for the detector's own values."""
    lines = [
        f"; CrystFEL geometry for peaknet CXI files of 1 x {h} x {w} frames (peaknet-pipeline crystfel geom).",
        "; Set clen (detector distance, m), res (pixels per metre) and the corners for your detector.",
        *(f"{k} = {v}" for k, v in HEADER.items()),
        f"clen = {clen_m:g}",
        f"res = {pixels_per_m:.1f}",
        "adu_per_photon = 1",
        "",
        "p0/min_fs = 0",
        f"p0/max_fs = {w - 1}",
        "p0/min_ss = 0",
        f"p0/max_ss = {h - 1}",
        f"p0/corner_x = {-w / 2:g}",
        f"p0/corner_y = {-h / 2:g}",
        "p0/fs = +1.0x",
        "p0/ss = +1.0y",
    ]
    return "\n".join(lines) + "\n"


def header_problems(path: str | Path) -> list[str]:
    """Keys of a geometry file that do not point where the writer writes (CrystFEL would refuse the file,
    or read the wrong datasets)."""
    found: dict[str, str] = {}
    for line in Path(path).read_text().splitlines():
        text = line.split(";", 1)[0]
        if "=" in text and "/" not in text.split("=", 1)[0]:  # top-level keys only, not panel/key
            key, value = (part.strip() for part in text.split("=", 1))
            found[key] = value
    return [
        f"{path}: {key} = {found.get(key, '(missing)')}, the writer needs {key} = {want}"
        for key, want in HEADER.items()
        if found.get(key) != want
    ]


def event_list(paths: Iterable[str | Path]) -> Iterator[str]:
    """`<file> //<index>` for every event, the form indexamajig takes with -i (CrystFEL 0.10 event ids)."""
    for path in paths:
        with h5py.File(path, "r") as f:
            n = len(f[f"{PEAKS}/nPeaks"])
        for i in range(n):
            yield f"{path} //{i}"
