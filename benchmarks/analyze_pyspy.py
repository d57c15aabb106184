"""Where an actor's threads spend their time, from a py-spy speedscope recording.

    py-spy record --pid PID --rate 200 --nonblocking --threads --format speedscope --output rec.json
    python3 benchmarks/analyze_pyspy.py rec.json [--skip 0.5] [--top 8] [--output summary.json]

Without --idle py-spy keeps only samples of threads that are running, so the shares are of each thread's
working time. `--skip` drops the first share of each thread's samples (start-up, compile). Functions are
ranked by inclusive share; `self` is where the sampled stack ended. Stdlib only.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter


def frame_label(frame: dict) -> str:
    file = frame.get("file") or ""
    return f"{frame['name']} ({file.rsplit('/', 1)[-1]})" if file else frame["name"]


def thread_summary(profile: dict, frames: list[dict], skip: float, top: int) -> dict:
    samples = profile["samples"]
    window = samples[int(len(samples) * skip) :]
    inclusive: Counter = Counter()
    own: Counter = Counter()
    for stack in window:
        if not stack:
            continue
        own[frame_label(frames[stack[-1]])] += 1
        for index in set(stack):
            inclusive[frame_label(frames[index])] += 1
    n = max(1, len(window))
    return {
        "thread": profile["name"],
        "samples": len(window),
        "inclusive": {name: round(count / n, 3) for name, count in inclusive.most_common(top)},
        "self": {name: round(count / n, 3) for name, count in own.most_common(top)},
    }


def summarise(recording: dict, skip: float, top: int) -> dict:
    frames = recording["shared"]["frames"]
    threads = [thread_summary(p, frames, skip, top) for p in recording["profiles"]]
    threads.sort(key=lambda t: t["samples"], reverse=True)
    return {"skip": skip, "threads": threads}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("recording")
    ap.add_argument("--skip", type=float, default=0.5, help="share of each thread's first samples to drop")
    ap.add_argument("--top", type=int, default=8)
    ap.add_argument("--output")
    args = ap.parse_args()
    with open(args.recording) as f:
        summary = summarise(json.load(f), args.skip, args.top)
    text = json.dumps(summary, indent=2)
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
