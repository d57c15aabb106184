"""Fetch the next records, and their payload, on a thread while the current batch is being worked on."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

from .member import InputDrain

_END = object()


class Prefetcher:
    """Iterates (record, payload-or-exception) pairs; a bounded look-ahead so memory stays bounded.
    While the input is idle it yields (None, None) every poll interval, so the consumer can finish
    work in progress instead of holding it until the next record comes."""

    def __init__(self, drain: InputDrain, fetch: Callable[[Any], Any], depth: int, poll_timeout_s: float):
        self._drain = drain
        self._fetch = fetch
        self._poll = poll_timeout_s
        self._items: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._thread = threading.Thread(target=self._loop, name="prefetch", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        try:
            while (records := self._drain.next_records(1, self._poll)) is not None:
                if not records and self._items.empty():
                    self._items.put((None, None))
                for record in records:
                    try:
                        payload = self._fetch(record)
                    except Exception as exc:  # reported per record; the stage goes on
                        payload = exc
                    self._items.put((record, payload))
        except Exception as exc:  # the queue or coordinator went away: end the stage, say why
            self._items.put((None, exc))
        finally:
            self._items.put(_END)

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        while (item := self._items.get()) is not _END:
            if item[0] is None and item[1] is not None:
                raise item[1]
            yield item


class BackgroundPutter:
    """Hands finished work to a thread that does the slow part (object store put, queue RPC) in order.
    Bounded: when the downstream queue pushes back, submit() blocks too."""

    def __init__(self, put: Callable[[Any], None], depth: int):
        self._put = put
        self._items: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="putter", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while (item := self._items.get()) is not _END:
            try:
                self._put(item)
            except BaseException as exc:
                self._error = exc

    def submit(self, item: Any) -> None:
        if self._error is not None:
            raise self._error
        self._items.put(item)

    def close(self) -> None:
        """Wait until everything submitted is out."""
        self._items.put(_END)
        self._thread.join()
        if self._error is not None:
            raise self._error
