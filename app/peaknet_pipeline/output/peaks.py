"""Peaks from a class mask: 8-connected components per panel, centre of mass of each component."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

# Each 8-neighbour pair once: right, and the three below. Neighbours never cross a panel's edge.
_FORWARD = ((0, 1), (1, -1), (1, 0), (1, 1))
# 8-connectivity inside a panel, none across panels: label the whole (C, H, W) stack in one call.
_STRUCTURE = np.zeros((3, 3, 3), dtype=bool)
_STRUCTURE[1] = True
# Share of foreground pixels above which labelling the whole frame beats the graph of foreground pixels
# (bench_peaks.py; docs/performance.md).
DENSE_SHARE = 0.04


@dataclass(slots=True)
class PeakList:
    positions: np.ndarray  # (N, 3) float32: panel, y, x
    pixels: np.ndarray  # (N,) int32 pixels per peak
    intensity: np.ndarray  # (N,) float32 summed frame values (0 when no frame was given)

    def __len__(self) -> int:
        return len(self.positions)


def find_peaks(mask: np.ndarray, frame: np.ndarray | None = None, peak_class: int = 1) -> PeakList:
    """mask (C, H, W) class ids; frame (C, H, W) for intensity weighting, or None for the plain centroid.

    Sparse masks (real peaks) are worked on their foreground pixels only, so the cost follows the peaks, not
    the frame: components of the graph of neighbouring foreground pixels. Dense masks (an untrained model)
    are labelled whole. Either way components are numbered in raster order; sums per component by bincount."""
    foreground = mask == peak_class
    flat = np.flatnonzero(foreground)
    if len(flat) == 0:
        empty = np.zeros(0, np.float32)
        return PeakList(np.zeros((0, 3), np.float32), np.zeros(0, np.int32), empty)
    panel, ys, xs = np.unravel_index(flat, foreground.shape)
    if len(flat) > DENSE_SHARE * foreground.size:
        labels, n = ndimage.label(foreground, structure=_STRUCTURE)
        ids = labels.ravel()[flat] - 1
    else:
        n, ids = components(foreground, flat, panel, ys, xs)
    weights = np.ones(len(ids)) if frame is None else np.clip(frame[panel, ys, xs].astype(np.float64), 1e-12, None)
    total = np.bincount(ids, weights, minlength=n)
    cy = np.bincount(ids, weights * ys, minlength=n) / total
    cx = np.bincount(ids, weights * xs, minlength=n) / total
    first = np.zeros(n, np.int64)
    first[ids[::-1]] = panel[::-1]  # any pixel of a component gives its panel
    positions = np.stack([first, cy, cx], axis=1).astype(np.float32)
    pixels = np.bincount(ids, minlength=n).astype(np.int32)
    intensity = np.zeros(n, np.float32) if frame is None else total.astype(np.float32)
    return PeakList(positions, pixels, intensity)


def components(foreground: np.ndarray, flat: np.ndarray, panel, ys, xs) -> tuple[int, np.ndarray]:
    """8-connected components of the foreground pixels at sorted flat indices `flat`: (how many, the
    component of each pixel), numbered in raster order of each component's first pixel."""
    _, h, w = foreground.shape
    src, dst = [], []
    for dy, dx in _FORWARD:
        ny, nx = ys + dy, xs + dx
        inside = (ny < h) & (nx >= 0) & (nx < w)
        inside[inside] = foreground[panel[inside], ny[inside], nx[inside]]
        linked = np.flatnonzero(inside)
        src.append(linked)
        dst.append(np.searchsorted(flat, flat[linked] + dy * w + dx))
    src, dst = np.concatenate(src), np.concatenate(dst)
    graph = coo_matrix((np.ones(len(src), np.int8), (src, dst)), shape=(len(flat), len(flat)))
    return connected_components(graph, directed=False)
