"""What a config asks the cluster for (plan.py, `peaknet-pipeline plan`), against real nodes' resources."""

from __future__ import annotations

import os
import subprocess

from peaknet_pipeline.config_sources import validate_config
from peaknet_pipeline.plan import asks, store_line, store_need, store_short, total, unplaceable
from peaknet_pipeline.scheduling import check_store

from .conftest import cli

ALL = ("produce", "infer", "write")


def config(**sections):
    return validate_config({"data": {"frame_shape": [1, 64, 64]}, **sections})


def test_socket_producers_count_once_per_address_not_per_num_producers():
    addresses = [{"url": "tcp://127.0.0.1:5555"}, {"url": "tcp://127.0.0.1:5556"}]
    cfg = config(producer={"kind": "socket", "num_producers": 8, "num_cpus": 1, "socket": {"addresses": addresses},
                           "resources": {"ingest": 1}})  # fmt: skip
    (produce,) = asks(cfg, ("produce",))
    assert (produce.count, total([produce], "CPU"), total([produce], "ingest")) == (2, 2.0, 2.0)


def test_peak_tasks_only_for_writers_that_find_peaks():
    with_peaks = asks(config(writer={"kind": "cxi", "num_actors": 2, "num_cpus": 0.5}), ("write",))
    assert total(with_peaks, "CPU") == 2 * 0.5 + 1.0  # peaks.task_cpus defaults to 1
    assert total(asks(config(writer={"kind": "none", "num_actors": 2, "num_cpus": 0.5}), ("write",)), "CPU") == 1.0


def test_unplaceable_names_what_fits_on_no_node():
    cfg = config(inference={"device": "cuda", "num_actors": 2, "num_cpus": 2},
                 producer={"resources": {"ingest": 1}})  # fmt: skip
    nodes = [{"CPU": 8.0, "GPU": 1.0}, {"CPU": 16.0}]
    problems = unplaceable(asks(cfg, ALL), nodes)
    assert any(p.startswith("1 of 2 inference actors (infer; each 2 CPU, 1 GPU)") for p in problems)
    assert any("synthetic producers" in p and "1 ingest" in p for p in problems)
    nodes.append({"CPU": 4.0, "GPU": 1.0, "ingest": 4.0})
    assert unplaceable(asks(cfg, ALL), nodes) == []


def test_the_store_need_counts_every_place_a_batch_can_wait():
    sections = dict(queues={"num_shards": 2, "maxsize": 3}, inference={"num_actors": 2, "num_buffers": 3},
                    producer={"num_producers": 2}, peaks={"max_pending_tasks": 5})  # fmt: skip
    data = {"frame_shape": [1, 64, 64], "batch_size": 4, "dtype": "uint16"}
    need = store_need(validate_config({"data": data, "writer": {"kind": "cxi", "num_actors": 2}, **sections}))
    # both queues full, every inference buffer, a batch per producer, and per writer one plus its peak tasks
    assert need.batches == 2 * 2 * 3 + 2 * 3 + 2 + 2 * (1 + 5)
    assert need.batch_bytes == 4 * 64 * 64 * (2 + 1)  # uint16 frames and uint8 masks
    counting = store_need(validate_config({"data": data, "writer": {"kind": "none", "num_actors": 2}, **sections}))
    assert counting.batches == need.batches - 2 * 5  # a counting writer starts no peak tasks
    assert "ray.object_store_memory_mb: 2,048 MiB" in store_line(need, 2048)
    assert "Ray's default" in store_line(need, None) and "nothing to size" in store_line(None, None)


def test_a_store_smaller_than_the_config_holds_is_named_with_the_settings_that_size_it():
    need = store_need(config(data={"frame_shape": [1, 512, 512], "batch_size": 64}))
    short = store_short(need, need.bytes - 1)
    assert short and "ray.object_store_memory_mb" in short and "queues.maxsize" in short
    assert store_short(need, need.bytes) is None and store_short(need, 0) is None  # 0: the cluster did not say
    assert store_short(None, 1) is None  # no frame shape: nothing to size


def test_check_store_reads_the_running_clusters_store(ray_session):
    """The test Ray's store is 400 MiB: 1x512x512 b64 batches need more, 1x64x64 ones do not."""
    big = config(data={"frame_shape": [1, 512, 512], "batch_size": 64})
    assert "(0.4 GiB) is smaller than" in check_store(big)
    assert check_store(config()) is None


def test_plan_command_against_a_running_cluster(ray_session):
    """The test Ray: 4 CPUs, no GPU, 2 `ingest_test`. Exit 0 when the config fits, 1 naming what does not."""
    env = {**os.environ, "RAY_ADDRESS": ray_session.get_runtime_context().gcs_address}
    small = ["--set", "data.frame_shape=[1,64,64]", "--set", "inference.device=auto", "--set", "producer.num_cpus=0.5"]
    done = subprocess.run(cli("plan", *small), capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "cluster: 1 nodes" in done.stdout and done.stdout.strip().endswith("fits")
    assert "object store: holds up to about" in done.stdout and "warning:" not in done.stdout
    frames = ["--set", "data.frame_shape=[1,512,512]", "--set", "data.batch_size=64"]
    done = subprocess.run(cli("plan", *small, *frames), capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0 and "warning: the cluster's object store (0.4 GiB) is smaller" in done.stdout
    big = [*small, "--set", "writer.num_actors=6", "--set", "writer.num_cpus=1"]
    done = subprocess.run(cli("plan", *big), capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1
    assert "does not fit:" in done.stdout and "cxi writers (write; each 1 CPU) fit on no node" in done.stdout
