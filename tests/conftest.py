"""Shared fixtures: one real local Ray for the in-process tests; each test gets its own namespace."""

from __future__ import annotations

import importlib.util
import os
import sys
import uuid
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
if not torch.cuda.is_available():
    # test_fused_kernels runs the Triton kernels on CPU tensors; read when the kernels are defined (import)
    os.environ.setdefault("TRITON_INTERPRET", "1")


def load_script(name: str, path: Path):
    """Import a script that is not in a package (benchmarks/, k8s/) as module `name`."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses in the script look their module up here
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def ray_session():
    import ray

    ray.init(
        num_cpus=4,
        resources={"ingest_test": 2},  # a custom resource, as an ingest worker group would advertise
        object_store_memory=400 * 2**20,
        include_dashboard=False,
        log_to_driver=False,
    )
    yield ray
    ray.shutdown()


@pytest.fixture
def exact_reference_convs():
    """cuDNN runs fp32 convs in TF32 by default; the kernels' fp32 products are IEEE, and so must a reference's be
    (on the H200 a TF32 reference differed from the head kernels by up to 0.012, which rounding its operands to TF32
    on the CPU reproduces to six digits)."""
    before = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32 = before


@pytest.fixture
def namespace() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def cpu_config(namespace):
    """A small CPU pipeline config in a namespace of its own."""
    from peaknet_pipeline.config_sources import validate_config

    return validate_config(
        {
            "ray": {"namespace": namespace},
            "data": {"frame_shape": [1, 64, 64], "batch_size": 4},
            "producer": {
                "num_producers": 2,
                "total_frames": 64,
                "num_cpus": 0.25,
                "peaks": {"per_frame": [2, 5]},
                "linger_timeout_s": 20,
            },
            "model": {"kind": "threshold"},
            "inference": {"device": "cpu", "num_cpus": 0.5, "warmup_iters": 1},
            "writer": {"num_cpus": 0.25, "kind": "none"},
            "queues": {"num_shards": 2, "maxsize": 4, "poll_timeout_s": 0.05},
            "lifecycle": {"drain_timeout_s": 20},
            "output": {"progress": "off"},
        }
    )


# --set overrides that let several stage actors share the small test Ray.
SMALL_ACTORS = [
    "--set", "producer.num_cpus=0.25", "--set", "inference.num_cpus=0.5",
    "--set", "writer.num_cpus=0.25", "--set", "peaks.task_cpus=0.25",
]  # fmt: skip


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "peaknet_pipeline", *args]


@pytest.fixture(scope="session")
def image_scratch(tmp_path_factory) -> Path:
    from .images import MISSING_TOOLS, SKIP_REASON

    if MISSING_TOOLS:
        pytest.skip(SKIP_REASON)
    return tmp_path_factory.mktemp("images")


@pytest.fixture(scope="session")
def base_image(image_scratch) -> str:
    from .images import make_base_image

    return make_base_image(image_scratch)


@pytest.fixture(scope="session")
def pip_mounts(image_scratch) -> list[str]:
    from .images import make_pip_mounts

    return make_pip_mounts(image_scratch)


@pytest.fixture(scope="session")
def image(base_image, pip_mounts) -> str:
    """docker/Dockerfile built with buildah once per session, as the CPU image is built (torch's CPU wheel;
    the CUDA image's build differs only in TORCH_INDEX, whose wheels are several GB, and in the Triton that
    those wheels bring, which test_images lends from the test environment) (tests/images.py)."""
    from .images import TAG, build

    return build("Dockerfile", TAG, base_image, pip_mounts)
