"""kill -9 of the inference actor on a GPU: Ray restarts it on the GPU, it warms up again, and the run completes
with the ledger matching the CXI files. Needs a GPU: CI has none, so this skips there; it runs on the lent
H100 (docs/performance.md gives the last result)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch

from .test_chaos import RUN_BOUND_S, Background, chaos_config, check_ledger_matches_disk, member_once

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine (CI has none)")


def test_a_killed_gpu_inference_actor_is_restarted_and_the_run_completes(ray_session, cpu_config, tmp_path):
    cfg = chaos_config(cpu_config, tmp_path / "cxi", total=1600)
    cfg.data.frame_shape, cfg.data.batch_size = (1, 512, 512), 16
    cfg.model.kind = "peaknet"
    cfg.inference.device, cfg.inference.precision = "cuda", "bf16"
    cfg.producer.push_interval_s, cfg.producer.unique_batches = 0.01, 4
    cfg.lifecycle.stall_timeout_s = 120
    run = Background(cfg)
    victim = member_once(ray_session, cfg.ray.namespace, "infer", lambda m: m.frames_out >= 160, timeout=300)
    os.kill(victim.info["pid"], signal.SIGKILL)
    run.join(RUN_BOUND_S * 2)
    report = run.report
    ids = check_ledger_matches_disk(report, tmp_path / "cxi")
    assert report.error is None and report.frames.produced == 1600
    (info,) = report.stages["infer"].info.values()
    assert info["device"] == "cuda" and info["pid"] != victim.info["pid"]
    assert len(ids) > victim.frames_out
    if out := os.environ.get("OUT"):
        summary = {
            "victim_frames_out_at_kill": victim.frames_out,
            "written": len(ids),
            **report.model_dump(mode="json"),
        }
        Path(out, "gpu-chaos-report.json").write_text(json.dumps(summary, indent=2))
