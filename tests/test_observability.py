"""What issue-8 measurements rest on: resource samples, the torch trace window, the trace and sample
analyses. Real local Ray and a real CPU pipeline; the analyses on intervals whose answer is known."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from peaknet_pipeline.driver import StageDriver

from .conftest import load_script

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def bench_module(name: str):
    return load_script(name, BENCH / f"{name}.py")


analyze_trace = bench_module("analyze_trace")
bench_pipeline = bench_module("bench_pipeline")
analyze_samples = bench_module("analyze_samples")
analyze_pyspy = bench_module("analyze_pyspy")


def test_samples_and_a_trace_window_from_a_cpu_run(ray_session, cpu_config, tmp_path):
    cfg = cpu_config.model_copy(deep=True)
    cfg.producer.total_frames = 160
    cfg.producer.push_interval_s = 0.05
    cfg.output.samples = str(tmp_path / "samples.jsonl")
    cfg.output.samples_interval_s = 0.3
    cfg.profiling.enabled = True
    cfg.profiling.tool = "torch"
    cfg.profiling.torch_trace_dir = str(tmp_path / "traces")
    cfg.profiling.trace_skip_batches = 2
    cfg.profiling.trace_batches = 3
    report = StageDriver(cfg, ("produce", "infer", "write"), "run", whole_pipeline=True).execute()
    assert report.accounted
    (info,) = report.stages["infer"].info.values()
    trace = json.loads(Path(info["torch_trace"]).read_text())
    ops = [e for e in trace["traceEvents"] if e.get("ph") == "X" and e.get("cat") == "cpu_op"]
    assert ops, "the trace recorded the engine's work"
    steps = {e["name"] for e in trace["traceEvents"] if e.get("cat") == analyze_trace.HOST}
    assert any(name.startswith("batch ") for name in steps), f"the profiling ranges are in the trace: {steps}"
    # The window closed by itself after 3 of the 20 batches, long before the run ended.
    span_s = (max(e["ts"] + e["dur"] for e in ops) - min(e["ts"] for e in ops)) / 1e6
    assert span_s < 0.5 * report.wall_s
    samples = analyze_samples.load_samples(cfg.output.samples)
    assert len(samples) >= 3
    last = samples[-1]
    assert {"coordinator", "peaknet-q1-0"} <= set(last["rss_bytes"])
    assert all(v > 10 * 2**20 for v in last["rss_bytes"].values())  # a Python process is tens of MiB
    assert all(d <= last["queue_maxsize"][q] for s in samples for q, d in s["queue_depth"].items())
    summary = analyze_samples.summarise(samples, warmup_s=0.0)
    assert summary["queue_within_limits"] is True


def test_samples_summary_finds_a_growing_process():
    samples = [
        {
            "t_s": t * 60.0,
            "object_store_bytes": 100 * 2**20,
            "rss_bytes": {"leaky": (200 + 10 * t) * 2**20, "flat": 300 * 2**20},
            "queue_depth": {"q": 9 if t == 3 else 1},
            "queue_maxsize": {"q": 8},
        }
        for t in range(6)
    ]
    summary = analyze_samples.summarise(samples, warmup_s=0.0)
    assert summary["rss"]["leaky"]["slope_mib_per_min"] == pytest.approx(10.0)
    assert summary["rss"]["flat"]["slope_mib_per_min"] == pytest.approx(0.0)
    assert summary["queue_within_limits"] is False


def gpu_event(name: str, cat: str, ts: float, dur: float, stream: int) -> dict:
    return {"ph": "X", "cat": cat, "name": name, "ts": ts, "dur": dur, "args": {"stream": stream}}


def test_trace_summary_measures_busy_time_and_copy_overlap():
    events = [
        gpu_event("conv", "kernel", 0, 100, 7),  # compute 0-100 and 150-250
        gpu_event("gelu", "kernel", 150, 100, 7),
        gpu_event("Memcpy HtoD (Pinned -> Device)", "gpu_memcpy", 80, 40, 13),  # 20 of 40 under compute
        gpu_event("Memcpy DtoH (Device -> Pinned)", "gpu_memcpy", 260, 40, 17),
    ]
    s = analyze_trace.summarise(events)
    assert s["window_ms"] == pytest.approx(0.3)
    assert s["busy_fraction"] == pytest.approx(260 / 300, abs=1e-3)  # idle 120-150 and 250-260
    assert s["h2d_overlapped"] == pytest.approx(0.5)
    assert s["streams_used"] == ["13", "17", "7"]
    with pytest.raises(ValueError, match="no GPU events"):
        analyze_trace.summarise([])


def host_range(name: str, ts: float, dur: float, tid: int) -> dict:
    return {"ph": "X", "cat": analyze_trace.HOST, "name": name, "ts": ts, "dur": dur, "tid": tid}


def test_gpu_gaps_are_attributed_to_what_each_host_thread_was_doing():
    events = [
        gpu_event("conv", "kernel", 0, 100, 7),
        gpu_event("gelu", "kernel", 150, 100, 7),  # a 50 us gap before it
        gpu_event("relu", "kernel", 260, 40, 7),  # 10 us: launch spacing, below the threshold
        host_range("batch 41", 0, 300, tid=1),
        host_range("wait_result", 90, 70, tid=1),  # innermost on the main thread at the gap's start
        host_range("put_q2", 20, 200, tid=2),
    ]
    gaps = analyze_trace.summarise(events, min_gap_us=20)["gaps"]
    assert gaps["count"] == 1
    assert gaps["total_ms"] == pytest.approx(0.05)
    assert gaps["share_of_window"] == pytest.approx(50 / 300, abs=1e-3)
    assert gaps["host_range_ms"] == {"wait_result": pytest.approx(0.05), "put_q2": pytest.approx(0.05)}
    quiet = analyze_trace.summarise([e for e in events if e.get("tid") != 2], min_gap_us=20)
    assert quiet["gaps"]["host_range_ms"] == {"wait_result": pytest.approx(0.05)}
    assert analyze_trace.range_name("batch 41") == "batch"


def test_pyspy_shares_are_of_each_threads_samples_after_the_skipped_start():
    frames = [{"name": "run", "file": "/a/infer.py"}, {"name": "compile"}, {"name": "launch"}, {"name": "copy"}]
    run_thread = [[0, 1]] * 4 + [[0, 2]] * 3 + [[0, 3]]  # start-up: compile; then launches and a copy
    recording = {
        "shared": {"frames": frames},
        "profiles": [
            {"name": "Thread 1 run", "samples": run_thread},
            {"name": "Thread 2 putter", "samples": [[3], [3]]},
        ],
    }
    summary = analyze_pyspy.summarise(recording, skip=0.5, top=3)
    run, putter = summary["threads"]
    assert run["samples"] == 4 and putter["samples"] == 1
    assert run["inclusive"] == {"run (infer.py)": 1.0, "launch": 0.75, "copy": 0.25}
    assert run["self"] == {"launch": 0.75, "copy": 0.25}  # compile fell in the skipped start
    assert analyze_pyspy.summarise(recording, skip=0.0, top=3)["threads"][0]["self"]["compile"] == 0.5


def test_profiler_choice_follows_what_is_installed(tmp_path, monkeypatch):
    from peaknet_pipeline.config import ProfilingSection
    from peaknet_pipeline.profiling import nsight_runtime_env, profiling_tool, under_nsys

    monkeypatch.setenv("PATH", str(tmp_path))  # no nsys here
    assert profiling_tool(ProfilingSection(enabled=True)) == "torch"
    assert profiling_tool(ProfilingSection(enabled=False)) is None
    fake = tmp_path / "nsys"
    fake.write_text("#!/bin/sh\nexec sleep 5\n")
    fake.chmod(0o755)
    assert profiling_tool(ProfilingSection(enabled=True)) == "nsys"
    assert nsight_runtime_env(ProfilingSection(enabled=True)) == {"nsight": "default"}
    # A driver already under `nsys profile` leaves the workers to that nsys.
    shell = tmp_path / "nsys-launcher"
    shutil.copy("/bin/sh", shell)
    child = subprocess.Popen([str(shell), "-c", "/bin/sleep 5; true"])
    try:
        time.sleep(0.3)
        sleeper = int(Path(f"/proc/{child.pid}/task/{child.pid}/children").read_text().split()[0])
        assert under_nsys(sleeper) is True
    finally:
        child.kill()
    assert under_nsys() is False


def test_the_bench_names_the_stage_that_limits():
    rates, fed = {"infer": 600.0, "write": 600.0}, {"Q1": {"high_water": 8, "maxsize": 8}}
    q2_full = {**fed, "Q2": {"high_water": 8, "maxsize": 8}}
    assert bench_pipeline.limiter(rates, q2_full, 1000.0, 0.0).startswith("write:")
    # Q1 was full once (it fills while the model compiles), but inference waited for input 40% of the time.
    assert bench_pipeline.limiter(rates, fed, 1000.0, 0.4).startswith("produce: inference waited for input 40%")
    assert bench_pipeline.limiter(rates, fed, 1000.0, 0.02).startswith("infer: 600.0 frames/s, waiting")
    close = bench_pipeline.limiter(rates, fed, 650.0, 0.4)  # within 10%, and still the stage is named
    assert close.startswith("produce: inference waited") and close.endswith("; within 10% of model-only")
    busy = bench_pipeline.limiter({"infer": 907.0, "write": 950.0}, fed, 1000.0, 0.01)
    assert busy == "infer: 907.0 frames/s, waiting for input 1% of the time; within 10% of model-only"


def test_the_bench_sweeper_deletes_published_files_and_counts_them(tmp_path):
    (tmp_path / "w0-0.cxi").write_bytes(b"x" * 10)
    (tmp_path / ".w0-1.cxi.tmp").write_bytes(b"x" * 7)  # still being written: neither counted nor touched
    with bench_pipeline.Sweeper(tmp_path, 0.05) as sweeper:
        deadline = time.monotonic() + 10
        while (tmp_path / "w0-0.cxi").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not (tmp_path / "w0-0.cxi").exists()
    (tmp_path / "w0-2.cxi").write_bytes(b"x" * 5)
    assert sweeper.sweep(discard=False) == 15
    assert (tmp_path / ".w0-1.cxi.tmp").exists() and (tmp_path / "w0-2.cxi").exists()
    kept = bench_pipeline.Sweeper(tmp_path, None)
    with kept:
        time.sleep(0.1)
    assert kept.sweep(discard=False) == 5  # without an interval nothing is deleted
