"""Drive one or more stages from this process: start their actors, watch them, stop them cleanly."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import ray

from .config import PipelineConfig
from .coordinator import MemberStatus
from .kinds import PRODUCERS, kind_of
from .ledger import resolve_on_disk
from .monitor import ResourceSampler
from .namespace import claim_namespace, release_namespace
from .output.cxi import remove_stale_temporaries
from .progress import Progress
from .report import RunReport, build_report, summarise_queues
from .scheduling import UnplacedWatch, check_cpus, check_store, node_resources
from .stages.launch import STARTERS, Member, run_tag
from .stages.wiring import ensure_shared_actors, q1_client, q2_client, remove_shared_actors
from .stall import StallWatch, stalled_stage
from .supervise import RunAborted, Supervisor

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
        self.driver_id = f"{command}-{uuid.uuid4().hex[:8]}"
        self._said_ready = False

    def execute(self) -> RunReport:
        coordinator = ensure_shared_actors(self.cfg)
        anchor = claim_namespace(self.cfg, coordinator, self.driver_id) if self.whole_pipeline else None
        try:
            return self._execute(coordinator)
        finally:
            if anchor is not None:
                remove_shared_actors(self.cfg)
                release_namespace(anchor)

    def _execute(self, coordinator) -> RunReport:
        nodes = node_resources()  # one look at the cluster for both checks
        for short in (check_cpus(self.cfg, self.stages, nodes), check_store(self.cfg, nodes)):
            if short:
                log.warning("%s: %s", self.command, short)
        tag = run_tag()
        members = [m for stage in self.stages for m in STARTERS[stage](self.cfg, coordinator, tag)]
        log.info(
            "%s: started %s", self.command, ", ".join(f"{s} x{sum(m.stage == s for m in members)}" for s in self.stages)
        )
        started = time.monotonic()
        sampler = self._sampler(coordinator)
        with sampler:
            outcome = self._watch(coordinator, members)
        wall = time.monotonic() - started
        self._resolve_files(coordinator, [m.name for m in members if m.stage == "write"])
        outcome.statuses = self._with_earlier_incarnations(coordinator, outcome.statuses)
        ledger = ray.get(coordinator.ledger_summary.remote()) if self.whole_pipeline else None
        report = build_report(self.command, outcome.statuses, self._queue_summaries(), wall, outcome.stopped_by, ledger)
        report.error = outcome.error
        report.warnings += getattr(sampler, "problems", [])
        return report

    def _sampler(self, coordinator):
        out = self.cfg.output
        if out.samples is None:
            return contextlib.nullcontext()
        queues = {"Q1": q1_client(self.cfg), "Q2": q2_client(self.cfg)}
        return ResourceSampler(coordinator, queues, out.samples, out.samples_interval_s)

    def _watch(self, coordinator, members: list[Member]) -> WatchOutcome:
        pending = {m.handle.run.remote(): m for m in members}
        supervisor = Supervisor(coordinator, self.cfg.lifecycle.max_restarts, members)
        out = WatchOutcome()
        progress = Progress(self.cfg.output.progress, self.cfg.output.progress_interval_s)
        unplaced = UnplacedWatch(members, self.cfg.lifecycle.start_timeout_s)
        stall = StallWatch(self.cfg.lifecycle.stall_timeout_s)
        stop_at = None
        deadline = self._run_deadline()
        with SignalFlag() as signals:
            try:
                while pending:
                    ready, _ = ray.wait(list(pending), timeout=0.25)
                    self._take_ended(ready, pending, supervisor, out)
                    if out.stopped_by is None and (cause := self._stop_cause(signals, deadline, coordinator)):
                        out.stopped_by, stop_at = cause, time.monotonic()
                        self._ask_to_stop(coordinator, pending.values(), cause)
                    if stop_at and (signals.count > 1 or self._past_drain(stop_at)):
                        out.statuses += self._abandon(coordinator, pending, "abandoned_at_deadline")
                        break
                    self._check_in(coordinator, out.statuses, members, progress, unplaced, stall)
            except RunAborted as exc:
                log.error("%s: ending the run (%s); the report says why", self.command, exc.reason)
                out.stopped_by, out.error = exc.reason, str(exc)
                out.statuses += self._abandon(coordinator, pending, exc.reason)
        progress.close()
        return out

    def _check_in(self, coordinator, done, members, progress, unplaced, stall) -> None:
        """Once per loop: show progress, look for stalls and unplaced actors."""
        live = self._live_members(coordinator, done)
        ledger = ray.get(coordinator.ledger_summary.remote())
        if stall.expired(live, ledger, len(members)) and self._work_waiting(live):
            depths = {name: sum(s.depth for s in stats) for name, stats in self._queue_stats().items()}
            stage = stalled_stage(depths)
            raise RunAborted(
                "stalled",
                f"nothing moved for lifecycle.stall_timeout_s={stall.timeout_s:g}s; stalled stage: {stage} "
                f"(queue depths {depths})",
            )
        if unplaced.pending():
            unplaced.check({m.member for m in live})
        if not self._said_ready and len(live) >= len(members) and all(m.state != "starting" for m in live):
            self._said_ready = True
            urls = [m.info["url"] for m in live if m.stage == "produce" and "url" in m.info]
            log.info(
                "%s: ready: every stage is running%s", self.command, f"; listening on {', '.join(urls)}" if urls else ""
            )
        if progress.due():
            progress.show(live, self._queue_stats())

    def _work_waiting(self, live: list[MemberStatus]) -> bool:
        """Frames are waiting somewhere; an idle service or a socket with no sender is not a stall."""
        if any(sum(s.depth for s in stats) for stats in self._queue_stats().values()):
            return True
        producers_running = any(m.stage == "produce" and not m.ended for m in live)
        return self.whole_pipeline and not kind_of(PRODUCERS, self.cfg.producer.kind).external and producers_running

    def _run_deadline(self) -> float | None:
        limit = self.cfg.lifecycle.max_run_s
        return time.monotonic() + limit if self.whole_pipeline and limit else None

    def _past_drain(self, stop_at: float) -> bool:
        # Members enforce the drain deadline themselves; this margin covers their flush and linger.
        return time.monotonic() - stop_at > self.cfg.lifecycle.drain_timeout_s + 30

    @staticmethod
    def _take_ended(ready: list, pending: dict, supervisor: Supervisor, out: WatchOutcome) -> None:
        """Keep the statuses of members that finished; call run() again on those Ray restarted."""
        for ref in ready:
            member = pending.pop(ref)
            ended = supervisor.ended(ref, member)
            if ended.restarted:
                pending[member.handle.run.remote()] = member
            else:
                out.statuses.append(ended.status)

    def _stop_cause(self, signals: SignalFlag, deadline: float | None, coordinator) -> str | None:
        """Why the stages should stop now, if they should."""
        if signals.count:
            return "signal"
        if deadline is not None and time.monotonic() > deadline:
            return "max_run_s"
        if ray.get(coordinator.stop_requested.remote()):
            return "stop"
        return None

    def _ask_to_stop(self, coordinator, members, cause: str) -> None:
        if cause == "stop":
            return  # `peaknet-pipeline stop` already told the coordinator; every member reads it there
        log.info("%s: stopping (%s), draining for up to %.0fs", self.command, cause, self.cfg.lifecycle.drain_timeout_s)
        if self.whole_pipeline:
            coordinator.request_stop.remote()  # producers stop, every later stage drains
            return
        for m in members:  # only this process's actors go; the rest of the pipeline keeps running
            m.handle.stop.remote()

    def _abandon(self, coordinator, pending: dict, reason: str) -> list[MemberStatus]:
        """Kill members still running; keep their last reported counts, so the report shows what they
        did, and the ledger counts the frames they held as lost."""
        if pending:
            log.warning("%s: ending %d members that did not finish (%s)", self.command, len(pending), reason)
        last = {m.member: m for m in ray.get(coordinator.members.remote())}
        for member in pending.values():
            ray.kill(member.handle, no_restart=True)
        # Killing is asynchronous: wait for the processes to be gone before anyone looks at their files.
        if pending:
            ray.wait(list(pending), num_returns=len(pending), timeout=15)
        out = []
        for member in pending.values():
            status = last.get(member.name) or MemberStatus(stage=member.stage, member=member.name)
            status.state = "done" if status.state != "failed" else "failed"
            status.info["ended_by"] = reason
            out.append(status)
        return out

    def _with_earlier_incarnations(self, coordinator, statuses: list[MemberStatus]) -> list[MemberStatus]:
        """A restarted member's run() returns its last process's counts; the coordinator has them all."""
        merged = {m.member: m for m in ray.get(coordinator.members.remote())}
        return [merged[s.member] if s.member in merged and merged[s.member].incarnation else s for s in statuses]

    def _resolve_files(self, coordinator, writers: list[str]) -> None:
        """Files announced by writers that died before saying whether the rename happened: look on disk,
        where the driver sees the output directory (a laptop, a shared volume). Then the files this run's
        writers were still filling when they died or were ended: partial, and no process of theirs is left."""
        if "write" not in self.stages or not Path(self.cfg.writer.output_dir).is_dir():
            return
        if intents := ray.get(coordinator.pending_intents.remote()):
            # Its commits and drops reach the coordinator before the caller's ledger_summary (call order).
            resolve_on_disk(coordinator, intents)
        for name in writers:
            if partial := remove_stale_temporaries(self.cfg.writer.output_dir, name):
                log.warning("%s: removed %d partial file(s) of %s", self.command, len(partial), name)

    def _live_members(self, coordinator, done: list[MemberStatus]) -> list[MemberStatus]:
        mine = {m.member for m in done}
        live = [m for m in ray.get(coordinator.members.remote()) if m.member not in mine]
        return done + live

    def _queue_stats(self) -> dict:
        return {"Q1": q1_client(self.cfg).stats(), "Q2": q2_client(self.cfg).stats()}

    def _queue_summaries(self) -> list:
        return [summarise_queues(name, stats) for name, stats in self._queue_stats().items()]


@dataclass(slots=True)
class WatchOutcome:
    statuses: list[MemberStatus] = field(default_factory=list)
    stopped_by: str | None = None
    error: str | None = None
