"""What a producer's puts cost while the object store's pages are new to it: rounds of ray.put of one batch
(kept a few at a time, as a queue holds them), each round's GB/s and page faults per page put, for each store
size. A process maps each page of the store the first time it touches it (a minor fault), so a store far
larger than what the queues hold keeps every put faulting for longer. A reader actor (as an inference actor or
a writer) gets every batch put and reads it whole: its GB/s and faults per page read are reported beside. With
--preallocate 1 the raylet allocates the whole store at start (Ray's preallocate_plasma_memory), so first
touches map pages that exist instead of allocating and zeroing them. With --populate 1 the putting process
maps the whole store in one call before the rounds (store_mapping.populate, as producers do). JSON on stdout.

    python3 benchmarks/bench_store.py [--store-mb 1024 0] [--preallocate 0 1] [--populate 0 1] [--batch 16] \
        [--frame 512] [--rounds 6] [--output F]
    python3 benchmarks/bench_store.py --race 2 --store-mb 3072 [--output F]

--race N: N processes populate a fresh store at once, all from its start, then each from its own point
(store_mapping.chunks), each way in a fresh local Ray: seconds until every process has mapped it.

--store-mb 0 is Ray's default size (30% of memory). Each size runs in a fresh local Ray.
"""

from __future__ import annotations

import argparse
import itertools
import resource
import sys
import time

import numpy as np
import ray

from peaknet_pipeline import store_mapping
from peaknet_pipeline.bench import emit_json

HELD = 8  # puts alive at once, as records waiting in a queue


def minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def rate(moved: int, seconds: float, faults: int) -> tuple[float, float]:
    """GB/s and minor faults per page moved."""
    return round(moved / seconds / 1e9, 2), round(faults * resource.getpagesize() / moved, 3)


@ray.remote(num_cpus=0)
class Reader:
    """Gets batches by reference and reads them whole, counting its own time and faults."""

    def __init__(self):
        self.seconds, self.faults, self.bytes = 0.0, 0, 0

    def read(self, refs: list) -> None:  # refs inside a list arrive unresolved: the get is timed here
        faults, t0 = minor_faults(), time.perf_counter()
        for ref in refs:
            batch = ray.get(ref)
            batch.sum()
            self.bytes += batch.nbytes
        self.seconds += time.perf_counter() - t0
        self.faults += minor_faults() - faults

    def take(self) -> tuple[int, float, int]:
        taken = (self.bytes, self.seconds, self.faults)
        self.seconds, self.faults, self.bytes = 0.0, 0, 0
        return taken


def rounds_of_puts(batch: np.ndarray, rounds: int, puts: int) -> list[dict]:
    reader = Reader.remote()
    out = []
    for i in range(rounds):
        held, put_s, faults = [], 0.0, 0
        for _ in range(puts):
            f0, t0 = minor_faults(), time.perf_counter()
            held.append(ray.put(batch))
            put_s, faults = put_s + time.perf_counter() - t0, faults + minor_faults() - f0
            if len(held) == HELD:  # read what the queue holds, then let it go
                ray.get(reader.read.remote(held))
                held = []
        put_rate, put_faults = rate(puts * batch.nbytes, put_s, faults)
        read_rate, read_faults = rate(*ray.get(reader.take.remote()))
        out.append({"round": i, "GB_per_s": put_rate, "faults_per_page_put": put_faults,
                    "read_GB_per_s": read_rate, "faults_per_page_read": read_faults})  # fmt: skip
    return out


@ray.remote(num_cpus=0)
class Populator:
    def touch(self) -> None:
        ray.put(np.ones(2**18))  # the store is mapped from a process's first object on

    def populate(self, first: float) -> float:
        t0 = time.perf_counter()
        store_mapping.populate(store_mapping.store_regions(), first=first)
        return time.perf_counter() - t0


def race(processes: int, store_mb: int) -> list[dict]:
    """Seconds for `processes` actors populating a fresh store at once, from the same start and staggered."""
    out = []
    for how, firsts in (("same start", [0.0] * processes), ("staggered", [i / processes for i in range(processes)])):
        ray.init(num_cpus=processes, object_store_memory=store_mb * 2**20, include_dashboard=False, log_to_driver=False)
        actors = [Populator.remote() for _ in firsts]
        ray.get([a.touch.remote() for a in actors])
        t0 = time.perf_counter()
        each = ray.get([a.populate.remote(f) for a, f in zip(actors, firsts)])
        out.append({"start": how, "wall_s": round(time.perf_counter() - t0, 2), "each_s": [round(e, 2) for e in each]})
        ray.shutdown()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store-mb", nargs="*", type=int, default=[1024, 0])
    ap.add_argument("--preallocate", nargs="*", type=int, default=[0], choices=[0, 1])
    ap.add_argument("--populate", nargs="*", type=int, default=[0], choices=[0, 1])
    ap.add_argument("--batch", type=int, default=16, help="frames per put")
    ap.add_argument("--frame", type=int, default=512, help="frames are 1 x N x N float32")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--puts", type=int, default=100, help="puts per round")
    ap.add_argument(
        "--race", type=int, help="processes populating at once (see above); other options but the store's size ignored"
    )
    ap.add_argument("--output")
    args = ap.parse_args()
    if args.race:
        store_mb = args.store_mb[0]
        emit_json({"processes": args.race, "store_mb": store_mb, "race": race(args.race, store_mb)}, args.output)
        return 0
    batch = np.ones((args.batch, 1, args.frame, args.frame), np.float32)
    runs = []
    for store_mb, preallocate, populate in itertools.product(args.store_mb, args.preallocate, args.populate):
        ray.init(num_cpus=1, object_store_memory=store_mb * 2**20 or None, include_dashboard=False,
                 log_to_driver=False, _system_config={"preallocate_plasma_memory": bool(preallocate)})  # fmt: skip
        store = ray.available_resources().get("object_store_memory", 0)
        run = {"store_mb": round(store / 2**20), "preallocated": bool(preallocate), "populated": bool(populate)}
        if populate:
            ray.put(batch[:1])  # the store is mapped from a process's first object on
            t0 = time.perf_counter()
            run["populated_bytes"] = store_mapping.populate(store_mapping.store_regions())
            run["populate_s"] = round(time.perf_counter() - t0, 3)
        runs.append({**run, "rounds": rounds_of_puts(batch, args.rounds, args.puts)})
        ray.shutdown()
    emit_json({"batch_bytes": batch.nbytes, "held": HELD, "runs": runs}, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
