"""Drive one or more stages from this process: start their actors, watch them, stop them cleanly."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time

import ray

from .config import PipelineConfig
from .coordinator import MemberStatus
from .monitor import ResourceSampler
from .progress import Progress
from .report import RunReport, build_report, summarise_queues
from .scheduling import UnplacedWatch, check_cpus
from .stages.launch import STARTERS, Member, run_tag
from .stages.wiring import ensure_shared_actors, q1_client, q2_client, remove_shared_actors

log = logging.getLogger(__name__)


class SignalFlag:
    """SIGINT/SIGTERM set a flag the watch loop reads; the work itself is never interrupted mid-batch."""

    def __init__(self) -> None:
        self.count = 0
        self._previous: dict[int, object] = {}

    def __enter__(self) -> SignalFlag:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: object) -> None:
        self.count += 1

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class StageDriver:
    """`run` drives all stages (a signal stops the whole pipeline); a stage subcommand drives one
    (a signal stops only this process's actors, the rest of the pipeline keeps going)."""

    def __init__(self, cfg: PipelineConfig, stages: tuple[str, ...], command: str, whole_pipeline: bool = False):
        self.cfg = cfg
        self.stages = stages
        self.command = command
        self.whole_pipeline = whole_pipeline

    def execute(self) -> RunReport:
        coordinator = ensure_shared_actors(self.cfg)
        if self.whole_pipeline:
            self._claim_namespace(coordinator)
        if short := check_cpus(self.cfg, self.stages):
            log.warning("%s: %s", self.command, short)
        tag = run_tag()
        members = [m for stage in self.stages for m in STARTERS[stage](self.cfg, coordinator, tag)]
        log.info(
            "%s: started %s", self.command, ", ".join(f"{s} x{sum(m.stage == s for m in members)}" for s in self.stages)
        )
        started = time.monotonic()
        with self._sampler(coordinator):
            statuses, stopped_by = self._watch(coordinator, members)
        wall = time.monotonic() - started
        report = build_report(self.command, statuses, self._queue_summaries(), wall, stopped_by)
        if self.whole_pipeline:
            remove_shared_actors(self.cfg)
        return report

    def _sampler(self, coordinator):
        out = self.cfg.output
        if out.samples is None:
            return contextlib.nullcontext()
        queues = {"Q1": q1_client(self.cfg), "Q2": q2_client(self.cfg)}
        return ResourceSampler(coordinator, queues, out.samples, out.samples_interval_s)

    def _claim_namespace(self, coordinator) -> None:
        snapshot = ray.get(coordinator.snapshot.remote())
        running = [m.member for m in snapshot["members"] if m.state != "done"]
        if running:
            raise RuntimeError(
                f"a pipeline is already running in Ray namespace {self.cfg.ray.namespace!r} "
                f"(members {', '.join(running)}); stop it with `peaknet-pipeline stop` or choose another ray.namespace"
            )
        ray.get(coordinator.forget_members.remote())

    def _watch(self, coordinator, members: list[Member]) -> tuple[list[MemberStatus], str | None]:
        pending = {m.handle.run.remote(): m for m in members}
        done: list[MemberStatus] = []
        progress = Progress(self.cfg.output.progress, self.cfg.output.progress_interval_s)
        unplaced = UnplacedWatch(members, self.cfg.lifecycle.start_timeout_s)
        stopped_by, stop_at = None, None
        deadline = self._run_deadline()
        with SignalFlag() as signals:
            while pending:
                ready, _ = ray.wait(list(pending), timeout=0.25)
                for ref in ready:
                    done.append(self._collect(ref, pending.pop(ref)))
                if signals.count and stopped_by is None:
                    stopped_by, stop_at = "signal", time.monotonic()
                    log.info("%s: stopping, draining for up to %.0fs", self.command, self.cfg.lifecycle.drain_timeout_s)
                    self._ask_to_stop(coordinator, pending.values())
                if stopped_by is None and deadline is not None and time.monotonic() > deadline:
                    stopped_by, stop_at = "max_run_s", time.monotonic()
                    log.info("%s: lifecycle.max_run_s reached, draining", self.command)
                    self._ask_to_stop(coordinator, pending.values())
                if stopped_by is None and ray.get(coordinator.stop_requested.remote()):
                    stopped_by, stop_at = "stop", time.monotonic()
                if stop_at and (signals.count > 1 or self._past_drain(stop_at)):
                    done += self._abandon(coordinator, pending)
                    break
                show = progress.due()
                if show or unplaced.pending():
                    live = self._live_members(coordinator, done)
                    unplaced.check({m.member for m in live})
                    if show:
                        progress.show(live, self._queue_stats())
        progress.close()
        return done, stopped_by

    def _run_deadline(self) -> float | None:
        limit = self.cfg.lifecycle.max_run_s
        return time.monotonic() + limit if self.whole_pipeline and limit else None

    def _past_drain(self, stop_at: float) -> bool:
        # Members enforce the drain deadline themselves; this margin covers their flush and linger.
        return time.monotonic() - stop_at > self.cfg.lifecycle.drain_timeout_s + 30

    def _ask_to_stop(self, coordinator, members) -> None:
        if self.whole_pipeline:
            coordinator.request_stop.remote()  # producers stop, every later stage drains
            return
        for m in members:  # only this process's actors go; the rest of the pipeline keeps running
            m.handle.stop.remote()

    def _collect(self, ref, member: Member) -> MemberStatus:
        try:
            return ray.get(ref)
        except ray.exceptions.RayError as exc:
            log.error("%s %s failed: %s", member.stage, member.name, exc)
            status = MemberStatus(stage=member.stage, member=member.name, state="done")
            status.fail("member_crashed", 0)
            return status

    def _abandon(self, coordinator, pending: dict) -> list[MemberStatus]:
        """Kill members still running at the deadline; keep their last reported counts, so the report
        shows what was lost instead of zeros that would balance."""
        log.warning("%s: drain deadline passed; %d members did not finish", self.command, len(pending))
        last = {m.member: m for m in ray.get(coordinator.snapshot.remote())["members"]}
        out = []
        for member in pending.values():
            ray.kill(member.handle)
            status = last.get(member.name) or MemberStatus(stage=member.stage, member=member.name)
            status.state = "done"
            status.fail("abandoned_at_deadline", 0)
            out.append(status)
        return out

    def _live_members(self, coordinator, done: list[MemberStatus]) -> list[MemberStatus]:
        mine = {m.member for m in done}
        live = [m for m in ray.get(coordinator.snapshot.remote())["members"] if m.member not in mine]
        return done + live

    def _queue_stats(self) -> dict:
        return {"Q1": q1_client(self.cfg).stats(), "Q2": q2_client(self.cfg).stats()}

    def _queue_summaries(self) -> list:
        return [summarise_queues(name, stats) for name, stats in self._queue_stats().items()]
