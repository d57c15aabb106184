"""benchmarks/bench_accuracy.py on the CPU with the shipped demo weights: each mode scored against the planted
peaks and against the fp32 reference; random weights score far lower, so the score discriminates."""

from __future__ import annotations

import json
import sys

from .conftest import ROOT, load_script

bench = load_script("peaknet_bench_accuracy", ROOT / "benchmarks" / "bench_accuracy.py")
CONFIG = str(ROOT / "examples" / "configs" / "cpu-demo.yaml")


def run(tmp_path, *extra: str) -> dict:
    out = tmp_path / "accuracy.json"
    argv = ["bench_accuracy.py", "--config", CONFIG, "--frames", "16", "--modes", "fp32", "bf16", "--output", str(out)]
    saved, sys.argv = sys.argv, argv + list(extra)
    try:
        assert bench.main() == 0
    finally:
        sys.argv = saved
    return json.loads(out.read_text())


def test_the_demo_weights_find_the_planted_peaks_and_every_mode_is_scored(tmp_path):
    result = run(tmp_path)
    fp32 = result["modes"]["fp32"]
    assert result["device"] == "cpu" and result["modes"]["bf16"]["ran_as"] == "fp32"  # CPUs run fp32
    assert fp32["mask_iou_vs_fp32"] == 1.0 and fp32["pixels_differing_from_fp32"] == 0
    assert fp32["frames"] == 16 and fp32["f1"] > 0.97 and fp32["f1_minus_bf16"] == 0.0


def test_random_weights_score_far_lower(tmp_path):
    result = run(tmp_path, "--set", "model.peaknet.weights=null")
    assert result["modes"]["fp32"]["f1"] < 0.5
