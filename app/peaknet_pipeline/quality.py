"""Peak-level quality against planted truth: found peaks matched one-to-one to true peaks on the same panel,
within MATCH_RADIUS_PX; precision and recall over every frame that carried its truth (synthetic frames)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from .output.peaks import find_peaks

MATCH_RADIUS_PX = 1.5


def match_counts(found: np.ndarray, truth: np.ndarray, radius: float = MATCH_RADIUS_PX) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives) for one frame; positions are (N, 3) panel, y, x."""
    if len(found) == 0 or len(truth) == 0:
        return 0, len(found), len(truth)
    d = np.hypot(found[:, None, 1] - truth[None, :, 1], found[:, None, 2] - truth[None, :, 2])
    d[found[:, None, 0] != truth[None, :, 0]] = np.inf  # peaks on different panels never match
    cost = np.where(d <= radius, d, radius * 1e3)  # finite, so every row can be assigned; too far = no match
    rows, cols = linear_sum_assignment(cost)
    tp = int(np.count_nonzero(d[rows, cols] <= radius))
    return tp, len(found) - tp, len(truth) - tp


@dataclass(slots=True)
class PeakTally:
    frames: int = 0
    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0

    def add_frame(self, found: np.ndarray, truth: np.ndarray) -> None:
        tp, fp, fn = match_counts(found, np.asarray(truth, np.float32).reshape(-1, 3))
        self.frames += 1
        self.true_positives += tp
        self.false_positives += fp
        self.false_negatives += fn

    def add_batch(self, found: Iterable[np.ndarray], truths: Iterable[np.ndarray | None]) -> None:
        """Frame by frame; frames without planted peaks (truth None) are not counted."""
        for positions, truth in zip(found, truths, strict=True):
            if truth is not None:
                self.add_frame(positions, truth)

    def add_masks(self, masks: Iterable[np.ndarray], truths: Iterable[np.ndarray | None]) -> None:
        """As add_batch, the peaks found in each (C, H, W) class mask by the pipeline's peak finder."""
        self.add_batch((find_peaks(mask).positions for mask in masks), truths)

    def merge(self, counts: dict) -> None:
        for key in ("frames", "true_positives", "false_positives", "false_negatives"):
            setattr(self, key, getattr(self, key) + int(counts.get(key, 0)))

    def counts(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in ("frames", "true_positives", "false_positives", "false_negatives")}

    def summary(self) -> dict[str, float | int]:
        tp, fp, fn = self.true_positives, self.false_positives, self.false_negatives
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / (tp + fn) if tp + fn else 1.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rounded = {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}
        return {**self.counts(), **rounded, "match_radius_px": MATCH_RADIUS_PX}


def truths_of(record) -> list[np.ndarray | None]:
    """The planted peaks of each frame of a queue record (FrameBatch or SegmentedBatch), None where unknown."""
    return [meta.extra.get("true_peaks") for meta in record.meta]
