"""Queue records holding an ObjectRef to the frames (what peaknet does) against records holding the frames.

    python3 benchmarks/bench_queue.py --frame 1 512 512 --batch 32 --batches 200 --output queue.json
    python3 benchmarks/bench_queue.py --scaling 1 2 4 8 --output queue-scaling.json

--scaling: records per second through S shards with S producers and S consumers (records as small as
peaknet's: an id and a ref), for each S: how far the queue actors carry before they need a node of their own.

--backpressure P C S: P producers and C consumers that take WORK_MS per record, S shards: the queue stays
full and the producers wait, as Q1 does in the pipeline. What the shards spend per record moved: calls
asked of them and their processes' CPU time.

One producer process puts, one consumer process gets and reads the frames; both through a sharded queue of
Ray actors. With values, every batch is serialised into the shard actor and out again (two extra copies
through a single-threaded actor); with refs, the shard handles a few hundred bytes and the consumer maps
the frames from the shared-memory object store.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import ray

from peaknet_pipeline.bench import emit_json
from peaknet_pipeline.queue import ShardedQueue


@ray.remote(num_cpus=1)
def produce(queue: ShardedQueue, shape: tuple, batches: int, by_ref: bool) -> None:
    frames = np.random.default_rng(0).random(shape, dtype=np.float32)
    for i in range(batches):
        payload = ray.put(frames) if by_ref else frames
        queue.put({"id": i, "frames": payload})


@ray.remote(num_cpus=1)
def consume(queue: ShardedQueue, batches: int, by_ref: bool) -> float:
    seen, checksum, t0 = 0, 0.0, None
    while seen < batches:
        for record in queue.get_batch(4, timeout=5):
            frames = ray.get(record["frames"]) if by_ref else record["frames"]
            checksum += float(frames[0, 0, 0, 0])
            t0 = t0 or time.perf_counter()
            seen += 1
    return time.perf_counter() - t0


@ray.remote(num_cpus=1)
def put_records(queue: ShardedQueue, ref_box: list, records: int) -> None:
    for i in range(records):
        queue.put({"id": i, "frames": ref_box[0]})


@ray.remote(num_cpus=1)
def get_records(queue: ShardedQueue) -> tuple[int, float, float]:
    """Takes until the queue has stayed empty for a second once something came (consumers share unevenly)."""
    seen, first, last = 0, None, 0.0
    while True:
        got = queue.get_batch(4, timeout=1.0)
        if not got and first is not None:
            return seen, first, last
        if got:
            now = time.perf_counter()
            first = first or now
            seen, last = seen + len(got), now


@ray.remote(num_cpus=0)
def slow_consumer(queue: ShardedQueue, work_s: float, poll_s: float) -> int:
    """Takes one record at a time, as the pipeline's stages do, until the queue stays empty for a second."""
    seen, idle_since = 0, None
    while True:
        got = queue.get_batch(1, timeout=0) or queue.wait_batch(1, poll_s)  # as the stages' InputDrain does
        if got:
            time.sleep(work_s)
            seen, idle_since = seen + 1, None
        elif seen:
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since > 1.0:
                return seen


def backpressure(producers: int, consumers: int, shards: int, records: int, work_ms: float) -> dict:
    poll_s = 0.2
    queue = ShardedQueue.create(f"bench-bp-{shards}", shards, 4, "peaknet-bench", poll_timeout_s=poll_s)
    box = [ray.put(np.zeros(8, np.float32))]
    before = queue.stats()
    t0 = time.perf_counter()
    takers = [slow_consumer.remote(queue, work_ms / 1000, poll_s) for _ in range(consumers)]
    ray.get([put_records.remote(queue, box, records) for _ in range(producers)])
    taken = sum(ray.get(takers))
    seconds = time.perf_counter() - t0 - 1.0  # less the consumers' last idle second
    after = queue.stats()
    queue.destroy()
    if taken != producers * records:
        raise RuntimeError(f"{taken} records taken of {producers * records} put")
    calls = sum(a.calls - b.calls for a, b in zip(after, before))
    cpu = sum(a.cpu_s - b.cpu_s for a, b in zip(after, before))
    return {"producers": producers, "consumers": consumers, "shards": shards, "work_ms": work_ms,
            "records": taken, "records_per_s": round(taken / seconds, 1),
            "consumers_bound_records_per_s": round(consumers * 1000 / work_ms, 1),
            "shard_calls_per_record": round(calls / taken, 2),
            "shard_cpu_ms_per_record": round(1000 * cpu / taken, 3)}  # fmt: skip


def scaling(shards: int, records: int) -> dict:
    """S producers put `records` each; S consumers take them; records/s from the first get to the last."""
    queue = ShardedQueue.create(f"bench-scale-{shards}", shards, 16, "peaknet-bench")
    box = [ray.put(np.zeros(8, np.float32))]  # one ref in every record: the queue's cost, not the store's
    consumers = [get_records.remote(queue) for _ in range(shards)]
    producers = [put_records.remote(queue, box, records) for _ in range(shards)]
    ray.get(producers)
    done = ray.get(consumers)
    queue.destroy()
    taken = sum(d[0] for d in done)
    if taken != shards * records:
        raise RuntimeError(f"{taken} records taken of {shards * records} put")
    seconds = max(d[2] for d in done) - min(d[1] for d in done)
    return {"shards": shards, "producers": shards, "consumers": shards, "records": taken,
            "records_per_s": round(taken / seconds, 1)}  # fmt: skip


def measure(shape: tuple, batches: int, shards: int, by_ref: bool) -> dict:
    queue = ShardedQueue.create(f"bench-{'ref' if by_ref else 'value'}", shards, 8, "peaknet-bench")
    consumer = consume.remote(queue, batches, by_ref)
    produce.remote(queue, shape, batches, by_ref)
    seconds = ray.get(consumer)
    queue.destroy()
    frames = shape[0] * (batches - 1)
    mb = np.prod(shape) * 4 * (batches - 1) / 1e6
    return {"by_ref": by_ref, "frames_per_s": round(frames / seconds, 1), "MB_per_s": round(mb / seconds, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frame", type=int, nargs=3, default=[1, 512, 512])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--scaling", type=int, nargs="*", help="shard counts to sweep (records/s)")
    ap.add_argument("--records", type=int, default=2000, help="records per producer in --scaling")
    ap.add_argument("--backpressure", type=int, nargs=3, metavar=("P", "C", "S"))
    ap.add_argument("--work-ms", type=float, default=20.0, help="each consumer's time per record (--backpressure)")
    ap.add_argument("--output")
    args = ap.parse_args()
    if args.backpressure:
        producers, consumers, shards = args.backpressure
        ray.init(num_cpus=max(4, producers + consumers), include_dashboard=False, namespace="peaknet-bench")
        row = backpressure(producers, consumers, shards, args.records, args.work_ms)
        emit_json({"cpus": os.cpu_count(), "backpressure": row}, args.output)
        return 0
    if args.scaling:
        cpus = max(4, 2 * max(args.scaling))
        ray.init(num_cpus=cpus, include_dashboard=False, namespace="peaknet-bench")
        rows = [scaling(s, args.records) for s in args.scaling]
        emit_json({"cpus": os.cpu_count(), "scaling": rows}, args.output)
        return 0
    ray.init(num_cpus=4, include_dashboard=False, namespace="peaknet-bench")
    shape = (args.batch, *args.frame)
    result = {
        "batch_shape": list(shape),
        "shards": args.shards,
        "runs": [measure(shape, args.batches, args.shards, by_ref) for by_ref in (True, False)],
    }
    emit_json(result, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
