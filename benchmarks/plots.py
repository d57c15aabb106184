"""The pictures in docs/performance.md, from the JSON that the benchmarks write.

    R=benchmarks/results
    python3 benchmarks/plots.py --sweep $R/h100-model-erf.jsonl \
        --e2e $R/h200-e2e-base-512-b64-lifecycle.json $R/h200-e2e-base-512-images-shm.json \
              $R/h100-e2e-base-1920.json $R/h100-e2e-base-1920-images-writers-6.json $R/h100-e2e-673m-512.json \
        --scaling $R/h200x2-e2e-base-512-infer-peaks.json $R/h200x4-e2e-base-512-gpus-1.json \
                  $R/h200x4-e2e-base-512-gpus-2-images-w6.json $R/h200x4-e2e-base-512-gpus-4-infer.json \
                  $R/h200x4-e2e-base-512-gpus-4-w6.json $R/h200x4-e2e-base-512-gpus-4-images-w8.json \
                  $R/h200x2-e2e-base-512-gpus-2-images-w4-uint16.json \
                  $R/h200x4h-e2e-base-512-gpus-4-infer-images-w8-store-48g-prefault-uint16-mapped-at-start.json \
        --trace $R/h100-trace-summary.json --samples $R/h100-memory-samples.jsonl --out docs/img

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
from results_index import override  # noqa: E402

COLOURS = {"compute": "tab:blue", "h2d": "tab:orange", "d2h": "tab:green", "d2d": "tab:gray"}


def throughput_vs_batch(sweep: list[dict], out: Path) -> None:
    """Model-only frames/s of base 1x512x512 against batch size (bench_model.py output), one per batch."""
    points = sorted(
        (int(o.split("=")[1]), r["frames_per_s"])
        for r in sweep
        if r["variant"].startswith("base-512-b")
        for o in r["overrides"]
        if o.startswith("data.batch_size=")
    )
    modes = {o.split("=")[1] for r in sweep for o in r["overrides"] if o.startswith("inference.compile_mode=")}
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
    card = sweep[0]["gpu"].removeprefix("NVIDIA ").split(" 80GB")[0]
    ax.set_title(f"base 1x512x512, bf16, compile {'/'.join(sorted(modes))} ({card})", fontsize=10)
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
        if r.get("cxi_output", "").startswith("/"):
            knobs.append(f"CXI on {r['cxi_output']}")
        if knobs:
            first["label"] += f" | {'/'.join(r['runs'])}: {', '.join(knobs)}"
    return list(merged.values())


def pipeline_vs_model(results: list[dict], out: Path) -> None:
    """(a) model only against (b) inference stage and (c) full pipeline, per model (bench_pipeline.py)."""
    results = merge_by_model(results)
    labels = [r["label"] for r in results]
    series = [("model only", [r["model_only"]["frames_per_s"] for r in results])]
    for run in ("infer", "peaks", "images"):
        series.append((RUN_LABELS[run], [r["runs"].get(run, {}).get("end_to_end_frames_per_s") for r in results]))
    fig, axes = plt.subplots(1, len(results), figsize=(4 * len(results), 4))
    for i, ax in enumerate(axes if len(results) > 1 else [axes]):
        values = [vals[i] or 0 for _, vals in series]
        ax.bar(range(len(series)), values, color=["tab:gray", "tab:blue", "tab:green", "tab:orange"])
        for x, v in enumerate(values):
            text = f"{v:,.0f}" if v else "not run"
            ax.annotate(text, (x, v), textcoords="offset points", xytext=(0, 3), ha="center", fontsize=8)
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
    preset = override(r, "model.peaknet.preset") or "base"
    card = (r["machine"].get("gpu") or "CPU").removeprefix("NVIDIA ").split(" 80GB")[0]
    return f"{preset} {shape} b{r['batch_size']} ({card})"


def scaling(results: list[dict], out: Path) -> None:
    """Each run's frames/s against the number of GPUs (bench_pipeline.py --gpus), with N x model only."""
    by_run: dict[str, dict[int, float]] = {}
    alone = {}
    for r in results:
        gpus = r.get("gpus", 1)
        alone[gpus] = r["model_only"]["frames_per_s"] * gpus
        dtype = override(r, "data.dtype") or "float32"
        for run, v in r["runs"].items():
            if v.get("end_to_end_frames_per_s"):
                label = RUN_LABELS[run] + ("" if dtype == "float32" else f", {dtype} frames")
                by_run.setdefault(label, {})[gpus] = v["end_to_end_frames_per_s"]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(sorted(alone), [alone[g] for g in sorted(alone)], "k--", label="N x model only")
    for i, (run, points) in enumerate(by_run.items()):
        gs = sorted(points)
        ax.plot(gs, [points[g] for g in gs], "o-", label=run)
        for g in gs:
            ax.annotate(f"{points[g]:,.0f}", (g, points[g]), textcoords="offset points", xytext=(8, 6 - 10 * i),
                        fontsize=8)  # fmt: skip
    ax.set_xticks(sorted(alone))
    ax.set_xlabel("GPUs (one inference actor each)")
    ax.set_ylabel("frames/s")
    ax.set_ylim(0, max(alone.values()) * 1.1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    cards = sorted({label_of(r).split("(")[1][:-1] for r in results})
    hosts = sorted({r["machine"]["cpus"] for r in results if r["machine"].get("cpus")})
    cores = f", hosts of {' and '.join(map(str, hosts))} cores" if hosts else ""
    ax.set_title(f"base 1x512x512 b64, trained, CXI on /dev/shm\n{', '.join(cards)}{cores}", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "scaling-with-gpus.png", dpi=120)


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
    ap.add_argument("--scaling", nargs="*", default=[], help="bench_pipeline.py outputs at 1, 2, ... GPUs")
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
    if args.scaling:
        scaling([json.loads(Path(p).read_text()) for p in args.scaling], out)
    if args.trace:
        timeline(json.loads(Path(args.trace).read_text()), out)
    if args.samples:
        memory(load_samples(args.samples), out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
