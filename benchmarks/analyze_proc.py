"""Where a GPU host's CPUs went during a pipeline run: cores (and how many of them in the kernel) and page faults
per kind of Ray worker, from the `*-proc.txt` samples that run_writer_profile.sh takes every 5 s beside each run
(and the host's split from its `*-top.txt`, where given).

    python3 benchmarks/analyze_proc.py gpus-4-shm-proc.txt [--top gpus-4-shm-top.txt] [--output x.json]

A run is the lifetime of its inference actors (each run starts its own). Its busy window is the samples where
the Ray workers together used at least 70% of their most: past the model's compile, before the drain.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import statistics
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from peaknet_pipeline.bench import emit_json

TICKS = 100  # USER_HZ
BUSY_SHARE = 0.7
# A pooled worker's name flips between its task and IDLE from one sample to the next: one kind.
NAMES = {"ray::IDLE": "peak-finding workers (pooled)", "ray::find_batch": "peak-finding workers (pooled)"}


@dataclass(frozen=True, slots=True)
class Sample:
    t: float
    pid: str
    name: str
    minflt: int
    ticks: int
    system_ticks: int


def read_samples(path: Path) -> list[Sample]:
    samples = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 6:
            t, pid, name, minflt, utime, stime = parts
            samples.append(Sample(float(t), pid, name.strip("()"), int(minflt), int(utime) + int(stime), int(stime)))
    return samples


def runs_of(samples: list[Sample]) -> list[tuple[float, float]]:
    """(start, end) of each run: its inference actors' first and last sample; actors started together are one run."""
    spans: dict[str, list[float]] = defaultdict(list)
    for s in samples:
        if s.name.startswith("ray::Inference"):
            spans[s.pid].append(s.t)
    runs: list[list[float]] = []
    for first, last in sorted((min(ts), max(ts)) for ts in spans.values()):
        if runs and first < runs[-1][1]:
            runs[-1][1] = max(runs[-1][1], last)
        else:
            runs.append([first, last])
    return [(a, b) for a, b in runs]


def rates(samples: list[Sample], start: float, end: float) -> dict[float, dict[str, tuple[float, float, float]]]:
    """Per sample time in the run: {worker name: (cores, minor faults per second, cores in the kernel)} since the
    previous sample."""
    by_pid: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        if start <= s.t <= end:
            by_pid[s.pid].append(s)
    sweep = sweep_starts(sorted(s.t for series in by_pid.values() for s in series))
    out: dict[float, dict[str, list[float]]] = defaultdict(lambda: defaultdict(lambda: [0.0, 0.0, 0.0]))
    for series in by_pid.values():
        for a, b in zip(series, series[1:]):
            key = sweep[b.t]
            acc = out[key][NAMES.get(b.name, b.name)]
            acc[0] += (b.ticks - a.ticks) / TICKS / (b.t - a.t)
            acc[1] += (b.minflt - a.minflt) / (b.t - a.t)
            acc[2] += (b.system_ticks - a.system_ticks) / TICKS / (b.t - a.t)
    return {t: {n: (v[0], v[1], v[2]) for n, v in names.items()} for t, names in out.items()}


def sweep_starts(times: list[float], gap_s: float = 2.0) -> dict[float, float]:
    """Each sample time -> the start of its sweep (one pass over the workers takes a second or two)."""
    starts, start, last = {}, None, None
    for t in times:
        if last is None or t - last > gap_s:
            start = t
        starts[t], last = start, t
    return starts


def busy_window(per_time: dict[float, dict[str, tuple[float, float, float]]]) -> list[float]:
    totals = {t: sum(v[0] for v in names.values()) for t, names in per_time.items()}
    peak = max(totals.values(), default=0.0)
    return sorted(t for t, total in totals.items() if total >= BUSY_SHARE * peak)


def summarise_run(samples: list[Sample], start: float, end: float, top: dict[float, dict[str, float]]) -> dict:
    per_time = rates(samples, start, end)
    window = busy_window(per_time)
    names = sorted({n for t in window for n in per_time[t]})

    def mean(name: str, field: int) -> float:
        return statistics.mean(per_time[t].get(name, (0.0, 0.0, 0.0))[field] for t in window)

    workers = {
        n: {
            "cores": round(mean(n, 0), 2),
            "kernel_cores": round(mean(n, 2), 2),
            "minor_faults_per_s": round(mean(n, 1)),
        }
        for n in names
    }
    host = [v for t, v in top.items() if window and window[0] - 3 <= t <= window[-1] + 3]
    return {
        "busy_window_s": round(window[-1] - window[0], 1) if window else 0.0,
        "samples": len(window),
        "ray_worker_cores": round(sum(w["cores"] for w in workers.values()), 2),
        "workers": dict(sorted(workers.items(), key=lambda kv: -kv[1]["cores"])),
        "host_cpu_percent_median": {k: round(statistics.median(h[k] for h in host), 1) for k in host[0]}
        if host
        else None,
    }


def read_top(path: Path | None) -> dict[str, dict[str, float]]:
    """top's wall clock ("HH:MM:SS") of each sample -> its %Cpu(s) line's fields."""
    if path is None:
        return {}
    out = {}
    for block in path.read_text().split("top - ")[1:]:
        clock = block.split()[0]
        cpu = next((line for line in block.splitlines() if line.startswith("%Cpu")), "")
        fields = {k: float(v) for v, k in re.findall(r"([\d.]+) (us|sy|ni|id|wa|hi|si|st)", cpu)}
        out[clock] = fields
    return out


def align_top(top: dict[str, dict[str, float]], samples: list[Sample]) -> dict[float, dict[str, float]]:
    """top prints a wall clock; place it on the proc samples' epoch seconds (same host, same day)."""
    if not top or not samples:
        return {}
    day = dt.datetime.fromtimestamp(samples[0].t, dt.UTC).date()
    placed = {}
    for clock, fields in top.items():
        h, m, s = map(int, clock.split(":"))
        placed[dt.datetime(day.year, day.month, day.day, h, m, s, tzinfo=dt.UTC).timestamp()] = fields
    return placed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("proc", type=Path)
    ap.add_argument("--top", type=Path)
    ap.add_argument("--output")
    args = ap.parse_args()
    samples = read_samples(args.proc)
    top = align_top(read_top(args.top), samples)
    result = {
        "source": args.proc.name,
        "busy_share": BUSY_SHARE,
        "runs": [summarise_run(samples, a, b, top) for a, b in runs_of(samples)],
    }
    emit_json(result, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
