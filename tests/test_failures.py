"""Bad settings, bad disks, two drivers, a killed driver, SIGTERM: `run` as a user runs it, as a process.

Each ends by itself with the exit code the README documents and one clear message naming the setting.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import h5py
import pytest

from peaknet_pipeline.report import EXIT_ERROR, EXIT_OK, EXIT_STAGE_FAILED

from .conftest import ROOT, SMALL_ACTORS, cli

BOUND_S = 150


@pytest.fixture
def run_args(ray_session, namespace, tmp_path):
    """A small CPU run against the test session's Ray (faster than an embedded Ray per test)."""
    return [
        "--config", str(ROOT / "examples/configs/cpu-demo.yaml"),
        "--set", f"ray.address={ray_session.get_runtime_context().gcs_address}",
        "--set", f"ray.namespace={namespace}",
        "--set", "data.frame_shape=[1,64,64]",
        "--set", "writer.min_num_peak=0",
        "--set", f"writer.output_dir={tmp_path / 'cxi'}",
        *SMALL_ACTORS,
    ]  # fmt: skip


def run(*args: str, timeout: float = BOUND_S) -> subprocess.CompletedProcess:
    return subprocess.run(cli("run", *args), cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_missing_weights_end_the_run_at_once_with_one_message(run_args, tmp_path):
    missing = tmp_path / "nowhere.pt"
    t0 = time.monotonic()
    done = run(*run_args, "--set", "model.kind=peaknet", "--set", f"model.peaknet.weights={missing}")
    output = done.stdout + done.stderr
    assert done.returncode == EXIT_STAGE_FAILED, output
    assert output.count(f"checkpoint {missing} does not exist") == 1, output
    assert "model.peaknet.weights" in done.stderr and "Traceback" not in output
    assert time.monotonic() - t0 < 60


def test_a_frame_shape_the_model_cannot_take_ends_the_run(run_args):
    done = run(*run_args, "--set", "model.kind=peaknet", "--set", "data.frame_shape=[1,250,250]")
    output = done.stdout + done.stderr
    assert done.returncode == EXIT_STAGE_FAILED, output
    assert output.count("set model.preprocess.pad") == 1 and "Traceback" not in output, output


def test_an_output_dir_under_a_file_names_the_setting(run_args, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    report = tmp_path / "report.json"
    done = run(*run_args, "--set", f"writer.output_dir={blocker / 'cxi'}", "--report", str(report))
    assert done.returncode == EXIT_STAGE_FAILED, done.stdout + done.stderr
    assert "writer.output_dir" in done.stderr
    assert json.loads(report.read_text())["error"]


@contextmanager
def tmpfs(path: Path, options: str):
    """A small filesystem of our own (tests run as root in CI)."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_read_only_output_dir_names_the_setting(run_args, tmp_path):
    with tmpfs(tmp_path / "ro", "ro,size=1m") as ro:
        done = run(*run_args, "--set", f"writer.output_dir={ro}")
    assert done.returncode == EXIT_STAGE_FAILED, done.stdout + done.stderr
    assert f"writer.output_dir='{ro}' is not writable" in done.stderr


def test_a_full_disk_keeps_what_was_written_and_says_so(run_args, tmp_path):
    report_path = tmp_path / "report.json"
    with tmpfs(tmp_path / "small", "size=1m") as small:
        done = run(
            *run_args, "--set", f"writer.output_dir={small}", "--set", "writer.buffer_size=8",
            "--set", "producer.total_frames=512", "--report", str(report_path),
        )  # fmt: skip
        files = sorted(small.glob("*.cxi"))
        ids = []
        for path in files:
            with h5py.File(path) as f:
                ids += [x.decode() for x in f["/entry_1/event_id"][:]]
        leftovers = list(small.glob(".*.tmp"))
    assert done.returncode == EXIT_STAGE_FAILED, done.stdout + done.stderr
    assert "writer.output_dir" in done.stderr and "No space left" in done.stderr
    assert files and not leftovers
    report = json.loads(report_path.read_text())
    assert report["frames"]["outcomes"]["written"] == len(ids) == len(set(ids))
    assert report["accounted"] is False


def test_two_runs_started_together_in_one_namespace_one_wins(run_args):
    slow = ["--set", "producer.total_frames=320", "--set", "producer.push_interval_s=0.25"]  # runs for seconds
    procs = [
        subprocess.Popen(
            cli("run", *run_args, *slow), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=BOUND_S)[0] for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [EXIT_OK, EXIT_ERROR], outputs
    loser = outputs[[p.returncode for p in procs].index(EXIT_ERROR)]
    assert "already running in Ray namespace" in loser


def test_a_run_after_a_killed_driver_replaces_its_leftovers(run_args, ray_session, namespace):
    endless = ["--set", "producer.total_frames=null", "--set", "producer.push_interval_s=0.02"]
    first = subprocess.Popen(
        cli("run", *run_args, *endless), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    from peaknet_pipeline.coordinator import attach_coordinator

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            members = ray_session.get(attach_coordinator(namespace).members.remote())
        except LookupError:
            members = []
        if any(m.stage == "write" and m.frames_in for m in members):
            break
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait()
    done = run(*run_args, "--set", "producer.total_frames=32")
    assert done.returncode == EXIT_OK, done.stdout + done.stderr
    assert "is gone; replacing the queues and state it left" in done.stdout + done.stderr


def test_sigterm_to_the_process_group_with_an_embedded_ray_still_writes_the_report(tmp_path):
    """What `timeout`, SLURM and a container stop do: every process of the group gets SIGTERM."""
    report = tmp_path / "report.json"
    args = [
        "--config", str(ROOT / "examples/configs/cpu-demo.yaml"), "--set", "data.frame_shape=[1,64,64]",
        "--set", "producer.total_frames=null", "--set", "producer.push_interval_s=0.05",
        "--set", "writer.min_num_peak=0", "--set", f"writer.output_dir={tmp_path / 'cxi'}",
        "--set", "ray.num_cpus=4", *SMALL_ACTORS, "--report", str(report),
    ]  # fmt: skip
    proc = subprocess.Popen(
        cli("run", *args), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True, env={**os.environ, "PYTHONPATH": str(ROOT / "app")},
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list((tmp_path / "cxi").glob("*.cxi")):
        time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGTERM)
    output = proc.communicate(timeout=BOUND_S)[0]
    assert proc.returncode == EXIT_OK, output
    summary = json.loads(report.read_text())
    assert summary["stopped_by"] == "signal" and summary["accounted"] is True
    ids = []
    for path in (tmp_path / "cxi").glob("*.cxi"):
        with h5py.File(path) as f:
            ids += [x.decode() for x in f["/entry_1/event_id"][:]]
    assert summary["frames"]["outcomes"]["written"] == len(ids) == summary["frames"]["produced"]


def test_a_socket_address_in_use_names_the_setting(run_args):
    import zmq

    taken = zmq.Context.instance().socket(zmq.PULL)
    port = taken.bind_to_random_port("tcp://127.0.0.1")
    try:
        done = run(
            *run_args, "--set", "producer.kind=socket",
            "--set", f"producer.socket.addresses=[{{url: 'tcp://127.0.0.1:{port}'}}]",
        )  # fmt: skip
    finally:
        taken.close()
    assert done.returncode == EXIT_STAGE_FAILED, done.stdout + done.stderr
    assert "producer.socket.addresses" in done.stderr and "Address already in use" in done.stderr
