"""Connect to Ray: an existing cluster when one is named, else an embedded local one."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import threading

import ray

from .config import PipelineConfig


def connect(cfg: PipelineConfig, embedded: bool, cpus_needed: float = 1.0) -> None:
    """embedded=True (run, bench): start a local Ray unless an address is configured.
    embedded=False (stage subcommands): join the running cluster the stages share."""
    address = cfg.ray.address or os.environ.get("RAY_ADDRESS")
    common = dict(namespace=cfg.ray.namespace, logging_level=logging.WARNING, log_to_driver=True)
    if address or not embedded:
        ray.init(address=address or "auto", **common)
        return
    num_cpus = cfg.ray.num_cpus or max(os.cpu_count() or 1, math.ceil(cpus_needed))
    store = cfg.ray.object_store_memory_mb * 2**20 if cfg.ray.object_store_memory_mb else None
    with sigterm_blocked():
        ray.init(num_cpus=num_cpus, object_store_memory=store, include_dashboard=False, **common)


@contextlib.contextmanager
def sigterm_blocked():
    """The embedded Ray's processes inherit SIGTERM blocked (as Ray already blocks SIGINT for them), so a
    SIGTERM to the whole process group (timeout, SLURM, a container stop) reaches only this driver: it
    drains, writes its report, then takes the embedded Ray down itself. They still die with the driver."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
