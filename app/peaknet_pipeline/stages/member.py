"""What every stage actor shares: status reporting, stop signals, the drain rule, lingering."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import replace

import ray

from ..coordinator import MemberStatus, upstream_of
from ..memory import process_rss
from ..queue import QueueTimeout, ShardedQueue

log = logging.getLogger(__name__)


class StageMember:
    """Bookkeeping for one actor of a stage. Publishes at most every `interval_s`, never per batch, and
    from a heartbeat thread as well, so a member busy compiling or blocked on a full queue still shows
    it is alive (the coordinator declares a member silent after lifecycle.heartbeat_timeout_s)."""

    def __init__(self, coordinator: ray.actor.ActorHandle, stage: str, member: str, interval_s: float = 0.5):
        self.coordinator = coordinator
        incarnation = ray.get(coordinator.incarnation_of.remote(stage, member))
        self.status = MemberStatus(stage=stage, member=member, incarnation=incarnation)
        self.status.info["pid"] = os.getpid()
        self.local_stop = threading.Event()  # this process is asked to go (Ctrl-C on its driver)
        self._interval = interval_s
        self._last_publish = 0.0
        self._lock = threading.Lock()
        self._stop_requested = False  # the whole pipeline is asked to stop
        self._stop_seen_at: float | None = None
        self._heartbeat = threading.Thread(target=self._beat, name="heartbeat", daemon=True)
        self._heartbeat.start()

    def _beat(self) -> None:
        while not self.status.ended:
            time.sleep(self._interval)
            try:
                self.publish()
            except ray.exceptions.RayError:  # the coordinator is gone: the driver ends the run
                return

    def start_failed(self, exc: BaseException) -> MemberStatus:
        """The actor could not start (a bad setting, a missing file): say why once, for the driver."""
        self.status.state, self.status.error = "failed", f"{type(exc).__name__}: {exc}"
        self.publish(force=True)
        return self.status

    def guard(
        self, setup: Callable[[], None], reword: Callable[[Exception], Exception] | None = None
    ) -> MemberStatus | None:
        """Run what a start depends on (settings, files, sockets, the model); a failure is said once, for the
        driver, and returned for run() to end with. reword: the message naming the setting, where the
        exception's own does not."""
        try:
            setup()
        except Exception as exc:
            return self.start_failed(reword(exc) if reword else exc)
        return None

    @property
    def name(self) -> str:
        return self.status.member

    def publish(self, force: bool = False) -> bool:
        """Send status when due; returns whether a pipeline-wide stop is requested."""
        now = time.monotonic()
        if not (force or now - self._last_publish >= self._interval):
            return self._stop_requested
        with self._lock:  # the heartbeat thread and the stage's own loop both publish
            self._last_publish = now
            self.status.rss_bytes = process_rss()
            snapshot = replace(self.status, failed=dict(self.status.failed), info=dict(self.status.info))
            self._stop_requested = ray.get(self.coordinator.update.remote(snapshot))
            if self._stop_requested and self._stop_seen_at is None:
                self._stop_seen_at = now
        return self._stop_requested

    def drain_expired(self, drain_timeout_s: float) -> bool:
        return self._stop_seen_at is not None and time.monotonic() - self._stop_seen_at > drain_timeout_s

    def put_until_accepted(self, queue: ShardedQueue, record, retry_s: float, drain_timeout_s: float | None) -> bool:
        """Block while the queue is full, keeping status fresh. Gives up (False) only after a stop
        and the drain deadline, and only when drain_timeout_s is given."""
        while True:
            try:
                queue.put(record, timeout=retry_s)
                return True
            except QueueTimeout:
                self.publish()
                if drain_timeout_s is not None and self.drain_expired(drain_timeout_s):
                    return False

    def enqueue(self, queue: ShardedQueue, record, retry_s: float, drain_timeout_s: float | None) -> bool:
        """A producer's put: the record's frames are accepted (the ledger counts them produced), then put,
        blocking while the queue is full. If a stop's drain deadline passes first (only when drain_timeout_s
        is given), they are settled as not_enqueued_at_stop and False is returned."""
        self.produced(record.size)
        if self.put_until_accepted(queue, record, retry_s, drain_timeout_s):
            return True
        self.status.fail("not_enqueued_at_stop", record.size)
        self.settle(record.owners, record.size, "not_enqueued_at_stop")
        return False

    def upstream_closed(self) -> bool:
        return ray.get(self.coordinator.stage_closed.remote(upstream_of(self.status.stage)))

    def finish(self, final: bool) -> MemberStatus:
        self.status.state = "done"
        self.status.final = final
        self.publish(force=True)
        return self.status

    def produced(self, frames: int) -> None:
        """Before frames enter Q1: from here on they are accepted and must end with an outcome."""
        ray.get(self.coordinator.produced.remote(self.name, frames))

    def settle(self, owners: tuple[str, ...], frames: int, outcome: str | None, released: int | None = None) -> None:
        """`frames` frames of a record owned by `owners` need nothing more from anyone: `outcome` says what
        became of them (None: only released, their outcome is counted later, as a writer does on commit).
        released: how many of the owners' frames to release, when more than those given an outcome."""
        released = frames if released is None else released
        if frames or released:
            self.coordinator.settle.remote({owner: released for owner in owners}, frames, outcome)

    def linger(self, produced: int, timeout_s: float) -> bool:
        """Keep this actor (the owner of its objects) alive until downstream no longer needs them: all
        settled, or the write stage, the last to read them, has ended."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            settled = self.coordinator.settled.remote(self.name)
            if ray.get(settled) >= produced or ray.get(self.coordinator.stage_closed.remote("write")):
                return True
            time.sleep(0.1)
        log.warning("%s: downstream settled fewer frames than produced within %.0fs", self.name, timeout_s)
        return False


def fetch_failure(exc: BaseException) -> str:
    """The outcome for frames whose objects could not be fetched: their owner died, or they were lost."""
    if isinstance(exc, ray.exceptions.OwnerDiedError):
        return "owner_died"
    if isinstance(exc, ray.exceptions.ObjectLostError | ray.exceptions.ObjectFetchTimedOutError):
        return "object_lost"
    if isinstance(exc, ray.exceptions.RayTaskError) and isinstance(exc.cause, ray.exceptions.ObjectLostError):
        return fetch_failure(exc.cause)
    return type(exc).__name__


class InputDrain:
    """The end-of-input rule shared by consumers: upstream closed and the queue found empty after that."""

    def __init__(self, member: StageMember, queue: ShardedQueue, drain_timeout_s: float):
        self._member = member
        self._queue = queue
        self._drain_timeout = drain_timeout_s

    def next_records(self, max_items: int, timeout: float) -> list | None:
        """Records to process, [] to poll again, or None when this consumer should end."""
        if self._member.local_stop.is_set():
            return None
        stop = self._member.publish()
        if stop and self._member.drain_expired(self._drain_timeout):
            log.warning("%s: drain deadline passed with input left", self._member.name)
            return None
        records = self._queue.get_batch(max_items, timeout=0)
        if records:
            return records
        # Closed first, then empty: once closed nothing more is put, so empty then means drained.
        closed = self._member.upstream_closed()
        if not closed:
            return self._queue.wait_batch(max_items, timeout)
        return self._queue.get_batch(max_items, timeout=0) or None

    def ended_by_upstream(self) -> bool:
        return not self._member.local_stop.is_set()
