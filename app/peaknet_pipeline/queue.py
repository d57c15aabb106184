"""Sharded queue of named, detached Ray actors: the library API behind Q1 and Q2.

Any package can use it with the same names and configuration as the pipeline::

    q = ShardedQueue.create("peaknet-q1", num_shards=2, maxsize=16, namespace="peaknet")
    q.put(record)                      # blocks while every shard is full (backpressure, no drop)
    other = ShardedQueue.attach("peaknet-q1", num_shards=2, namespace="peaknet")  # another driver
    records = other.get_batch(8, timeout=1.0)

Records should hold ObjectRefs rather than large arrays: a shard is one Python process and every
value put by value is copied through it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import ray

from .memory import process_rss


@dataclass(frozen=True, slots=True)
class ShardStats:
    name: str
    depth: int
    high_water: int
    maxsize: int
    puts: int
    gets: int
    rss_bytes: int = 0  # of the shard's process, to show memory stays bounded
    calls: int = 0  # puts and gets asked of it, whether or not they moved a record
    cpu_s: float = 0.0  # of the shard's process, all its threads


@ray.remote(num_cpus=0)
class QueueShard:
    """One bounded FIFO. Async, so blocked puts and gets wait without holding a thread."""

    def __init__(self, name: str, maxsize: int):
        self._name = name
        self._queue: asyncio.Queue = asyncio.Queue(maxsize)
        self._high_water = 0
        self._puts = 0
        self._gets = 0
        self._calls = 0

    async def put_batch(self, items: list[Any], timeout: float) -> int:
        """Append items in order; wait up to `timeout` for space. Returns how many were accepted."""
        self._calls += 1
        deadline = time.monotonic() + timeout
        accepted = 0
        for item in items:
            if self._queue.full():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    await asyncio.wait_for(self._queue.put(item), remaining)
                except asyncio.TimeoutError:
                    break
            else:
                self._queue.put_nowait(item)
            accepted += 1
        self._puts += accepted
        self._high_water = max(self._high_water, self._queue.qsize())
        return accepted

    async def get_batch(self, max_items: int, timeout: float) -> list[Any]:
        """Up to max_items; waits up to `timeout` for the first one only."""
        self._calls += 1
        items: list[Any] = []
        if self._queue.empty() and timeout > 0:
            try:
                items.append(await asyncio.wait_for(self._queue.get(), timeout))
            except asyncio.TimeoutError:
                return items
        while len(items) < max_items and not self._queue.empty():
            items.append(self._queue.get_nowait())
        self._gets += len(items)
        return items

    async def stats(self) -> ShardStats:
        return ShardStats(
            self._name,
            self._queue.qsize(),
            self._high_water,
            self._queue.maxsize,
            self._puts,
            self._gets,
            process_rss(),
            self._calls,
            time.process_time(),
        )


class QueueTimeout(TimeoutError):
    pass


class ShardedQueue:
    """Thin client over the shards; cheap to create in any driver, actor or task."""

    def __init__(self, name: str, shards: list[ray.actor.ActorHandle], poll_timeout_s: float = 0.2):
        self.name = name
        self._shards = shards
        self._poll = poll_timeout_s
        self._put_cursor = 0
        self._get_cursor = 0

    @staticmethod
    def shard_name(name: str, index: int) -> str:
        return f"{name}-{index}"

    @classmethod
    def create(cls, name: str, num_shards: int, maxsize: int, namespace: str, **kw: Any) -> ShardedQueue:
        """Create the shards, or attach to them where they already exist (a second `infer` job)."""
        shards = [
            QueueShard.options(
                name=cls.shard_name(name, i), namespace=namespace, lifetime="detached", get_if_exists=True
            ).remote(cls.shard_name(name, i), maxsize)
            for i in range(num_shards)
        ]
        return cls(name, shards, **kw)

    @classmethod
    def attach(cls, name: str, num_shards: int, namespace: str, **kw: Any) -> ShardedQueue:
        shards = []
        for i in range(num_shards):
            try:
                shards.append(ray.get_actor(cls.shard_name(name, i), namespace=namespace))
            except ValueError:
                raise LookupError(
                    f"queue shard {cls.shard_name(name, i)!r} not found in Ray namespace {namespace!r}; "
                    "start the pipeline (or the stage that creates the queue) first, and check "
                    "ray.namespace and queues.num_shards match"
                ) from None
        return cls(name, shards, **kw)

    @property
    def num_shards(self) -> int:
        return len(self._shards)

    def put(self, record: Any, timeout: float | None = None) -> None:
        self.put_batch([record], timeout)

    def put_batch(self, records: list[Any], timeout: float | None = None) -> None:
        """Put every record or raise QueueTimeout; records not yet accepted are never dropped silently."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pending = list(records)
        while pending:
            pending = pending[self._offer_round(pending) :]
            if pending and deadline is not None and time.monotonic() >= deadline:
                raise QueueTimeout(f"{self.name}: {len(pending)} records not accepted within {timeout}s")

    def _offer_round(self, pending: list[Any]) -> int:
        """Offer to the next shard, waiting there up to the poll interval for room. Returns how many it took.
        Not a sweep of every shard without waiting: each offer carries the records (and the borrowing of
        their refs) to the shard, so a full queue would cost every producer a round of RPCs per record.
        Consumers take from every shard in turn, so a full shard makes room as soon as the others would."""
        return ray.get(self._next_put_shard().put_batch.remote(pending, self._poll))

    def _next_put_shard(self) -> ray.actor.ActorHandle:
        shard = self._shards[self._put_cursor % self.num_shards]
        self._put_cursor += 1
        return shard

    def get_batch(self, max_items: int, timeout: float | None = None) -> list[Any]:
        """Up to max_items records; an empty list when nothing arrived within timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            for _ in range(self.num_shards):
                items = ray.get(self._next_get_shard().get_batch.remote(max_items, 0.0))
                if items:
                    return items
            wait = self._poll if deadline is None else min(self._poll, deadline - time.monotonic())
            if wait <= 0:
                return []
            if items := self.wait_batch(max_items, wait):
                return items

    def wait_batch(self, max_items: int, timeout: float) -> list[Any]:
        """Up to max_items from the next shard only, waiting up to `timeout`: for a caller whose sweep
        (get_batch with timeout 0) just found every shard empty."""
        return ray.get(self._next_get_shard().get_batch.remote(max_items, timeout))

    def get(self, timeout: float | None = None) -> Any | None:
        items = self.get_batch(1, timeout)
        return items[0] if items else None

    def _next_get_shard(self) -> ray.actor.ActorHandle:
        shard = self._shards[self._get_cursor % self.num_shards]
        self._get_cursor += 1
        return shard

    def stats(self) -> list[ShardStats]:
        return ray.get([s.stats.remote() for s in self._shards])

    def depth(self) -> int:
        return sum(s.depth for s in self.stats())

    def destroy(self) -> None:
        for shard in self._shards:
            ray.kill(shard, no_restart=True)
