"""Where each panel of a (C, H, W) frame sits in the CrystFEL slab, from a .geom file (cfelpyutils)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class PanelRect:
    name: str
    min_ss: int
    max_ss: int
    min_fs: int
    max_fs: int


class SlabLayout:
    """Panel i of a stacked frame is the i-th panel of the geometry file."""

    def __init__(self, panels: list[PanelRect]):
        self.panels = panels
        self.shape = (max(p.max_ss for p in panels) + 1, max(p.max_fs for p in panels) + 1)
        self._ss = np.array([p.min_ss for p in panels], np.float32)
        self._fs = np.array([p.min_fs for p in panels], np.float32)

    @classmethod
    def from_geom(cls, path: str) -> SlabLayout:
        from cfelpyutils.geometry import load_crystfel_geometry

        geometry = load_crystfel_geometry(path)
        panels = [
            PanelRect(name, int(p["orig_min_ss"]), int(p["orig_max_ss"]), int(p["orig_min_fs"]), int(p["orig_max_fs"]))
            for name, p in geometry.detector["panels"].items()
        ]
        return cls(panels)

    @classmethod
    def single_panel(cls, h: int, w: int) -> SlabLayout:
        return cls([PanelRect("p0", 0, h - 1, 0, w - 1)])

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the frames this layout places: the first panel's size, one channel per panel."""
        p = self.panels[0]
        return (len(self.panels), p.max_ss - p.min_ss + 1, p.max_fs - p.min_fs + 1)

    @property
    def is_identity(self) -> bool:
        """One panel filling the slab: a frame's only channel is its slab as it lies in memory."""
        return len(self.panels) == 1 and self.shape == self.frame_shape[1:]

    def check_frame(self, frame_shape: tuple[int, ...]) -> None:
        c, h, w = frame_shape
        if c != len(self.panels):
            raise ValueError(f"geometry has {len(self.panels)} panels, frames have {c} (shape {frame_shape})")
        _, ph, pw = self.frame_shape
        if (ph, pw) != (h, w):
            raise ValueError(f"geometry panel {self.panels[0].name} is {ph}x{pw}, frame panels are {h}x{w}")

    def place(self, slab: np.ndarray, frames: np.ndarray) -> None:
        """Copy (..., C, H, W) frames into (..., H_slab, W_slab) slabs in place; gaps are left as they are."""
        for i, p in enumerate(self.panels):
            slab[..., p.min_ss : p.max_ss + 1, p.min_fs : p.max_fs + 1] = frames[..., i, :, :]

    def take(self, slabs: np.ndarray) -> np.ndarray:
        """(..., H_slab, W_slab) slabs -> (..., C, H, W) frames: the inverse of place."""
        if tuple(slabs.shape[-2:]) != self.shape:
            raise ValueError(f"slabs are {tuple(slabs.shape[-2:])}, the geometry's slab is {self.shape}")
        rects = [slabs[..., p.min_ss : p.max_ss + 1, p.min_fs : p.max_fs + 1] for p in self.panels]
        return np.stack(rects, axis=-3)

    def peaks_to_slab(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(N, 3) panel, y, x -> slab x (fast scan), slab y (slow scan), panel index."""
        panel = positions[:, 0].astype(np.int64)
        return positions[:, 2] + self._fs[panel], positions[:, 1] + self._ss[panel], panel


def layout_for(geometry: str | None, frame_shape: tuple[int, int, int]) -> SlabLayout:
    c, h, w = frame_shape
    if geometry:
        layout = SlabLayout.from_geom(geometry)
        layout.check_frame(frame_shape)
        return layout
    if c > 1:
        raise ValueError(
            f"frames have {c} panels (shape {frame_shape}) and no geometry: set writer.geometry to the "
            "detector's CrystFEL .geom file so panels can be placed in the slab"
        )
    return SlabLayout.single_panel(h, w)
