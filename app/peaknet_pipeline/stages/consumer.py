"""What every Q2 consumer (CXI writer, counting sink) shares: its coordinator membership, its input drain and
its stop()."""

from __future__ import annotations

from ..config import PipelineConfig
from .member import InputDrain, StageMember
from .wiring import q2_client


class Q2Consumer:
    """Base of the write-stage actors; a subclass calls _join first and _ready last in its __init__."""

    def _join(self, cfg: PipelineConfig, coordinator, name: str) -> None:
        self._cfg = cfg
        self._member = StageMember(coordinator, "write", name)
        self._drain = InputDrain(self._member, q2_client(cfg), cfg.lifecycle.drain_timeout_s)

    def _ready(self) -> None:
        self._member.publish(force=True)

    def stop(self) -> None:
        self._member.local_stop.set()
