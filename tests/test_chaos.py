"""kill -9 of each kind of stage actor mid-run, on a real local Ray with real CXI files: the run ends by itself,
no event is written twice, and the report's ledger matches the files on disk event by event."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path

import h5py
import pytest

from peaknet_pipeline.coordinator import attach_coordinator
from peaknet_pipeline.driver import StageDriver
from peaknet_pipeline.report import EXIT_FRAMES_LOST, EXIT_OK, EXIT_STAGE_FAILED

ALL = ("produce", "infer", "write")
RUN_BOUND_S = 150


def chaos_config(cpu_config, out: Path, total: int = 240):
    cfg = cpu_config.model_copy(deep=True)
    cfg.writer.kind, cfg.writer.output_dir, cfg.writer.buffer_size, cfg.writer.min_num_peak = "cxi", str(out), 8, 0
    cfg.producer.total_frames, cfg.producer.push_interval_s = total, 0.03
    cfg.peaks.task_cpus = 0.25
    cfg.lifecycle.stall_timeout_s, cfg.lifecycle.heartbeat_timeout_s = 30, 10
    return cfg


class Background:
    """StageDriver.execute on a thread, so the test can kill actors while it runs."""

    def __init__(self, cfg, stages=ALL):
        self.report = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(cfg, stages), daemon=True)
        self._thread.start()

    def _run(self, cfg, stages) -> None:
        try:
            self.report = StageDriver(cfg, stages, "run", whole_pipeline=True).execute()
        except BaseException as exc:
            self.error = exc

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"the run did not end within {timeout}s"
        if self.error is not None:
            raise self.error


def member_once(ray, namespace: str, stage: str, ready, timeout: float = 60.0):
    """The first member of `stage` for which ready(status) holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            members = ray.get(attach_coordinator(namespace).members.remote())
        except LookupError:
            members = []
        for m in members:
            if m.stage == stage and m.state == "running" and ready(m):
                return m
        time.sleep(0.05)
    raise AssertionError(f"no {stage} member got there within {timeout}s")


def events_on_disk(out: Path) -> list[str]:
    ids = []
    for path in sorted(out.glob("*.cxi")):
        with h5py.File(path) as f:
            ids += [x.decode() for x in f["/entry_1/event_id"][:]]
    return ids


def check_ledger_matches_disk(report, out: Path) -> list[str]:
    ids = events_on_disk(out)
    assert len(ids) == len(set(ids)), "an event was written twice"
    assert not list(out.glob(".*.tmp")), "a partial file was left"
    frames = report.frames
    assert frames.outcomes.get("written", 0) == len(ids)
    assert sum(frames.outcomes.values()) + frames.lost_unsettled == frames.produced
    expected = EXIT_STAGE_FAILED if report.error else EXIT_FRAMES_LOST if frames.lost else EXIT_OK
    assert report.exit_code == expected
    return ids


@pytest.mark.parametrize("stage", ["infer", "write"])
def test_kill_9_of_a_restartable_actor_restarts_it_and_the_run_completes(ray_session, cpu_config, tmp_path, stage):
    cfg = chaos_config(cpu_config, tmp_path)
    run = Background(cfg)
    victim = member_once(ray_session, cfg.ray.namespace, stage, lambda m: m.frames_in >= 40)
    os.kill(victim.info["pid"], signal.SIGKILL)
    run.join(RUN_BOUND_S)
    report = run.report
    ids = check_ledger_matches_disk(report, tmp_path)
    assert report.error is None and report.frames.produced == 240
    restarted = [m for m in report.stages[stage].info.values() if m.get("pid") != victim.info["pid"]]
    assert restarted, "the restarted member reported from a new process"
    # Frames after the restart were processed: more were written than the dead process had taken in.
    assert len(ids) > victim.frames_in
    assert report.frames.lost < 240 / 2


def worker_log(ray, pid: int) -> str:
    """What the Ray worker process `pid` wrote to stderr (its log file in the session's logs folder)."""
    logs = Path(ray._private.worker._global_node.get_logs_dir_path())
    return "".join(p.read_text() for p in logs.glob(f"worker-*-{pid}.err"))


def test_kill_9_of_a_producer_counts_its_frames_and_the_others_go_on(ray_session, cpu_config, tmp_path):
    cfg = chaos_config(cpu_config, tmp_path)
    cfg.ray.prefault_store = True  # a producer killed with its store mapping thread running
    run = Background(cfg)
    victim = member_once(ray_session, cfg.ray.namespace, "produce", lambda m: m.frames_out >= 24)
    os.kill(victim.info["pid"], signal.SIGKILL)
    run.join(RUN_BOUND_S)
    report = run.report
    ids = check_ledger_matches_disk(report, tmp_path)
    survivors = {i.split(":")[0] for i in ids} - {victim.member}
    assert len(survivors) == 1  # the other producer's frames were written
    assert sum(i.split(":")[0] != victim.member for i in ids) == 120
    assert report.stages["produce"].members == 2 and report.error is None
    pids = [i.get("pid") for i in report.stages["produce"].info.values()]
    survivor = next(p for p in pids if p not in (None, victim.info["pid"]))
    # The producer's own INFO line, in the CLI's format: stage actors configure logging at output.log_level.
    assert " INFO peaknet_pipeline.store_mapping: mapped " in worker_log(ray_session, survivor)


def test_a_hung_writer_stalls_the_run_which_ends_naming_the_stage(ray_session, cpu_config, tmp_path):
    """SIGSTOP: the process is alive but nothing moves (a hung NFS mount, a deadlock)."""
    cfg = chaos_config(cpu_config, tmp_path)
    cfg.lifecycle.stall_timeout_s, cfg.lifecycle.heartbeat_timeout_s = 4, 120
    run = Background(cfg)
    victim = member_once(ray_session, cfg.ray.namespace, "write", lambda m: m.frames_in >= 16)
    os.kill(victim.info["pid"], signal.SIGSTOP)
    try:
        run.join(RUN_BOUND_S)
    finally:
        # The run killed it; should the stopped process outlive that here, it must not wake up and write a
        # file after the run resolved its intents (a writer that does is cleaned up by the next one's start).
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim.info["pid"], signal.SIGKILL)
    report = run.report
    assert report.stopped_by == "stalled" and report.exit_code == EXIT_STAGE_FAILED
    assert "stall_timeout_s=4" in report.error and "stalled stage: write" in report.error
    check_ledger_matches_disk(report, tmp_path)
