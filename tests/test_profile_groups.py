"""benchmarks/profile_groups.py on the CPU: its groups, run one after another, are the model (same masks as
the pipeline's runner), and the report times and profiles every group."""

from __future__ import annotations

import json
import sys

import torch

from peaknet_pipeline.config_sources import load_config
from peaknet_pipeline.inference.engine import ModelRunner, spec_from_config
from peaknet_pipeline.inference.models import build_model

from .conftest import ROOT, load_script

bench = load_script("peaknet_profile_groups", ROOT / "benchmarks" / "profile_groups.py")
CONFIG = str(ROOT / "examples" / "configs" / "cpu-demo.yaml")
NAMES = ["stem", "backbone stage 1", "backbone stage 2", "backbone stage 3", "backbone stage 4", "bifpn", "head"]


@torch.inference_mode()
def test_the_groups_in_order_are_the_model():
    cfg = load_config(CONFIG)
    seg, dtype, spec = bench.prepared(cfg, torch.device("cpu"))
    steps = bench.groups(seg, dtype)
    assert [name for name, _ in steps] == NAMES
    frames = torch.rand((2, *spec.frame_shape), generator=torch.Generator().manual_seed(0)) * 10
    model, _ = build_model(cfg.model)
    whole = ModelRunner(model, spec_from_config(cfg, cfg.data.frame_shape), torch.device("cpu")).masks(frames)
    assert torch.equal(bench.run_once(steps, frames).view_as(whole), whole)


def test_every_group_is_timed_and_profiled(tmp_path):
    out = tmp_path / "groups.json"
    argv = ["profile_groups.py", "--config", CONFIG, "--iters", "2", "--no-whole", "--profile-mode", "none",
            "--output", str(out)]  # fmt: skip
    saved, sys.argv = sys.argv, argv
    try:
        assert bench.main() == 0
    finally:
        sys.argv = saved
    result = json.loads(out.read_text())
    assert list(result["groups_ms_per_batch"]) == NAMES and all(v > 0 for v in result["groups_ms_per_batch"].values())
    assert abs(result["sum_of_groups_ms"] - sum(result["groups_ms_per_batch"].values())) < 0.01
    profiled = bench.profile_groups(bench.groups(*bench.prepared(load_config(CONFIG), torch.device("cpu"))[:2]),
                                    torch.rand(2, 1, 256, 256), iters=1, top=3)  # fmt: skip
    assert list(profiled) == NAMES and all(g["ms_per_batch"] > 0 for g in profiled.values())
