"""Synthetic detector frames: noisy background with Gaussian Bragg peaks at known positions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import PipelineConfig, ProducerSection


@dataclass(slots=True)
class SyntheticBatch:
    frames: np.ndarray  # (B, C, H, W)
    true_peaks: list[np.ndarray]  # per frame: (N, 3) float32 (panel, y, x)


class FrameSynthesizer:
    """Deterministic for a given seed: the same seed gives the same frames and peaks."""

    def __init__(self, cfg: ProducerSection, frame_shape: tuple[int, int, int], dtype: str, seed: int):
        self._cfg = cfg
        self._shape = frame_shape
        self._dtype = np.dtype(dtype)
        self._rng = np.random.default_rng(seed)

    def batch(self, size: int) -> SyntheticBatch:
        c, h, w = self._shape
        cfg = self._cfg
        frames = self._rng.standard_normal((size, c, h, w), dtype=np.float32)
        frames *= cfg.noise_sigma
        frames += cfg.background
        truths = []
        for b in range(size):
            peaks = self._place_peaks(c, h, w)
            for panel, y, x in peaks:
                self._render(frames[b, int(panel)], y, x)
            truths.append(peaks)
        if np.issubdtype(self._dtype, np.integer):
            np.clip(frames, 0, None, out=frames)
        return SyntheticBatch(frames.astype(self._dtype, copy=False), truths)

    def _place_peaks(self, c: int, h: int, w: int) -> np.ndarray:
        lo, hi = self._cfg.peaks.per_frame
        wanted = int(self._rng.integers(lo, hi + 1))
        margin = 4 * self._cfg.peaks.sigma_px + 1
        min_sep2 = self._cfg.peaks.min_separation_px**2
        placed: list[tuple[float, float, float]] = []
        for _ in range(wanted * 20):  # rejection sampling; dense requests may plant fewer
            if len(placed) == wanted:
                break
            p = float(self._rng.integers(0, c))
            y = float(self._rng.uniform(margin, h - 1 - margin))
            x = float(self._rng.uniform(margin, w - 1 - margin))
            if all(q[0] != p or (q[1] - y) ** 2 + (q[2] - x) ** 2 >= min_sep2 for q in placed):
                placed.append((p, y, x))
        return np.asarray(placed, dtype=np.float32).reshape(-1, 3)

    def _render(self, panel: np.ndarray, y: float, x: float) -> None:
        sigma = self._cfg.peaks.sigma_px
        r = int(np.ceil(4 * sigma))
        y0, x0 = int(round(y)), int(round(x))
        ys = np.arange(max(y0 - r, 0), min(y0 + r + 1, panel.shape[0]))
        xs = np.arange(max(x0 - r, 0), min(x0 + r + 1, panel.shape[1]))
        gy = np.exp(-((ys - y) ** 2) / (2 * sigma**2))
        gx = np.exp(-((xs - x) ** 2) / (2 * sigma**2))
        panel[ys[0] : ys[-1] + 1, xs[0] : xs[-1] + 1] += self._cfg.peaks.amplitude * np.outer(gy, gx)


def require_frame_shape(cfg: PipelineConfig) -> tuple[int, int, int]:
    if cfg.data.frame_shape is None:
        raise ValueError(
            "producer.kind=synthetic needs data.frame_shape, the (C, H, W) of the frames to make; "
            "set it in the config, e.g. --set 'data.frame_shape=[1,512,512]'"
        )
    return cfg.data.frame_shape
