"""Write benchmarks/results/README.md (an index of every result file) and the README's "Current numbers"
table, both from the result files themselves.

    python3 benchmarks/results_index.py           # after adding or replacing a result
    python3 benchmarks/results_index.py --check   # exit 1 when either is stale (the tests do this)

benchmarks/results/ holds the latest result of each measurement; older runs live in git history. A file
says what it measured: its shape (which benchmark wrote it) is recognised below, and its card comes from
its own machine/gpu/device field or, failing that, its name prefix.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

from peaknet_pipeline.generated import between_markers, stale, write_or_check  # noqa: F401 (stale: tests)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
INDEX = RESULTS / "README.md"
README = ROOT / "README.md"
TABLE_START = "<!-- current numbers: benchmarks/results_index.py -->"
TABLE_END = "<!-- end of current numbers -->"
CARDS = {
    "h100": "H100",
    "h100x2": "2 x H100",
    "h200": "H200",
    "h200x2": "2 x H200",
    "h200x4": "4 x H200",
    "h200x4b": "4 x H200 (a second host)",
    "h200x4c": "4 x H200 (a third host)",
    "h200x4d": "4 x H200 (a fourth host)",
    "h200x4e": "4 x H200 (a fifth host)",
    "h200x4f": "4 x H200 (a sixth host)",
    "h200x4g": "4 x H200 (a seventh host)",
    "h200x4h": "4 x H200 (an eighth host)",
    "local": "CPU (2 cores)",
}


def load(path: Path) -> dict | list:
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return json.loads(path.read_text())


def card(path: Path, data: object) -> str:
    if isinstance(data, dict):
        for where in (data.get("machine", {}).get("gpu") if isinstance(data.get("machine"), dict) else None,
                      data.get("gpu"), data.get("device")):  # fmt: skip
            if isinstance(where, str) and where.startswith("NVIDIA"):
                return where.removeprefix("NVIDIA ").split(" 80GB")[0]
    return CARDS.get(path.name.split("-", 1)[0], "?")


def ratio(run: dict | None) -> str:
    if not run or run.get("end_to_end_frames_per_s") is None:
        return ""
    return f"{run['end_to_end_frames_per_s']:,.0f} ({run['ratio_to_model_only']:.2f})"


def override(data: dict, key: str) -> str | None:
    """The value a run set for `key` with --set, if it did."""
    values = [item.split("=", 1)[1] for item in data.get("overrides", []) if item.startswith(key + "=")]
    return values[-1] if values else None


def shape_text(data: dict) -> str:
    where = f", CXI on {data['cxi_output']}" if str(data.get("cxi_output", "")).startswith("/") else ""
    gpus = f" on {data['gpus']} GPUs (ratios to {data['gpus']}x model alone)" if data.get("gpus", 1) > 1 else ""
    dtype = override(data, "data.dtype")
    frames = f" {dtype} frames" if dtype not in (None, "float32") else ""
    writers = override(data, "writer.num_actors")
    per_gpu = " per GPU" if data.get("gpus", 1) > 1 else ""
    writing = f", {writers} writers{per_gpu}" if writers and where else ""
    store_mb = override(data, "ray.object_store_memory_mb")
    store = f", object store {int(store_mb) // 1024} GiB" if store_mb else ""
    store += ", store prefaulted" if override(data, "ray.prefault_store") == "true" else ""
    return "x".join(map(str, data["frame_shape"])) + f" b{data['batch_size']}{frames}{gpus}{where}{writing}{store}"


def preset(data: dict) -> str:
    """The model the run measured, with its precision where that is not the configs' bf16."""
    name = data.get("preset")
    name = override(data, "model.peaknet.preset") or name
    if name is None and data.get("config"):  # runs that recorded only their config file name it there
        config = ROOT / data["config"]
        model = yaml.safe_load(config.read_text()).get("model", {}) if config.exists() else {}
        name = model.get("peaknet", {}).get("preset")
    if name is None:
        name = "threshold" if "threshold" in json.dumps(data.get("model", "")) else "base"
    return name + (f" {data['precision']}" if data.get("precision", "bf16") != "bf16" else "")


