"""`peaknet-pipeline push`: send what lclstreamer sends, with planted peaks, for tests, demos and load."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from ..config import PipelineConfig
from ..synthetic import FrameSynthesizer, require_frame_shape
from .decode import HC_EV_ANGSTROM, encode_message
from .sockets import PushSocket

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PushPlan:
    url: str
    transport: str = "zmq"
    role: str = "dial"  # lclstreamer connects; the old nng pusher listened
    flavour: str = "hdf5"
    compress: bool = False
    batches: int = 10
    rate_hz: float = 0.0  # messages per second; 0: as fast as the receiver takes them
    linger_s: float = 1.0


def push(cfg: PipelineConfig, plan: PushPlan) -> int:
    """Sends plan.batches messages of data.batch_size frames; returns the number of frames sent."""
    synth = FrameSynthesizer(cfg.producer, require_frame_shape(cfg), cfg.data.dtype, cfg.producer.seed)
    sock = PushSocket(plan.transport, plan.url, plan.role)
    wavelength = HC_EV_ANGSTROM / cfg.producer.photon_energy_eV
    sent = 0
    try:
        for _ in range(plan.batches):
            t0 = time.monotonic()
            frames = synth.batch(cfg.data.batch_size).frames
            stamps = np.full(len(frames), time.time())
            wavelengths = np.full(len(frames), wavelength)
            sock.send(encode_message(plan.flavour, frames, stamps, wavelengths, plan.compress))
            sent += len(frames)
            if plan.rate_hz:
                time.sleep(max(0.0, 1.0 / plan.rate_hz - (time.monotonic() - t0)))
        time.sleep(plan.linger_s)  # sockets discard queued messages on close
    finally:
        sock.close()
    log.info(
        "push: sent %d frames in %d messages to %s (%s, %s)", sent, plan.batches, plan.url, plan.transport, plan.flavour
    )
    return sent
