"""The pictures in docs/performance.md, from the JSON that the benchmarks write.

    python3 benchmarks/plots.py --sweep benchmarks/results/h100-model-sweep.jsonl \
        --e2e benchmarks/results/h100-e2e-{base-512,base-1920,673m-512}.json \
        --trace benchmarks/results/h100-trace-summary.json \
        --samples benchmarks/results/h100-memory-samples.jsonl --out docs/img

Needs matplotlib (pip install matplotlib); nothing else in peaknet does.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from analyze_samples import MIB, load_samples  # noqa: E402

COLOURS = {"compute": "tab:blue", "h2d": "tab:orange", "d2h": "tab:green", "d2d": "tab:gray"}


def throughput_vs_batch(sweep: list[dict], out: Path) -> None:
    """Model-only frames/s of the compiled default variants against batch size (bench_model.py output)."""
    points = sorted(
        (int(o.split("=")[1]), r["frames_per_s"])
        for r in sweep
        if r["variant"].startswith("base-512-") and r["variant"].endswith("-default")
        for o in r["overrides"]
        if o.startswith("data.batch_size=")
    )
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([b for b, _ in points], [f for _, f in points], "o-")
    for b, f in points:
        ax.annotate(f"{f:,.0f}", (b, f), textcoords="offset points", xytext=(0, 6), ha="center")
    ax.set_xscale("log", base=2)
    ax.set_xticks([b for b, _ in points], [str(b) for b, _ in points])
    ax.set_xlabel("batch size")
    ax.set_ylabel("frames/s (model only, on GPU)")
    ax.set_ylim(0, max(f for _, f in points) * 1.15)
    ax.grid(alpha=0.3)
    ax.set_title(f"PeakNet base 1x512x512, bf16, compile default ({sweep[0]['gpu']})")
    fig.tight_layout()
    fig.savefig(out / "throughput-vs-batch.png", dpi=120)


def merge_by_model(results: list[dict]) -> list[dict]:
    """One result per model and shape; a later file's runs replace an earlier one's (a re-run of one case
    with a changed knob, e.g. more writers), and the knob is named in the picture."""
    merged: dict[str, dict] = {}
    for r in results:
        label = label_of(r)
        if label not in merged:
            merged[label] = {**r, "runs": dict(r["runs"]), "label": label}
            continue
        first = merged[label]
        first["runs"].update(r["runs"])
        knobs = [o for o in r["overrides"] if o not in first["overrides"] and "weights" not in o]
        first["label"] += f" | {'/'.join(r['runs'])}: {', '.join(knobs)}"
    return list(merged.values())


def pipeline_vs_model(results: list[dict], out: Path) -> None:
    """(a) model only against (b) inference stage and (c) full pipeline, per model (bench_pipeline.py)."""
    results = merge_by_model(results)
    labels = [r["label"] for r in results]
    series = [("model only", [r["model_only"]["frames_per_s"] for r in results])]
    for run in ("infer", "peaks", "images"):
        series.append((RUN_LABELS[run], [r["runs"].get(run, {}).get("end_to_end_frames_per_s") or 0 for r in results]))
    fig, axes = plt.subplots(1, len(results), figsize=(4 * len(results), 4))
    for i, ax in enumerate(axes if len(results) > 1 else [axes]):
        values = [vals[i] for _, vals in series]
        ax.bar(range(len(series)), values, color=["tab:gray", "tab:blue", "tab:green", "tab:orange"])
        for x, v in enumerate(values):
            ax.annotate(f"{v:,.0f}", (x, v), textcoords="offset points", xytext=(0, 3), ha="center", fontsize=8)
        ax.axhline(0.9 * values[0], color="r", ls=":", lw=1)
        ax.set_xticks(range(len(series)), [name for name, _ in series], rotation=30, ha="right", fontsize=8)
        ax.set_title(labels[i], fontsize=9)
        ax.set_ylabel("frames/s")
    fig.suptitle("model only vs pipeline (red: 0.9 x model only)")
    fig.tight_layout()
    fig.savefig(out / "pipeline-vs-model.png", dpi=120)


RUN_LABELS = {"infer": "(b) infer -> Q2", "peaks": "(c) + peaks CXI", "images": "(c) + images CXI"}


def label_of(r: dict) -> str:
    shape = "x".join(str(d) for d in r["frame_shape"])
    preset = next((o.split("=")[1] for o in r["overrides"] if o.startswith("model.peaknet.preset=")), "base")
    return f"{preset} {shape} b{r['batch_size']}"


def timeline(summary: dict, out: Path, span_ms: float = 60.0) -> None:
    streams = sorted(summary["timeline"])
    fig, ax = plt.subplots(figsize=(10, 1 + 0.6 * len(streams)))
    for row, stream in enumerate(streams):
        for kind in COLOURS:
            bars = [(s, d) for s, d, k in summary["timeline"][stream] if k == kind and s < span_ms]
            if bars:
                ax.broken_barh(bars, (row - 0.35, 0.7), color=COLOURS[kind], label=kind)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), loc="upper right", ncols=len(unique))
    ax.set_yticks(range(len(streams)), [f"stream {s}" for s in streams])
    ax.set_xlim(0, span_ms)
    ax.set_xlabel("ms")
    ax.set_title(
        f"inference actor, GPU streams: busy {summary['busy_fraction']:.1%}, "
        f"H2D overlapped with compute {summary['h2d_overlapped']:.0%}"
    )
    fig.tight_layout()
    fig.savefig(out / "stream-timeline.png", dpi=120)


def memory(samples: list[dict], out: Path) -> None:
    fig, (ax_rss, ax_q) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    t = [s["t_s"] / 60 for s in samples]
    processes = sorted({p for s in samples for p in s["rss_bytes"]})
    for proc in processes:
        pts = [(s["t_s"] / 60, s["rss_bytes"][proc] / MIB) for s in samples if proc in s["rss_bytes"]]
        ax_rss.plot(*zip(*pts), label=proc, lw=1)
    ax_rss.plot(t, [s["object_store_bytes"] / MIB for s in samples], "k--", lw=1.5, label="object store")
    ax_rss.set_ylabel("MiB")
    ax_rss.set_title("resident memory per actor and object store use")
    ax_rss.legend(fontsize=6, ncols=3)
    for q in sorted(samples[-1]["queue_depth"]):
        ax_q.plot(t, [s["queue_depth"].get(q, 0) for s in samples], lw=1, label=q)
    limit = max(samples[-1]["queue_maxsize"].values())
    ax_q.axhline(limit, color="r", ls=":", label="shard limit")
    ax_q.set_ylabel("records in shard")
    ax_q.set_xlabel("minutes")
    ax_q.legend(fontsize=6, ncols=3)
    fig.tight_layout()
    fig.savefig(out / "memory-over-time.png", dpi=120)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sweep", help="bench_model.py JSON lines (model-only variants)")
    ap.add_argument("--e2e", nargs="*", default=[], help="bench_pipeline.py outputs; later ones override runs")
    ap.add_argument("--trace", help="analyze_trace.py output")
    ap.add_argument("--samples", help="output.samples JSON lines of a long run")
    ap.add_argument("--out", default="docs/img")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.sweep:
        throughput_vs_batch(load_samples(args.sweep), out)  # JSON lines, like the samples
    if args.e2e:
        pipeline_vs_model([json.loads(Path(p).read_text()) for p in args.e2e], out)
    if args.trace:
        timeline(json.loads(Path(args.trace).read_text()), out)
    if args.samples:
        memory(load_samples(args.samples), out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
