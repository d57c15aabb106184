"""The kinds of producer, model and writer, one line each: the name a config gives and the module that
implements it. config.py allows exactly these names; the stages and the model builder import the module and
use its `KIND`. A new kind is its module plus one line here (and its config section if it has settings)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

PRODUCERS = {
    "synthetic": "peaknet_pipeline.stages.produce",
    "socket": "peaknet_pipeline.stages.ingest",
    "file": "peaknet_pipeline.stages.replay",
}
MODELS = {
    "peaknet": "peaknet_pipeline.inference.models",
    "threshold": "peaknet_pipeline.inference.threshold",
}
WRITERS = {
    "cxi": "peaknet_pipeline.stages.write",
    "none": "peaknet_pipeline.stages.sink",
}


@dataclass(frozen=True)
class ProducerKind:
    actor: Any  # a Ray actor class, constructed as actor(cfg, coordinator, name, *args)
    plan: Callable[[Any], list[tuple]]  # cfg -> the constructor args after the name, one tuple per actor
    external: bool = False  # frames come from outside: a quiet source is waiting, not stalled


@dataclass(frozen=True)
class ModelKind:
    build: Callable[[Any], tuple[Any, dict[str, Any]]]  # ModelSection -> (Segmenter, description)


@dataclass(frozen=True)
class WriterKind:
    actor: Any  # a Ray actor class, constructed as actor(cfg, coordinator, name)
    peak_tasks: bool  # starts peak-finding tasks, each needing a free CPU (peaks.task_cpus)


def kind_of(registry: dict[str, str], name: str):
    """The KIND of the module registered under `name`."""
    return importlib.import_module(registry[name]).KIND
