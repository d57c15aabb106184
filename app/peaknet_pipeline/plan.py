"""What a config asks the Ray cluster for: actors per stage with their CPUs, GPUs and custom resources, and
whether they fit the cluster's nodes. `peaknet-pipeline plan` prints it; the stages check it at start."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .config import PipelineConfig
from .kinds import PRODUCERS, WRITERS, kind_of


@dataclass(frozen=True, slots=True)
class Ask:
    """`count` actors (or concurrent tasks) of one stage, each needing the same resources."""

    stage: str
    what: str
    count: int
    cpus: float
    gpus: float = 0.0
    resources: dict[str, float] = field(default_factory=dict)


def producer_count(cfg: PipelineConfig) -> int:
    """Producer actors the config starts (socket producers: one per address, whatever num_producers says)."""
    return len(kind_of(PRODUCERS, cfg.producer.kind).plan(cfg))


def asks(cfg: PipelineConfig, stages: tuple[str, ...], gpus_available: bool = True) -> list[Ask]:
    """gpus_available: whether `inference.device: auto` will find a GPU (it does where the cluster has one)."""
    out = []
    if "produce" in stages:
        out.append(Ask("produce", f"{cfg.producer.kind} producer", producer_count(cfg), cfg.producer.num_cpus, 0.0,
                       dict(cfg.producer.resources)))  # fmt: skip
    if "infer" in stages:
        inf = cfg.inference
        gpu = 1.0 if inf.device == "cuda" or (inf.device == "auto" and gpus_available) else 0.0
        out.append(Ask("infer", "inference actor", inf.num_actors, inf.num_cpus, gpu))
    if "write" in stages:
        writer = kind_of(WRITERS, cfg.writer.kind)
        out.append(Ask("write", f"{cfg.writer.kind} writer", cfg.writer.num_actors, cfg.writer.num_cpus))
        if writer.peak_tasks:
            # At least one peak-finding task must find a CPU free, or the writers wait for ever.
            out.append(Ask("write", "peak-finding task (at least)", 1, cfg.peaks.task_cpus))
    return out


@dataclass(frozen=True, slots=True)
class StoreNeed:
    """About what the object store holds at most: batches in both queues, in the inference actors' buffers, in
    the producers' hands and in the writers' (with their peak-finding tasks), each its frames and uint8 masks."""

    batches: int
    batch_bytes: int

    @property
    def bytes(self) -> int:
        return self.batches * self.batch_bytes

    @property
    def gib(self) -> float:
        return self.bytes / 2**30


def store_need(cfg: PipelineConfig) -> StoreNeed | None:
    """None where the frame shape comes from the data (socket producers without data.frame_shape)."""
    if cfg.data.frame_shape is None:
        return None
    q, inf = cfg.queues, cfg.inference
    per_writer = 1 + (cfg.peaks.max_pending_tasks if kind_of(WRITERS, cfg.writer.kind).peak_tasks else 0)
    batches = 2 * q.num_shards * q.maxsize + inf.num_actors * inf.num_buffers + producer_count(cfg)
    batches += cfg.writer.num_actors * per_writer
    pixels = cfg.data.batch_size * math.prod(cfg.data.frame_shape)
    return StoreNeed(batches, pixels * (np.dtype(cfg.data.dtype).itemsize + 1))


def store_line(need: StoreNeed | None, configured_mb: int | None) -> str:
    if need is None:
        return "object store: frame shape not set (data.frame_shape), nothing to size"
    size = f"{configured_mb:,} MiB" if configured_mb else "null, Ray's default (a share of the node's memory)"
    return (f"object store: holds up to about {need.batches} batches, {need.gib:.1f} GiB; "
            f"ray.object_store_memory_mb: {size}")  # fmt: skip


def store_short(need: StoreNeed | None, store_bytes: float) -> str | None:
    """A warning when the cluster's object store (store_bytes, all nodes) is smaller than what the config can
    hold at once: then puts wait for space or spill to disk, and the pipeline runs at the disk's pace."""
    if need is None or not store_bytes or store_bytes >= need.bytes:
        return None
    return (
        f"the cluster's object store ({store_bytes / 2**30:.1f} GiB) is smaller than what this config can hold at "
        f"once (about {need.gib:.1f} GiB): puts will wait for space or spill to disk; raise "
        "ray.object_store_memory_mb (on a cluster: object-store-memory in the Ray start parameters) or lower "
        "queues.maxsize, queues.num_shards, inference.num_buffers or data.batch_size"
    )


def total(plan: list[Ask], key: str) -> float:
    if key in ("CPU", "GPU"):
        return sum(a.count * (a.cpus if key == "CPU" else a.gpus) for a in plan)
    return sum(a.count * a.resources.get(key, 0.0) for a in plan)


def unplaceable(plan: list[Ask], nodes: list[dict[str, float]]) -> list[str]:
    """What cannot be placed on these nodes (their free resources), first-fit, largest asks first."""
    free = [dict(n) for n in nodes]
    problems = []
    for ask in sorted(plan, key=lambda a: (a.gpus, a.cpus), reverse=True):
        need = {"CPU": ask.cpus, "GPU": ask.gpus, **ask.resources}
        need = {k: v for k, v in need.items() if v}
        for i in range(ask.count):
            node = next((n for n in free if all(n.get(k, 0.0) + 1e-9 >= v for k, v in need.items())), None)
            if node is None:
                problems.append(f"{ask.count - i} of {ask.count} {ask.what}s ({ask.stage}; each {describe(need)}) "
                                "fit on no node")  # fmt: skip
                break
            for k, v in need.items():
                node[k] -= v
    return problems


def against(cfg: PipelineConfig, stages: tuple[str, ...], nodes: list[dict[str, float]]) -> tuple[list[Ask], list[str]]:
    """The config's asks as these nodes would see them (`device: auto` takes a GPU where one exists), and what
    of it fits on no node."""
    plan = asks(cfg, stages, gpus_available=any(n.get("GPU", 0) >= 1 for n in nodes))
    return plan, unplaceable(plan, nodes)


def describe(need: dict[str, float]) -> str:
    return ", ".join(f"{v:g} {k}" for k, v in need.items()) or "nothing"


def render(
    plan: list[Ask], nodes: list[dict[str, float]] | None = None, problems: list[str] = (), store: str | None = None
) -> str:
    """The asks and their totals (and `store`, store_line()'s); with nodes, the cluster's and `problems`
    (against()'s) or "fits"."""
    lines = [f"{'stage':<8} {'what':<30} {'count':>5} {'CPU each':>8} {'GPU each':>8}  other"]
    for a in plan:
        other = describe(a.resources) if a.resources else "-"
        lines.append(f"{a.stage:<8} {a.what:<30} {a.count:>5} {a.cpus:>8g} {a.gpus:>8g}  {other}")
    keys = ["CPU", "GPU", *sorted({k for a in plan for k in a.resources})]
    lines.append("total: " + ", ".join(f"{total(plan, k):g} {k}" for k in keys))
    if store:
        lines.append(store)
    if nodes is None:
        lines.append("no Ray cluster to compare with (set ray.address or RAY_ADDRESS); `run` starts a local one")
        return "\n".join(lines)
    have = {k: sum(n.get(k, 0.0) for n in nodes) for k in keys}
    lines.append(f"cluster: {len(nodes)} nodes, free " + ", ".join(f"{have[k]:g} {k}" for k in keys))
    lines += [f"does not fit: {p}" for p in problems] or ["fits"]
    return "\n".join(lines)
