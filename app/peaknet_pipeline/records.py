"""Records that travel through the queues. Pixel data stays in the object store: records hold refs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import ray


@dataclass(slots=True)
class FrameMeta:
    frame_id: str  # unique over the run: "<source>:<seq>"
    timestamp: float
    photon_energy_eV: float
    original_shape: tuple[int, ...] | None = None  # (C, H, W) before padding, when padded
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. planted peak positions for checks


@dataclass(slots=True)
class FrameBatch:
    """Q1 record: frames_ref -> ndarray (B, C, H, W)."""

    batch_id: str
    owners: tuple[str, ...]  # members whose objects the record refers to; they outlive its use
    frames_ref: ray.ObjectRef
    meta: list[FrameMeta]

    @property
    def size(self) -> int:
        return len(self.meta)


@dataclass(slots=True)
class SegmentedBatch:
    """Q2 record: mask_ref -> uint8 (B, C, H, W) class ids; frames_ref passed through."""

    batch_id: str
    owners: tuple[str, ...]
    frames_ref: ray.ObjectRef
    mask_ref: ray.ObjectRef
    meta: list[FrameMeta]

    @property
    def size(self) -> int:
        return len(self.meta)
