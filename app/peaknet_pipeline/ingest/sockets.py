"""One PULL or PUSH socket on either transport, listening (bind) or dialling (connect).

A dialling socket keeps retrying until the other side appears; a listening one waits. Neither is an error.
"""

from __future__ import annotations


def _attach(sock, transport: str, url: str, role: str) -> None:
    if transport == "nng":
        if role == "listen":
            sock.listen(url)
        else:
            sock.dial(url, block=False)  # nng redials in the background
    else:
        (sock.bind if role == "listen" else sock.connect)(url)


class PullSocket:
    def __init__(self, transport: str, url: str, role: str, recv_timeout_ms: int = 200, queued: int = 16):
        """queued: messages the socket library may hold beyond ours; bounded so backpressure reaches
        the sender instead of piling up in this process."""
        self.transport, self.url, self.role = transport, url, role
        if transport == "nng":
            import pynng

            self._sock = pynng.Pull0(recv_timeout=recv_timeout_ms, recv_buffer_size=queued)
            self._timeout = pynng.Timeout
        else:
            import zmq

            self._sock = zmq.Context.instance().socket(zmq.PULL)
            self._sock.setsockopt(zmq.RCVHWM, queued)
            self._sock.setsockopt(zmq.RCVTIMEO, recv_timeout_ms)
            self._sock.setsockopt(zmq.LINGER, 0)
            self._timeout = zmq.Again
        _attach(self._sock, transport, url, role)

    def recv(self) -> bytes | None:
        """One message, or None when nothing came within the receive timeout."""
        try:
            return self._sock.recv()
        except self._timeout:
            return None

    def close(self) -> None:
        self._sock.close()


class PushSocket:
    """The sender side, as lclstreamer uses it (zmq PUSH connects; the old nng pusher listened)."""

    def __init__(self, transport: str, url: str, role: str):
        if transport == "nng":
            import pynng

            self._sock = pynng.Push0()
        else:
            import zmq

            self._sock = zmq.Context.instance().socket(zmq.PUSH)
            self._sock.setsockopt(zmq.SNDHWM, 5)
        _attach(self._sock, transport, url, role)

    def send(self, payload: bytes) -> None:
        self._sock.send(payload)

    def close(self) -> None:
        self._sock.close()
