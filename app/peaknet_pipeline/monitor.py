"""Resource samples over a run (JSON lines): RSS of every member, queue and the coordinator, queue depths,
object store bytes. Enough to show memory stays bounded in a long run."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import ray

from .memory import ObjectStoreUsage

log = logging.getLogger(__name__)


class ResourceSampler:
    """A daemon thread in the driver; one line per `interval_s`, flushed so a killed run keeps its data."""

    def __init__(self, coordinator, queues: dict, path: str, interval_s: float):
        self.problems: list[str] = []  # what went wrong, for the log and the report
        self._coordinator = coordinator
        self._queues = queues  # name -> ShardedQueue
        self._path = Path(path)
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="resource-sampler", daemon=True)

    def __enter__(self) -> ResourceSampler:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _problem(self, what: str, exc: BaseException) -> None:
        message = f"{what}: {type(exc).__name__}: {exc}"
        if message not in self.problems:
            log.warning("resource samples (output.samples): %s", message)
            self.problems.append(message)

    def _loop(self) -> None:
        try:
            store = ObjectStoreUsage()
        except Exception as exc:  # samples go on without object-store numbers, and say so
            self._problem("object store usage unavailable", exc)
            store = None
        t0 = time.monotonic()
        try:
            with self._path.open("w") as out:
                while not self._stop.is_set():
                    try:
                        out.write(json.dumps(self.sample(store, time.monotonic() - t0)) + "\n")
                        out.flush()
                    except ray.exceptions.RayError as exc:  # an actor went away between samples
                        log.debug("resource sample skipped: %s", exc)
                    self._stop.wait(self._interval)
        except Exception as exc:
            self._problem("sampler stopped", exc)

    def sample(self, store: ObjectStoreUsage | None, t: float) -> dict:
        snap = ray.get(self._coordinator.snapshot.remote())
        shards = [s for q in self._queues.values() for s in q.stats()]
        store_bytes, store_objects = store.usage() if store is not None else (None, None)
        return {
            "t_s": round(t, 2),
            "object_store_bytes": store_bytes,
            "object_store_objects": store_objects,
            "rss_bytes": {
                "coordinator": snap["rss_bytes"],
                **{m.member: m.rss_bytes for m in snap["members"] if m.state != "done"},
                **{s.name: s.rss_bytes for s in shards},
            },
            "frames": {m.member: m.frames_out for m in snap["members"]},
            "queue_depth": {s.name: s.depth for s in shards},
            "queue_maxsize": {s.name: s.maxsize for s in shards},
        }
