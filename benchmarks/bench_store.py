"""What a producer's puts cost while the object store's pages are new to it: rounds of ray.put of one batch
(kept a few at a time, as a queue holds them), each round's GB/s and page faults per page put, for each store
size. A process maps each page of the store the first time it touches it (a minor fault), so a store far
larger than what the queues hold keeps every put faulting for longer. JSON on stdout.

    python3 benchmarks/bench_store.py [--store-mb 1024 0] [--batch 64] [--frame 512] [--rounds 6] [--output F]

--store-mb 0 is Ray's default size (30% of memory). Each size runs in a fresh local Ray.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import numpy as np
import ray

from peaknet_pipeline.bench import emit_json

HELD = 8  # puts alive at once, as records waiting in a queue


def minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def rounds_of_puts(batch: np.ndarray, rounds: int, puts: int) -> list[dict]:
    out = []
    for i in range(rounds):
        held, faults, t0 = [], minor_faults(), time.perf_counter()
        for _ in range(puts):
            held.append(ray.put(batch))
            if len(held) > HELD:
                held.pop(0)
        held.clear()
        seconds, faults = time.perf_counter() - t0, minor_faults() - faults
        moved = puts * batch.nbytes
        out.append({"round": i, "GB_per_s": round(moved / seconds / 1e9, 2),
                    "faults_per_page_put": round(faults * resource.getpagesize() / moved, 3)})  # fmt: skip
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store-mb", nargs="*", type=int, default=[1024, 0])
    ap.add_argument("--batch", type=int, default=16, help="frames per put")
    ap.add_argument("--frame", type=int, default=512, help="frames are 1 x N x N float32")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--puts", type=int, default=100, help="puts per round")
    ap.add_argument("--output")
    args = ap.parse_args()
    batch = np.ones((args.batch, 1, args.frame, args.frame), np.float32)
    runs = []
    for store_mb in args.store_mb:
        ray.init(num_cpus=1, object_store_memory=store_mb * 2**20 or None, include_dashboard=False,
                 log_to_driver=False)  # fmt: skip
        store = ray.available_resources().get("object_store_memory", 0)
        runs.append({"store_mb": round(store / 2**20), "rounds": rounds_of_puts(batch, args.rounds, args.puts)})
        ray.shutdown()
    emit_json({"batch_bytes": batch.nbytes, "held": HELD, "runs": runs}, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
