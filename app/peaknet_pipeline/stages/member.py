"""What every stage actor shares: status reporting, stop signals, the drain rule, lingering."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace

import ray

from ..coordinator import MemberStatus, upstream_of
from ..memory import process_rss
from ..queue import QueueTimeout, ShardedQueue

log = logging.getLogger(__name__)


class StageMember:
    """Bookkeeping for one actor of a stage. Publishes at most every `interval_s`, never per batch."""

    def __init__(self, coordinator: ray.actor.ActorHandle, stage: str, member: str, interval_s: float = 0.5):
        self.coordinator = coordinator
        self.status = MemberStatus(stage=stage, member=member)
        self.local_stop = threading.Event()  # this process is asked to go (Ctrl-C on its driver)
        self._interval = interval_s
        self._last_publish = 0.0
        self._stop_requested = False  # the whole pipeline is asked to stop
        self._stop_seen_at: float | None = None

    @property
    def name(self) -> str:
        return self.status.member

    def publish(self, force: bool = False) -> bool:
        """Send status when due; returns whether a pipeline-wide stop is requested."""
        now = time.monotonic()
        if force or now - self._last_publish >= self._interval:
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

    def upstream_closed(self) -> bool:
        return ray.get(self.coordinator.stage_closed.remote(upstream_of(self.status.stage)))

    def finish(self, final: bool) -> MemberStatus:
        self.status.state = "done"
        self.status.final = final
        self.publish(force=True)
        return self.status

    def settle(self, counts: dict[str, int]) -> None:
        if counts:
            self.coordinator.settle.remote(counts)

    def linger(self, produced: int, timeout_s: float) -> bool:
        """Keep this actor (the owner of its objects) alive until downstream no longer needs them."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if ray.get(self.coordinator.settled.remote(self.name)) >= produced:
                return True
            time.sleep(0.1)
        log.warning("%s: downstream settled fewer frames than produced within %.0fs", self.name, timeout_s)
        return False


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
        records = self._queue.get_batch(max_items, timeout=0 if closed else timeout)
        if not records and closed:
            return None
        return records

    def ended_by_upstream(self) -> bool:
        return not self._member.local_stop.is_set()
