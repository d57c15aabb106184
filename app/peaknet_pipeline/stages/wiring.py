"""Ray names of the shared actors, derived from the config only, so separate drivers meet."""

from __future__ import annotations

import time

import ray

from ..config import PipelineConfig
from ..coordinator import COORDINATOR_NAME, attach_coordinator, get_or_create_coordinator
from ..queue import ShardedQueue


def _client(cfg: PipelineConfig, name: str, create: bool) -> ShardedQueue:
    q = cfg.queues
    if create:
        return ShardedQueue.create(name, q.num_shards, q.maxsize, cfg.ray.namespace, poll_timeout_s=q.poll_timeout_s)
    return ShardedQueue.attach(name, q.num_shards, cfg.ray.namespace, poll_timeout_s=q.poll_timeout_s)


def q1_client(cfg: PipelineConfig, create: bool = False) -> ShardedQueue:
    return _client(cfg, cfg.queues.q1_name, create)


def q2_client(cfg: PipelineConfig, create: bool = False) -> ShardedQueue:
    return _client(cfg, cfg.queues.q2_name, create)


def ensure_shared_actors(cfg: PipelineConfig) -> ray.actor.ActorHandle:
    """Create (or find) the coordinator and both queues; any stage may be the first to start."""
    q1_client(cfg, create=True)
    q2_client(cfg, create=True)
    return get_or_create_coordinator(cfg.ray.namespace, cfg.lifecycle.heartbeat_timeout_s)


def shared_actor_names(cfg: PipelineConfig) -> list[str]:
    names = [COORDINATOR_NAME]
    for qname in (cfg.queues.q1_name, cfg.queues.q2_name):
        names += [ShardedQueue.shard_name(qname, i) for i in range(cfg.queues.num_shards)]
    return names


def remove_shared_actors(cfg: PipelineConfig, queues_only: bool = False) -> list[str]:
    """Kill the detached actors; returns the names that existed."""
    removed = []
    for name in shared_actor_names(cfg)[1 if queues_only else 0 :]:
        try:
            handle = ray.get_actor(name, namespace=cfg.ray.namespace)
        except ValueError:
            continue
        ray.kill(handle, no_restart=True)
        removed.append(name)
    for name in removed:  # a name is free only once the GCS has seen the actor die; then it can be made again
        wait_until_gone(name, cfg.ray.namespace)
    return removed


def wait_until_gone(name: str, namespace: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            ray.get_actor(name, namespace=namespace)
        except ValueError:
            return
        time.sleep(0.05)


__all__ = ["attach_coordinator", "ensure_shared_actors", "q1_client", "q2_client", "remove_shared_actors"]
