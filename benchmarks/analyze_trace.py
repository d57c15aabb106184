"""Summarise a torch profiler Chrome trace of an inference actor: GPU busy fraction and copy/compute overlap.

    python3 benchmarks/analyze_trace.py peaknet-traces/infer-*.trace.json --output trace-summary.json

busy: union of all GPU work (kernels and copies, any stream) over the traced window.
h2d_overlapped: share of host-to-device copy time during which a kernel ran on another stream; near 1 means
the copies hide behind compute, near 0 means the GPU waits for them.
gaps: where the GPU ran dry (no kernel or copy on any stream for at least --min-gap-us), and what the host
was doing then: for each host thread, the innermost profiling range (`--enable-profiling` steps such as
stage_to_pinned, compute, wait_result, put_q2) open at the start of each gap, with the gap time summed
per range name (threads are counted separately, so the names can add up to more than the gaps).
The summary also keeps each stream's intervals for a short slice of the window, for the timeline plot.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path


def load_events(path: str) -> list[dict]:
    """Complete events of the trace: GPU work and the host's profiling ranges."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        trace = json.load(f)
    return [e for e in trace.get("traceEvents", []) if e.get("ph") == "X" and e.get("cat") in GPU_CATS | {HOST}]


GPU_CATS = {"kernel", "gpu_memcpy", "gpu_memset"}
HOST = "user_annotation"  # torch.profiler.record_function ranges


def kind_of(event: dict) -> str:
    name = event["name"]
    if event["cat"] != "gpu_memcpy":
        return "compute"
    return "h2d" if "HtoD" in name else "d2h" if "DtoH" in name else "d2d"


def merged(intervals: list[tuple[float, float]]) -> list[list[float]]:
    """The union of (start, end) intervals as disjoint [start, end] pieces, in order."""
    out: list[list[float]] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return out


def union_length(intervals: list[tuple[float, float]]) -> float:
    return sum(b - a for a, b in merged(intervals))


def overlap_with(intervals: list[tuple[float, float]], others: list[tuple[float, float]]) -> float:
    """Length of `intervals` covered by the union of `others` (both lists of (start, end))."""
    pieces = merged(others)
    covered = 0.0
    for a, b in intervals:
        for m0, m1 in pieces:
            if m0 >= b:
                break
            covered += max(0.0, min(b, m1) - max(a, m0))
    return covered


def idle_gaps(busy: list[tuple[float, float]], min_gap: float) -> list[tuple[float, float]]:
    """Intervals of at least min_gap between the busy intervals (inside the window they span)."""
    pieces = merged(busy)
    return [(p[1], q[0]) for p, q in zip(pieces, pieces[1:]) if q[0] - p[1] >= min_gap]


def range_name(name: str) -> str:
    """'batch 1234' -> 'batch': one row per step, not per batch."""
    head, _, tail = name.rpartition(" ")
    return head if head and tail.isdigit() else name


def host_during_gaps(gaps: list[tuple[float, float]], ranges: list[dict]) -> dict[str, float]:
    """Gap time (us) per innermost host range open at each gap's start, per thread."""
    by_thread: dict[object, list[dict]] = {}
    for r in ranges:
        by_thread.setdefault(r.get("tid"), []).append(r)
    totals: dict[str, float] = {}
    for a, b in gaps:
        for thread_ranges in by_thread.values():
            open_now = [r for r in thread_ranges if r["ts"] <= a < r["ts"] + r["dur"]]
            name = range_name(max(open_now, key=lambda r: r["ts"])["name"]) if open_now else "(no range)"
            totals[name] = totals.get(name, 0.0) + (b - a)
    return totals


def summarise(events: list[dict], slice_ms: float = 200.0, min_gap_us: float = 20.0) -> dict:
    ranges = [e for e in events if e.get("cat") == HOST]
    events = [e for e in events if e.get("cat") in GPU_CATS]
    if not events:
        raise ValueError("no GPU events in the trace: was it recorded with CUDA activity on a GPU?")
    spans = [(e["ts"], e["ts"] + e["dur"], kind_of(e), e["args"].get("stream")) for e in events]
    t0 = min(s[0] for s in spans)
    window = max(s[1] for s in spans) - t0
    by_kind = {k: [(a, b) for a, b, kind, _ in spans if kind == k] for k in ("compute", "h2d", "d2h", "d2d")}
    h2d_time = sum(b - a for a, b in by_kind["h2d"])
    streams: dict[str, list] = {}
    for a, b, kind, stream in spans:
        if a - t0 <= slice_ms * 1000:
            streams.setdefault(str(stream), []).append([round((a - t0) / 1000, 4), round((b - a) / 1000, 4), kind])
    return {
        "window_ms": round(window / 1000, 2),
        "busy_fraction": round(union_length([(a, b) for a, b, _, _ in spans]) / window, 4),
        "compute_fraction": round(union_length(by_kind["compute"]) / window, 4),
        "h2d_ms": round(h2d_time / 1000, 2),
        "h2d_overlapped": round(overlap_with(by_kind["h2d"], by_kind["compute"]) / h2d_time, 4) if h2d_time else None,
        "d2h_ms": round(sum(b - a for a, b in by_kind["d2h"]) / 1000, 2),
        "streams_used": sorted({str(s[3]) for s in spans}),
        "gaps": gap_summary(idle_gaps([(a, b) for a, b, _, _ in spans], min_gap_us), ranges, window, min_gap_us),
        "timeline_slice_ms": slice_ms,
        "timeline": streams,  # stream -> [[start_ms, duration_ms, kind], ...]
    }


def gap_summary(gaps: list[tuple[float, float]], ranges: list[dict], window: float, min_gap_us: float) -> dict:
    total = sum(b - a for a, b in gaps)
    host = host_during_gaps(gaps, ranges)
    return {
        "min_gap_us": min_gap_us,
        "count": len(gaps),
        "total_ms": round(total / 1000, 3),
        "share_of_window": round(total / window, 4),
        "host_range_ms": {k: round(v / 1000, 3) for k, v in sorted(host.items(), key=lambda kv: -kv[1])},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trace")
    ap.add_argument("--output")
    ap.add_argument("--min-gap-us", type=float, default=20.0, help="shorter idle spells are launch spacing")
    args = ap.parse_args()
    summary = summarise(load_events(args.trace), min_gap_us=args.min_gap_us)
    text = json.dumps(summary)
    if args.output:
        Path(args.output).write_text(text + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "timeline"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
