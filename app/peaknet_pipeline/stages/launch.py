"""Start the actors of each stage with the resources the config asks for."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import ray

from ..config import PipelineConfig
from ..kinds import PRODUCERS, WRITERS, kind_of
from ..plan import asks, total
from ..profiling import nsight_runtime_env
from .infer import InferenceActor

# Stages whose actors Ray restarts after a death (lifecycle.max_restarts). A producer is not restarted: the
# frames it owned are gone with its process, and a new one would not know where the stream stood.
RESTARTABLE = ("infer", "write")


@dataclass(slots=True)
class Member:
    stage: str
    name: str
    handle: ray.actor.ActorHandle
    restarts: int = 0
    unavailable_since: float = -1e9  # monotonic time of the last "actor unavailable" error


def run_tag() -> str:
    """Distinguishes members of this driver from those of earlier or parallel drivers."""
    return uuid.uuid4().hex[:6]


def start_producers(cfg: PipelineConfig, coordinator, tag: str) -> list[Member]:
    kind = kind_of(PRODUCERS, cfg.producer.kind)
    options = {"num_cpus": cfg.producer.num_cpus, "resources": cfg.producer.resources or None}
    members = []
    for i, args in enumerate(kind.plan(cfg)):
        name = f"{cfg.producer.kind}-{tag}-{i}"
        handle = kind.actor.options(**options).remote(cfg, coordinator, name, *args)
        members.append(Member("produce", name, handle))
    return members


def cluster_has_gpus() -> bool:
    return ray.cluster_resources().get("GPU", 0) >= 1


def start_inference(cfg: PipelineConfig, coordinator, tag: str) -> list[Member]:
    inf = cfg.inference
    use_gpu = inf.device == "cuda" or (inf.device == "auto" and cluster_has_gpus())
    members = []
    for i in range(inf.num_actors):
        name = f"infer-{tag}-{i}"
        options = {"num_cpus": inf.num_cpus, "num_gpus": int(use_gpu), "max_restarts": cfg.lifecycle.max_restarts}
        if env := nsight_runtime_env(cfg.profiling):
            options["runtime_env"] = env
        handle = InferenceActor.options(**options).remote(cfg, coordinator, name)
        members.append(Member("infer", name, handle))
    return members


def start_writers(cfg: PipelineConfig, coordinator, tag: str) -> list[Member]:
    members = []
    for i in range(cfg.writer.num_actors):
        name = f"write-{tag}-{i}"
        actor = kind_of(WRITERS, cfg.writer.kind).actor
        options = {"num_cpus": cfg.writer.num_cpus, "max_restarts": cfg.lifecycle.max_restarts}
        handle = actor.options(**options).remote(cfg, coordinator, name)
        members.append(Member("write", name, handle))
    return members


STARTERS = {"produce": start_producers, "infer": start_inference, "write": start_writers}


def cpus_needed(cfg: PipelineConfig, stages: tuple[str, ...]) -> float:
    return total(asks(cfg, stages), "CPU")