def weights(data: dict) -> str:
    trained = any(o.startswith("model.peaknet.weights=") and not o.endswith("=null") for o in data.get("overrides", []))
    return "trained" if trained else "random"


def describe_pipeline(data: dict) -> str:
    runs = data["runs"]
    parts = [f"model only {data['model_only']['frames_per_s']:,.0f} frames/s"]
    parts += [f"{name} {ratio(run)}" for name, run in runs.items() if isinstance(run, dict)]
    return f"{preset(data)} {shape_text(data)}, {weights(data)} weights: " + ", ".join(parts)


def describe_model_sweep(rows: list[dict]) -> str:
    best = max(rows, key=lambda r: r.get("frames_per_s") or 0)
    return f"{len(rows)} variants; best {best['variant']} {best['frames_per_s']:,.1f} frames/s"


# (recognises a result, describes it in one line): the first that matches wins.
KINDS: list[tuple[str, Callable[[object], bool], Callable[[object], str]]] = [
    (
        "pipeline (bench_pipeline.py)",
        lambda d: isinstance(d, dict) and "runs" in d and "model_only" in d and isinstance(d["runs"], dict),
        describe_pipeline,
    ),  # fmt: skip
    ("model only (bench_model.py)", lambda d: isinstance(d, list) and d and "variant" in d[0], describe_model_sweep),
    (
        "model only (bench_pipeline.py --runs)",
        lambda d: isinstance(d, dict) and set(d) == {"config", "model_only"},
        lambda d: f"{d['config']}: {d['model_only']['frames_per_s']} frames/s",
    ),  # fmt: skip
    (
        "samples over a run (output.samples)",
        lambda d: isinstance(d, list) and d and "t_s" in d[0],
        lambda d: f"{len(d)} samples over {d[-1]['t_s']:.0f} s: RSS per actor, object store",
    ),  # fmt: skip
    (
        "profile (profile_model.py)",
        lambda d: isinstance(d, dict) and "by_kind" in d,
        lambda d: f"{d['ms_per_iter']} ms per batch of {d['batch_size']}, by kernel kind",
    ),  # fmt: skip
    (
        "layer groups (profile_groups.py)",
        lambda d: isinstance(d, dict) and "groups_ms_per_batch" in d,
        lambda d: (
            f"{d['sum_of_groups_ms']} ms per batch of {d['batch_size']} over "
            f"{len(d['groups_ms_per_batch'])} groups; whole model {d.get('whole_model_ms_per_batch')} ms"
        ),
    ),  # fmt: skip
    (
        "model only, GEMM launch settings A/B (ab_gemm_settings.py)",
        lambda d: isinstance(d, dict) and isinstance(d.get("runs"), list) and "launch_settings" in d["runs"][0],
        lambda d: ", ".join(f"{r['launch_settings']} {r['frames_per_s']:,.0f}" for r in d["runs"]),
    ),  # fmt: skip
    (
        "model only, rewrites of parts A/B (ab_model_variants.py)",
        lambda d: isinstance(d, dict) and isinstance(d.get("runs"), list) and "variant" in d["runs"][0],
        lambda d: ", ".join(f"{r['variant']} {r['frames_per_s']:,.0f}" for r in d["runs"]),
    ),  # fmt: skip
    (
        "kernels (bench_kernels.py, bench_gemm_epilogue.py, bench_gemm_tma.py, bench_dwconv.py)",
        lambda d: isinstance(d, dict) and "stages" in d and "gpu" in d,
        lambda d: f"per ConvNeXt stage at {d['size']}, microseconds per kernel",
    ),  # fmt: skip
    (
        "kernels, the head's 3x3 convs (bench_head_conv.py, commit 4063c46)",
        lambda d: isinstance(d, dict) and "levels" in d and "gpu" in d,
        lambda d: (
            ", ".join(
                f"1/{r['stride']}: cuDNN {r['cudnn_us']:,.0f}, "
                + ", ".join(
                    f"{k} {r[k + '_best']['us']:,.0f}" for k in ("bf16", "fp8", "fp8_inline") if r.get(k + "_best")
                )
                for r in d["levels"]
            )
            + " us per conv, b"
            + str(d["batch"])
        ),
    ),  # fmt: skip
    (
        "kernels against inductor's compiled ops (bench_bifpn.py, bench_stem.py)",
        lambda d: isinstance(d, dict) and d.get("cases") and "compiled_ops_us" in d["cases"][0],
        lambda d: (
            ", ".join(
                f"{c['side']}{' ' + c['resample'] if 'resample' in c else ''}: ops {c['compiled_ops_us']:,.0f}, "
                f"kernel {c['best']['us']:,.0f}"
                for c in d["cases"]
            )
            + " us"
        ),
    ),  # fmt: skip
    (
        "the head compiled per variant, its kernels per launch setting (bench_head.py)",
        lambda d: isinstance(d, dict) and isinstance(d.get("variants"), dict) and "kernel" in d,
        lambda d: (
            "head ms per batch: "
            + ", ".join(f"{name} {v['ms_per_batch']}" for name, v in d["variants"].items())
            + f"; both kernels eager, default launch {d['kernel'][1]['us']:,.0f} us"
        ),
    ),  # fmt: skip
    (
        "peak finding and writing (bench_peaks.py)",
        lambda d: isinstance(d, dict) and "cases" in d,
        lambda d: f"{len(d['cases'])} cases, frames/s per core and writer MB/s",
    ),  # fmt: skip
    (
        "socket ingest (bench_ingest.py)",
        lambda d: isinstance(d, dict) and "rows" in d,
        lambda d: f"{len(d['rows'])} rows, receive + decode frames/s",
    ),  # fmt: skip
    (
        "queue (bench_queue.py)",
        lambda d: isinstance(d, dict) and "batch_shape" in d,
        lambda d: ", ".join(f"by_ref={r['by_ref']} {r['frames_per_s']:,.0f} frames/s" for r in d["runs"]),
    ),  # fmt: skip
    (
        "queue scaling (bench_queue.py --scaling)",
        lambda d: isinstance(d, dict) and "scaling" in d and "cpus" in d,
        lambda d: ", ".join(f"{r['shards']} shards {r['records_per_s']:,.0f} records/s" for r in d["scaling"]),
    ),  # fmt: skip
    (
        "queue under backpressure (bench_queue.py --backpressure)",
        lambda d: isinstance(d, dict) and "backpressure_runs" in d,
        lambda d: ", ".join(f"{r['shard_calls_per_record']} shard calls per record" for r in d["backpressure_runs"]),
    ),  # fmt: skip
    (
        "object store puts by round (bench_store.py)",
        lambda d: isinstance(d, dict) and "held" in d and "batch_bytes" in d,
        lambda d: "; ".join(
            f"{r['store_mb']:,} MB store{' preallocated' if r.get('preallocated') else ''}"
            f"{' prefaulted' if r.get('populated') else ''}: faults per page "
            f"{r['rounds'][0]['faults_per_page_put']} -> "
            f"{r['rounds'][-1]['faults_per_page_put']}, "
            f"{r['rounds'][0]['GB_per_s']} -> {r['rounds'][-1]['GB_per_s']} GB/s"
            for r in d["runs"]
        ),
    ),  # fmt: skip
    (
        "object store populated by processes at once (bench_store.py --race)",
        lambda d: isinstance(d, dict) and "race" in d,
        lambda d: (
            f"{d['processes']} processes, {d['store_mb']:,} MB: "
            + ", ".join(f"{r['start']} {r['wall_s']} s" for r in d["race"])
        ),
    ),  # fmt: skip
    (
        "memory over a run (analyze_samples.py)",
        lambda d: isinstance(d, dict) and "worst_rss_slope_mib_per_min" in d,
        lambda d: f"{d['duration_s']:.0f} s, worst RSS slope {d['worst_rss_slope_mib_per_min']} MiB/min",
    ),  # fmt: skip
    (
        "GPU timeline (analyze_trace.py)",
        lambda d: isinstance(d, dict) and "busy_fraction" in d,
        lambda d: f"GPU busy {d['busy_fraction']}, H2D overlapped {d['h2d_overlapped']}",
    ),  # fmt: skip
    (
        "py-spy (analyze_pyspy.py)",
        lambda d: isinstance(d, dict) and "threads" in d,
        lambda d: f"{len(d['threads'])} threads sampled",
    ),  # fmt: skip
    (
        "CPU per worker kind (analyze_proc.py)",
        lambda d: isinstance(d, dict) and "busy_share" in d,
        lambda d: "; ".join(
            f"Ray workers {r['ray_worker_cores']} cores, host idle {r['host_cpu_percent_median']['id']}% "
            f"steal {r['host_cpu_percent_median']['st']}%"
            for r in d["runs"]
        ),
    ),  # fmt: skip
    (
        "peak-level accuracy per precision (bench_accuracy.py)",
        lambda d: isinstance(d, dict) and "modes" in d and "reference" in d,
        lambda d: ", ".join(f"{m} F1 {r['f1']} IoU {r['mask_iou_vs_fp32']}" for m, r in d["modes"].items()),
    ),  # fmt: skip
    (
        "training (train_synthetic.py)",
        lambda d: isinstance(d, dict) and "loss_every" in d,
        lambda d: f"{d['steps']} steps, pixel precision {d['pixel_precision']}, recall {d['pixel_recall']}",
    ),  # fmt: skip
    (
        "run report (--report)",
        lambda d: isinstance(d, dict) and "stages" in d and "command" in d,
        lambda d: f"{d['command']} in {d['wall_s']} s, accounted {d.get('accounted')}",
    ),  # fmt: skip
]


