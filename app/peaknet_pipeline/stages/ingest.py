"""Socket producer stage: lclstreamer messages -> Q1.

A thread drains the socket promptly into a bounded local buffer (lclstreamer's PUSH socket discards what
is still queued when it exits); the actor moves batches from that buffer into Q1, and while Q1 is full
the buffer fills and the thread stops receiving, so the sender's own high-water mark holds it back.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

import numpy as np
import ray

from .. import logs
from ..config import PipelineConfig, SocketAddress
from ..config_sources import ConfigError
from ..coordinator import MemberStatus
from ..ingest.decode import MalformedMessage, decode_message
from ..ingest.sockets import PullSocket
from ..kinds import ProducerKind
from ..records import FrameBatch, FrameMeta
from ..store_mapping import Putter
from .member import StageMember
from .ratelimit import RateLimitedLog
from .wiring import q1_client

log = logging.getLogger(__name__)


@ray.remote(max_concurrency=2)
class SocketProducer:
    def __init__(self, cfg: PipelineConfig, coordinator, name: str, address: SocketAddress):
        logs.configure(cfg.output.log_level)
        self._cfg = cfg
        self._member = StageMember(coordinator, "produce", name)
        self._putter = Putter(cfg.ray.prefault_store)
        sock_cfg = cfg.producer.socket

        def bind() -> None:  # address in use, a malformed URL
            self._sock = PullSocket(sock_cfg.transport, address.url, address.role, queued=sock_cfg.buffer_batches)

        def named(exc: Exception) -> Exception:
            return OSError(f"producer.socket.addresses url {address.url!r} ({address.role}): {exc}")

        self._failed: MemberStatus | None = self._member.guard(bind, named)
        if self._failed is not None:
            return
        self._leftover: list[bytes] = []  # received while stopping, with the buffer full: forwarded at the end
        self._buffer: queue.Queue = queue.Queue(maxsize=cfg.producer.socket.buffer_batches)
        self._names = cfg.producer.socket.names
        self._dtype = np.dtype(cfg.data.dtype)
        self._q1 = q1_client(cfg)
        self._errors = RateLimitedLog(log, every_s=10.0)
        self._buffer_high_water = 0
        self._receiving = threading.Event()
        self._receiving.set()
        self._receiver = threading.Thread(target=self._receive, name="receiver", daemon=True)
        self._receiver.start()
        self._member.status.info.update(url=address.url, role=address.role)
        self._member.publish(force=True)

    def stop(self) -> None:
        self._member.local_stop.set()

    def _receive(self) -> None:
        while self._receiving.is_set():
            payload = self._sock.recv()
            while payload is not None:
                try:  # waits while the buffer is full: backpressure to the sender
                    self._buffer.put(payload, timeout=0.2)
                    self._buffer_high_water = max(self._buffer_high_water, self._buffer.qsize())
                    payload = None
                except queue.Full:
                    if not self._receiving.is_set():
                        self._leftover.append(payload)
                        payload = None

    def run(self) -> MemberStatus:
        if self._failed is not None:
            return self._failed
        member, sock_cfg = self._member, self._cfg.producer.socket
        member.status.state = "running"
        messages, last_data, seq, finished = 0, time.monotonic(), 0, False
        while not (member.local_stop.is_set() or member.publish()):
            try:
                payload = self._buffer.get(timeout=self._cfg.queues.poll_timeout_s)
            except queue.Empty:
                if sock_cfg.idle_timeout_s and time.monotonic() - last_data > sock_cfg.idle_timeout_s:
                    finished = True
                    break
                continue
            messages += 1
            last_data = time.monotonic()
            seq += self._forward(payload, seq)
            if sock_cfg.max_messages and messages >= sock_cfg.max_messages:
                finished = True
                break
        self._receiving.clear()
        self._receiver.join()  # the receive thread polls with a timeout; closing under its recv() aborts libzmq
        seq = self._forward_rest(seq)
        member.status.info.update(messages=messages, buffer_high_water=self._buffer_high_water)
        member.finish(final=finished and not self._cfg.lifecycle.service)
        member.linger(member.status.frames_out, self._cfg.producer.linger_timeout_s)
        self._sock.close()
        return member.status

    def _forward_rest(self, seq: int) -> int:
        """Messages already received are accepted: forward them, whatever ended the stream."""
        while True:
            try:
                payload = self._buffer.get_nowait()
            except queue.Empty:
                break
            seq += self._forward(payload, seq)
        for payload in self._leftover:
            seq += self._forward(payload, seq)
        self._leftover.clear()
        return seq

    def _forward(self, payload: bytes, seq: int) -> int:
        """Decode and queue one message; returns the number of frames it carried (0 if malformed)."""
        try:
            batch = decode_message(payload, self._names, self._dtype)
            shape = self._cfg.data.frame_shape
            if shape is not None and tuple(batch.frames.shape[1:]) != tuple(shape):
                raise MalformedMessage("shape", f"frames {batch.frames.shape[1:]}, expected {tuple(shape)}")
        except MalformedMessage as exc:
            info = self._member.status.info
            info["malformed"] = info.get("malformed", 0) + 1
            by_reason = info.setdefault("malformed_by_reason", {})
            by_reason[exc.reason] = by_reason.get(exc.reason, 0) + 1
            self._errors.warning(exc.reason, "%s: malformed message skipped: %s", self._member.name, exc)
            return 0
        b = batch.frames.shape[0]
        meta = [
            FrameMeta(f"{self._member.name}:{seq + i}", float(batch.timestamps[i]), float(batch.photon_energy_eV[i]))
            for i in range(b)
        ]
        record = FrameBatch(f"{self._member.name}:b{seq}", (self._member.name,), self._putter.put(batch.frames), meta)
        # Received data was accepted from the sender: never give it up, even past a drain deadline.
        self._member.enqueue(self._q1, record, self._cfg.queues.poll_timeout_s * 5, None)
        self._member.status.frames_out += b
        self._member.status.batches += 1
        return b


def plan(cfg: PipelineConfig) -> list[tuple]:
    """One actor per address (producer.num_producers does not apply)."""
    if not cfg.producer.socket.addresses:
        raise ConfigError("producer.kind=socket needs producer.socket.addresses, e.g. [{url: 'tcp://0.0.0.0:5555'}]")
    return [(address,) for address in cfg.producer.socket.addresses]


KIND = ProducerKind(SocketProducer, plan, external=True)
