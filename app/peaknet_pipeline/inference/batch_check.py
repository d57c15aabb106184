"""Reject batches that the model cannot take, with the reason and both shapes or dtypes named."""

from __future__ import annotations

import numpy as np


class BatchRejected(ValueError):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def check_batch(frames: object, frame_shape: tuple[int, int, int] | None, dtype: np.dtype) -> None:
    if not isinstance(frames, np.ndarray):
        raise BatchRejected("not_an_array", f"expected a numpy array of frames, got {type(frames).__name__}")
    if frames.ndim != 4:
        raise BatchRejected("rank", f"expected frames of shape (B, C, H, W), got shape {frames.shape}")
    if frame_shape is not None and tuple(frames.shape[1:]) != tuple(frame_shape):
        raise BatchRejected(
            "shape", f"expected frames of shape (B, {', '.join(map(str, frame_shape))}), got {frames.shape}"
        )
    if frames.dtype != dtype:
        raise BatchRejected("dtype", f"expected dtype {dtype}, got {frames.dtype}")
