"""One driving `run` per Ray namespace: an atomic claim in the coordinator, and a driver anchor to tell a
live holder from the leftovers of a killed one.

The anchor is a small named actor that the driver owns and that is not detached, so Ray removes it when
the driver's process dies. A claim whose anchor is gone is stale: the next run takes it over (compare and
swap, so of two runs starting at once exactly one wins) and starts the namespace from a clean slate.
"""

from __future__ import annotations

import logging

import ray

from .config import PipelineConfig
from .stages.wiring import ensure_shared_actors, remove_shared_actors

log = logging.getLogger(__name__)


@ray.remote(num_cpus=0)
class DriverAnchor:
    def ping(self) -> bool:
        return True


def anchor_name(driver: str) -> str:
    return f"peaknet-driver-{driver}"


def driver_alive(driver: str, namespace: str) -> bool:
    try:
        anchor = ray.get_actor(anchor_name(driver), namespace=namespace)
        return ray.get(anchor.ping.remote(), timeout=10)
    except (ValueError, ray.exceptions.RayError):
        return False


def claim_namespace(cfg: PipelineConfig, coordinator, driver: str) -> ray.actor.ActorHandle:
    """Claim the namespace for this driver; returns the anchor, which the caller keeps for the whole run
    (Ray removes a non-detached actor once no handle to it is left)."""
    namespace = cfg.ray.namespace
    anchor = DriverAnchor.options(name=anchor_name(driver), namespace=namespace).remote()
    ray.get(anchor.ping.remote())
    holder = ray.get(coordinator.claim.remote(driver))
    if holder != "won":
        if driver_alive(holder, namespace) or not ray.get(coordinator.take_over.remote(driver, holder)):
            raise RuntimeError(busy_message(cfg, f"driver {holder}"))
        log.warning("namespace %r: driver %s is gone; replacing the queues and state it left", namespace, holder)
        reset_namespace(cfg, coordinator)
        return anchor
    live = [m.member for m in ray.get(coordinator.members.remote()) if m.state in ("starting", "running")]
    if live:
        ray.get(coordinator.release.remote(driver))
        raise RuntimeError(busy_message(cfg, f"members {', '.join(live)}"))
    reset_namespace(cfg, coordinator, fresh_queues=False)
    return anchor


def reset_namespace(cfg: PipelineConfig, coordinator, fresh_queues: bool = True) -> None:
    """A clean ledger, and fresh queues where records were left: they refer to objects whose owners
    are gone."""
    if fresh_queues:
        remove_shared_actors(cfg, queues_only=True)
        ensure_shared_actors(cfg)
    ray.get(coordinator.reset.remote())


def release_namespace(anchor: ray.actor.ActorHandle) -> None:
    ray.kill(anchor)


def busy_message(cfg: PipelineConfig, who: str) -> str:
    return (
        f"a pipeline is already running in Ray namespace {cfg.ray.namespace!r} ({who}); "
        "stop it with `peaknet-pipeline stop` or choose another ray.namespace"
    )