def classify(path: Path) -> tuple[str, str]:
    if path.suffix not in (".json", ".jsonl"):
        return "raw output", path.suffix
    data = load(path)
    for kind, matches, describe in KINDS:
        if matches(data):
            return kind, describe(data)
    return "other", ", ".join(list(data)[:6]) if isinstance(data, dict) else ""


def result_files() -> list[Path]:
    return sorted(p for p in RESULTS.iterdir() if p.is_file() and p.name != "README.md")


def index() -> str:
    lines = [
        "# Benchmark results",
        "",
        "Generated by `python3 benchmarks/results_index.py` from the files here: the latest result of each",
        "measurement (older runs are in git history). How each was run and what it shows: docs/performance.md.",
        "",
        "| file | card | kind | what it holds |",
        "|---|---|---|---|",
    ]
    for path in result_files():
        kind, what = classify(path)
        data = load(path) if path.suffix in (".json", ".jsonl") else None
        lines.append(f"| `{path.name}` | {card(path, data)} | {kind} | {what} |")
    return "\n".join(lines) + "\n"


def current_table() -> str:
    """One row per pipeline result: the model alone and each pipeline mode, on the card it ran on."""
    lines = [
        "| card | model, frames, batch | weights | model alone | inference stage | + peaks-only CXI | + images CXI "
        "| file |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    for path in result_files():
        data = load(path) if path.suffix == ".json" else None
        if not (isinstance(data, dict) and isinstance(data.get("runs"), dict) and "model_only" in data):
            continue
        runs = data["runs"]
        cells = [ratio(runs.get(name)) for name in ("infer", "peaks", "images")]
        model = f"{data['model_only']['frames_per_s']:,.0f}"
        lines.append(f"| {card(path, data)} | {preset(data)} {shape_text(data)} | {weights(data)} | {model} | "
                     f"{' | '.join(cells)} | "
                     f"`{path.name}` |")  # fmt: skip
    return "\n".join(lines)


def readme() -> str:
    return between_markers(README.read_text(), TABLE_START, TABLE_END, current_table())


def wanted() -> dict[Path, str]:
    return {INDEX: index(), README: readme()}


def main() -> int:
    return write_or_check(__doc__, wanted, "python3 benchmarks/results_index.py")


if __name__ == "__main__":
    sys.exit(main())
