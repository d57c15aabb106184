"""Start the actors of each stage with the resources the config asks for."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import ray

from ..config import PipelineConfig
from ..profiling import nsight_runtime_env
from .infer import InferenceActor
from .ingest import SocketProducer
from .produce import SyntheticProducer, require_frame_shape, split_frames
from .sink import SinkActor
from .write import CxiWriterActor

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
    if cfg.producer.kind == "socket":
        return start_socket_producers(cfg, coordinator, tag)
    require_frame_shape(cfg)
    members = []
    for i, frames in enumerate(split_frames(cfg.producer.total_frames, cfg.producer.num_producers)):
        name = f"synthetic-{tag}-{i}"
        handle = SyntheticProducer.options(num_cpus=cfg.producer.num_cpus).remote(cfg, coordinator, name, i, frames)
        members.append(Member("produce", name, handle))
    return members


def start_socket_producers(cfg: PipelineConfig, coordinator, tag: str) -> list[Member]:
    if not cfg.producer.socket.addresses:
        raise ValueError("producer.kind=socket needs producer.socket.addresses, e.g. [{url: 'tcp://0.0.0.0:5555'}]")
    members = []
    for i, address in enumerate(cfg.producer.socket.addresses):
        name = f"socket-{tag}-{i}"
        options = {"num_cpus": cfg.producer.num_cpus, "resources": cfg.producer.resources or None}
        handle = SocketProducer.options(**options).remote(cfg, coordinator, name, address)
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
        actor = CxiWriterActor if cfg.writer.kind == "cxi" else SinkActor
        options = {"num_cpus": cfg.writer.num_cpus, "max_restarts": cfg.lifecycle.max_restarts}
        handle = actor.options(**options).remote(cfg, coordinator, name)
        members.append(Member("write", name, handle))
    return members


STARTERS = {"produce": start_producers, "infer": start_inference, "write": start_writers}


def cpus_needed(cfg: PipelineConfig, stages: tuple[str, ...]) -> float:
    need = {
        "produce": cfg.producer.num_cpus * cfg.producer.num_producers,
        "infer": cfg.inference.num_cpus * cfg.inference.num_actors,
        # Peak-finding tasks must find a CPU free, or the write stage waits for ever.
        "write": cfg.writer.num_cpus * cfg.writer.num_actors + (cfg.peaks.task_cpus if cfg.writer.kind == "cxi" else 0),
    }
    return sum(need[s] for s in stages)
