"""The sharded queue with a real local Ray: no loss, no duplicates, backpressure, attach by name."""

import subprocess
import sys
import textwrap

import pytest

from peaknet_pipeline.queue import QueueTimeout, ShardedQueue


def test_concurrent_producers_and_consumers_lose_and_duplicate_nothing(ray_session, namespace):
    ray = ray_session
    q = ShardedQueue.create("q", num_shards=3, maxsize=5, namespace=namespace, poll_timeout_s=0.05)

    @ray.remote(num_cpus=0)
    def produce(p: int, n: int) -> int:
        client = ShardedQueue.attach("q", 3, namespace, poll_timeout_s=0.05)
        for i in range(0, n, 3):
            client.put_batch([f"{p}:{j}" for j in range(i, min(i + 3, n))], timeout=30)
        return n

    @ray.remote(num_cpus=0)
    def consume(total_expected: int, stop_after_idle: float) -> list[str]:
        client = ShardedQueue.attach("q", 3, namespace, poll_timeout_s=0.05)
        got: list[str] = []
        while True:
            items = client.get_batch(4, timeout=stop_after_idle)
            if not items:
                return got
            got += items

    producers = [produce.remote(p, 150) for p in range(4)]
    consumers = [consume.remote(600, 3.0) for _ in range(3)]
    assert sum(ray.get(producers)) == 600
    received = [x for part in ray.get(consumers) for x in part]
    assert len(received) == 600
    assert set(received) == {f"{p}:{i}" for p in range(4) for i in range(150)}
    stats = q.stats()
    assert all(s.high_water <= 5 for s in stats)
    assert sum(s.puts for s in stats) == sum(s.gets for s in stats) == 600
    q.destroy()


def test_full_queue_pushes_back_and_drops_nothing(ray_session, namespace):
    q = ShardedQueue.create("bp", num_shards=2, maxsize=3, namespace=namespace, poll_timeout_s=0.05)
    q.put_batch(list(range(6)), timeout=5)
    assert q.depth() == 6
    with pytest.raises(QueueTimeout, match="1 records not accepted"):
        q.put_batch([6], timeout=0.3)
    assert [s.high_water for s in q.stats()] == [3, 3]
    assert sorted(q.get_batch(10, timeout=1) + q.get_batch(10, timeout=1)) == list(range(6))
    q.put(6, timeout=1)  # room again
    assert q.get(timeout=1) == 6
    assert q.get(timeout=0.1) is None
    q.destroy()


def test_second_driver_attaches_by_name(ray_session, namespace):
    ray = ray_session
    q = ShardedQueue.create("shared", num_shards=2, maxsize=10, namespace=namespace)
    q.put_batch([{"batch": i} for i in range(5)])
    address = ray.get_runtime_context().gcs_address
    script = textwrap.dedent(f"""
        import ray
        from peaknet_pipeline.queue import ShardedQueue
        ray.init(address={address!r}, namespace="elsewhere", log_to_driver=False)
        q = ShardedQueue.attach("shared", 2, {namespace!r})
        got = []
        while len(got) < 5:
            got += q.get_batch(5, timeout=5)
        q.put({{"reply": sorted(x["batch"] for x in got)}})
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    assert q.get(timeout=5) == {"reply": [0, 1, 2, 3, 4]}
    q.destroy()


def test_attach_to_missing_queue_explains(ray_session, namespace):
    with pytest.raises(LookupError, match="start the pipeline"):
        ShardedQueue.attach("absent", 1, namespace)


def test_a_producer_waiting_on_a_full_queue_asks_one_shard_per_poll(ray_session, namespace):
    """Each offer carries the record (and its refs) to a shard: a full queue must not cost a producer a
    round over every shard per poll interval."""
    q = ShardedQueue.create("full", num_shards=4, maxsize=1, namespace=namespace, poll_timeout_s=0.1)
    q.put_batch(list(range(4)), timeout=5)
    asked = sum(s.calls for s in q.stats())
    with pytest.raises(QueueTimeout):
        q.put(4, timeout=0.35)
    assert sum(s.calls for s in q.stats()) - asked <= 5  # a sweep per round would be 15 or more
    assert sorted(q.get_batch(1, timeout=1)[0] for _ in range(4)) == [0, 1, 2, 3]
    assert q.wait_batch(1, 0.1) == []  # empty now; and nothing of the refused put got in
    q.destroy()
