"""Is memory bounded? Summarise resource samples (output.samples JSON lines) of a long run.

    python3 benchmarks/analyze_samples.py samples.jsonl --warmup-s 60 --output memory-summary.json

For every process: RSS at the end of warm-up, at the end, and the least-squares slope after warm-up
(MiB per minute); the same for the object store; and each queue's deepest shard against its limit.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

MIB = 1024 * 1024


def load_samples(path: str) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def slope_per_min(t: np.ndarray, values: np.ndarray) -> float:
    """Least-squares growth per minute of `values` sampled at `t` seconds."""
    if len(t) < 3 or t[-1] - t[0] <= 0:
        return 0.0
    return float(np.polyfit(t / 60.0, values, 1)[0])


def series(samples: list[dict], process: str) -> tuple[np.ndarray, np.ndarray]:
    points = [(s["t_s"], s["rss_bytes"][process]) for s in samples if process in s["rss_bytes"]]
    return np.array([p[0] for p in points]), np.array([p[1] for p in points], dtype=float)


def summarise(samples: list[dict], warmup_s: float) -> dict:
    steady = [s for s in samples if s["t_s"] >= warmup_s]
    if len(steady) < 3:
        raise ValueError(f"only {len(steady)} samples after {warmup_s}s of warm-up: run longer or sample more often")
    processes = sorted({p for s in steady for p in s["rss_bytes"]})
    rss = {}
    for proc in processes:
        t, v = series(steady, proc)
        rss[proc] = {
            "start_mib": round(v[0] / MIB, 1),
            "end_mib": round(v[-1] / MIB, 1),
            "max_mib": round(v.max() / MIB, 1),
            "slope_mib_per_min": round(slope_per_min(t, v / MIB), 2),
        }
    t = np.array([s["t_s"] for s in steady])
    store = np.array([s["object_store_bytes"] for s in steady], dtype=float)
    objects = np.array([s.get("object_store_objects", 0) for s in steady], dtype=float)
    depth = {q: max(s["queue_depth"].get(q, 0) for s in samples) for q in samples[-1]["queue_maxsize"]}
    return {
        "duration_s": samples[-1]["t_s"],
        "warmup_s": warmup_s,
        "samples": len(samples),
        "rss": rss,
        "worst_rss_slope_mib_per_min": max(r["slope_mib_per_min"] for r in rss.values()),
        "object_store": {
            "max_mib": round(store.max() / MIB, 1),
            "slope_mib_per_min": round(slope_per_min(t, store / MIB), 2),
            "max_objects": int(objects.max()),
            "objects_slope_per_min": round(slope_per_min(t, objects), 2),
        },
        "queue_max_depth": depth,
        "queue_within_limits": all(depth[q] <= samples[-1]["queue_maxsize"][q] for q in depth),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("samples")
    ap.add_argument("--warmup-s", type=float, default=60.0)
    ap.add_argument("--output")
    args = ap.parse_args()
    summary = summarise(load_samples(args.samples), args.warmup_s)
    text = json.dumps(summary, indent=2)
    if args.output:
        Path(args.output).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
