"""Stage subcommands as separate processes against one Ray cluster: signals, service mode, stop."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import h5py
import pytest

from peaknet_pipeline.coordinator import attach_coordinator

from .conftest import ROOT, SMALL_ACTORS, cli


@pytest.fixture
def stage_args(ray_session, namespace, tmp_path):
    address = ray_session.get_runtime_context().gcs_address
    return [
        "--config",
        str(ROOT / "examples/configs/cpu-demo.yaml"),
        "--set",
        f"ray.address={address}",
        "--set",
        f"ray.namespace={namespace}",
        "--set",
        "data.frame_shape=[1,64,64]",
        *SMALL_ACTORS,
        "--set",
        "output.progress=log",
        "--set",
        "output.progress_interval_s=1",
        "--set",
        f"writer.output_dir={tmp_path / 'cxi'}",
        "--set",
        "writer.min_num_peak=0",
        "--set",
        "writer.flush_interval_s=2",
    ]


def members(ray, namespace, stage):
    try:
        coordinator = attach_coordinator(namespace)
    except LookupError:
        return []
    return [m for m in ray.get(coordinator.snapshot.remote())["members"] if m.stage == stage]


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")


def test_ctrl_c_during_a_profiled_run_exits_0_with_a_summary_and_a_trace(
    ray_session, namespace, stage_args, tmp_path: Path
):
    report_path = tmp_path / "report.json"
    traces = tmp_path / "traces"
    profiling = ["--enable-profiling", "--set", "profiling.tool=torch", "--set", f"profiling.torch_trace_dir={traces}"]
    profiling += ["--set", "profiling.trace_skip_batches=1", "--set", "profiling.trace_batches=100000"]
    proc = subprocess.Popen(
        cli(
            "run",
            *stage_args,
            *profiling,
            "--set",
            "producer.total_frames=null",
            "--set",
            "producer.push_interval_s=0.02",
            "--report",
            str(report_path),
        ),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: sum(m.frames_out for m in members(ray_session, namespace, "write")) >= 40, 90, "frames")
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=90)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    report = json.loads(report_path.read_text())
    assert report["stopped_by"] == "signal"
    assert report["accounted"] is True
    produced = report["stages"]["produce"]["frames_out"]
    assert produced >= 40 and report["stages"]["write"]["frames_in"] == produced
    assert "stopped by signal" in out
    # The trace window was still open at Ctrl-C: the drain path writes it.
    (trace,) = traces.glob("infer-*.trace.json")
    assert json.loads(trace.read_text())["traceEvents"]
    (info,) = report["stages"]["infer"]["info"].values()
    assert info["torch_trace"] == str(trace)


def test_service_mode_survives_a_producer_restart_and_stop_drains(ray_session, namespace, stage_args, tmp_path):
    reports = {s: tmp_path / f"{s}.json" for s in ("infer", "write")}
    services = {
        s: subprocess.Popen(
            cli(s, *stage_args, "--report", str(reports[s])),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for s in ("infer", "write")
    }
    try:
        # Two producer processes one after the other; the first one going away must not end the stages.
        for frames in (24, 16):
            done = subprocess.run(
                cli("produce", *stage_args, "--total-samples", str(frames)),
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, done.stdout + done.stderr
            assert all(p.poll() is None for p in services.values()), "a service stage ended with its producer"
        written = lambda: sum(m.frames_out for m in members(ray_session, namespace, "write"))  # noqa: E731
        wait_for(lambda: written() == 40, 60, lambda: f"40 frames written: {members(ray_session, namespace, 'write')}")
        shown = subprocess.run(cli("status", *stage_args), cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert shown.returncode == 0, shown.stderr
        assert re.search(r"^Q1 \(.*\): depth 0/", shown.stdout, re.M), shown.stdout
        assert re.search(r"^write +write-\S+ +running +in 40 out 40 rss [1-9]\d* MiB", shown.stdout, re.M), shown.stdout
        stopped = subprocess.run(cli("stop", *stage_args), cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert stopped.returncode == 0, stopped.stderr
        outputs = {s: p.communicate(timeout=90)[0] for s, p in services.items()}
    finally:
        for p in services.values():
            p.kill()
    for s, p in services.items():
        assert p.returncode == 0, outputs[s]
    infer, write = (json.loads(reports[s].read_text())["stages"] for s in ("infer", "write"))
    assert infer["infer"]["frames_in"] == infer["infer"]["frames_out"] == 40
    assert write["write"]["frames_in"] == 40
    ids = []
    for path in (tmp_path / "cxi").glob("*.cxi"):
        with h5py.File(path) as f:
            ids += [x.decode() for x in f["/entry_1/event_id"][:]]
    assert len(ids) == len(set(ids)) == 40  # every frame from both producers, once
    subprocess.run(cli("cleanup", *stage_args), cwd=ROOT, check=True, timeout=60)


def test_quick_start_cpu_demo_runs_with_embedded_ray(tmp_path):
    """The README's first command, as a user runs it: embedded local Ray, CXI files out, exit 0."""
    report = tmp_path / "report.json"
    done = subprocess.run(
        cli(
            "run",
            "--config",
            str(ROOT / "examples/configs/cpu-demo.yaml"),
            "--set",
            f"writer.output_dir={tmp_path}",
            "--set",
            "ray.namespace=quickstart-test",
            "--report",
            str(report),
        ),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(report.read_text())
    assert summary["accounted"] is True and summary["stages"]["write"]["frames_in"] == 256
    assert list(tmp_path.glob("*.cxi"))
    info_lines = [line for line in done.stderr.splitlines() if " INFO " in line]
    assert len(info_lines) <= 8, info_lines  # a handful per run, no per-batch lines
