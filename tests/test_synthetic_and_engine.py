"""Synthetic frames and the CPU inference engine with the threshold model (real torch, no mocks)."""

import numpy as np
import pytest
from scipy import ndimage

from peaknet_pipeline.config import ProducerSection, SyntheticPeaks
from peaknet_pipeline.inference.batch_check import BatchRejected, check_batch
from peaknet_pipeline.inference.engine import EngineSpec, compile_options, make_engine
from peaknet_pipeline.inference.threshold import ThresholdSegmenter
from peaknet_pipeline.model.segmenter import Segmenter

PRODUCER = ProducerSection(peaks=SyntheticPeaks(per_frame=(5, 12)))


def synth(shape=(2, 96, 128), seed=3):
    from peaknet_pipeline.synthetic import FrameSynthesizer

    return FrameSynthesizer(PRODUCER, shape, "float32", seed)


def test_synthetic_frames_are_seeded_and_carry_truth():
    a, b, c = synth(seed=1).batch(3), synth(seed=1).batch(3), synth(seed=2).batch(3)
    assert a.frames.shape == (3, 2, 96, 128) and a.frames.dtype == np.float32
    np.testing.assert_array_equal(a.frames, b.frames)
    assert not np.array_equal(a.frames, c.frames)
    for frame, truth in zip(a.frames, a.true_peaks):
        assert 5 <= len(truth) <= 12
        panels, ys, xs = truth.T.astype(int)
        # Planted peaks stand far above the background of 10 (noise sigma 2).
        assert (frame[panels, np.round(truth[:, 1]).astype(int), np.round(truth[:, 2]).astype(int)] > 40).all()


def run_engine(frames: np.ndarray, batch_size: int) -> np.ndarray:
    out = {}
    spec = EngineSpec(batch_size, frames.shape[1:], frames.dtype)
    engine = make_engine(
        Segmenter(ThresholdSegmenter(6.0), 1, False, "none", None),
        spec,
        "cpu",
        lambda tag, m: out.__setitem__(tag, m.copy()),
    )
    for start in range(0, len(frames), batch_size):
        engine.submit(frames[start : start + batch_size], start)
    engine.flush()
    return np.concatenate([out[k] for k in sorted(out)])


def test_planted_peaks_are_visible_in_the_masks():
    batch = synth().batch(5)
    masks = run_engine(batch.frames, batch_size=2)  # 5 frames: the last batch is partial
    assert masks.shape == batch.frames.shape and masks.dtype == np.uint8
    for mask, truth in zip(masks, batch.true_peaks):
        for panel, y, x in truth:
            assert mask[int(panel), round(y), round(x)] == 1
        n_components = sum(ndimage.label(m, structure=np.ones((3, 3)))[1] for m in mask)
        assert n_components == len(truth)


def test_noise_only_frames_give_empty_masks():
    rng = np.random.default_rng(0)
    frames = (10 + 2 * rng.standard_normal((4, 1, 64, 64))).astype(np.float32)
    assert run_engine(frames, 4).sum() == 0


@pytest.mark.parametrize(
    "frames, reason, words",
    [
        (np.zeros((2, 1, 32, 48), np.float32), "shape", ["(B, 1, 32, 32)", "(2, 1, 32, 48)"]),
        (np.zeros((2, 1, 32, 32), np.float64), "dtype", ["float32", "float64"]),
        (np.zeros((1, 32, 32), np.float32), "rank", ["(B, C, H, W)", "(1, 32, 32)"]),
    ],
)
def test_bad_batches_name_expected_and_actual(frames, reason, words):
    with pytest.raises(BatchRejected) as err:
        check_batch(frames, (1, 32, 32), np.dtype("float32"))
    assert err.value.reason == reason
    for word in words:
        assert word in str(err.value)


@pytest.mark.parametrize(
    ("mode", "tune", "expected"),
    [
        ("default", False, {}),
        ("reduce-overhead", False, {"triton.cudagraphs": True}),
        ("reduce-overhead", True, {"triton.cudagraphs": True, "coordinate_descent_tuning": True}),
    ],
)
def test_compile_options_are_the_modes_plus_kernel_tuning_when_asked(mode, tune, expected):
    spec = EngineSpec(4, (1, 32, 32), np.dtype("float32"), compile_mode=mode, tune_kernels=tune)
    assert compile_options(spec) == expected
