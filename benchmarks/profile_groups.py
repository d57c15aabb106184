"""Where PeakNet's time goes by layer group: the stem, the four backbone stages, the BiFPN (with the 1x1 convs
that feed it) and the head.

    python3 benchmarks/profile_groups.py --config examples/configs/gpu-512.yaml --iters 30 --output groups.json

Each group is compiled on its own in the config's mode (precision, memory format, fused kernels as the
pipeline runs them) and timed with CUDA events around it, batches resident on the device. Compiled apart, no
kernel spans two groups, so the sum of the groups can exceed the whole model's time (also measured, unless
--no-whole). A second pass compiles the groups in --profile-mode (default `default`: kernels launched one by
one, which the torch profiler attributes to the group that launched them) and lists each group's top kernels.
On a CPU the same runs with CPU times (how the tests check it).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from peaknet_pipeline.bench import emit_json, model_only, sync
from peaknet_pipeline.cli import add_config_args, config_from_args
from peaknet_pipeline.inference.engine import ModelRunner, class_ids, compile_options, resolve_device, spec_from_config
from peaknet_pipeline.inference.models import build_model
from peaknet_pipeline.model.head import segmentation_logits
from peaknet_pipeline.model.segmenter import Segmenter

Step = Callable[[object], object]


def groups(seg: Segmenter, dtype: torch.dtype) -> list[tuple[str, Step]]:
    """(name, step) in the model's order; each step takes what the one before returned. The frames are
    taken at the model's size, so the segmenter's crop is the identity and left out."""
    net = seg.model
    backbone = net.backbone

    def stem(frames):
        x, _ = seg.prepare(frames.to(dtype))
        return backbone.embeddings(x), ()

    def stage(i: int) -> Step:
        def run(carry):
            x, outputs = carry
            x = backbone.encoder.stages[i](x)
            return x, (*outputs, backbone.hidden_states_norms[f"stage{i + 1}"](x))

        return run

    def bifpn(carry):
        return net.bifpn(*net.bifpn.adapted(net.backbone_to_bifpn, list(carry[1])))

    def head(features):
        logits = segmentation_logits(features, net.seg_lateral_layers, net.head_segmask, net.head_upsample_layer)
        return class_ids(logits)

    stages = [(f"backbone stage {i + 1}", stage(i)) for i in range(len(backbone.encoder.stages))]
    return [("stem", stem), *stages, ("bifpn", bifpn), ("head", head)]


def prepared(cfg, device: torch.device) -> tuple[Segmenter, torch.dtype, object]:
    """The model as ModelRunner leaves it before compiling (cast, memory format, fused kernels), the input
    dtype, and the engine spec."""
    model, _ = build_model(cfg.model)
    spec = spec_from_config(cfg, cfg.data.frame_shape)
    runner = ModelRunner(model, replace(spec, compile_mode="none"), device)
    return runner.model, runner.input_dtype, spec


def compiled(steps: list[tuple[str, Step]], spec, mode: str) -> list[tuple[str, Step]]:
    if mode == "none":
        return steps
    options = compile_options(replace(spec, compile_mode=mode))
    return [(name, torch.compile(step, options=options)) for name, step in steps]


def run_once(steps: list[tuple[str, Step]], x: torch.Tensor, marks: list | None = None, label: bool = False):
    carry = x
    for name, step in steps:
        if label:
            with record_function(f"group: {name}"):
                carry = step(carry)
        else:
            carry = step(carry)
        if marks is not None:
            marks.append(mark(x.device))
    return carry


def mark(device: torch.device):
    if device.type == "cuda":
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event
    return time.perf_counter()


def elapsed_ms(a, b) -> float:
    return a.elapsed_time(b) if isinstance(a, torch.cuda.Event) else (b - a) * 1e3


@torch.inference_mode()
def time_groups(steps, x: torch.Tensor, iters: int, warmup: int) -> dict[str, float]:
    """Median ms per batch of each group."""
    graphs = x.device.type == "cuda"
    for _ in range(warmup):
        if graphs:
            torch.compiler.cudagraph_mark_step_begin()
        run_once(steps, x)
    samples = defaultdict(list)
    for _ in range(iters):
        if graphs:
            torch.compiler.cudagraph_mark_step_begin()
        marks = [mark(x.device)]
        run_once(steps, x, marks)
        sync(x.device)
        for (name, _), a, b in zip(steps, marks, marks[1:]):
            samples[name].append(elapsed_ms(a, b))
    return {name: round(statistics.median(ms), 3) for name, ms in samples.items()}


def kernels_under(event) -> list:
    found = list(event.kernels)
    for child in event.cpu_children:
        found += kernels_under(child)
    return found


@torch.inference_mode()
def profile_groups(steps, x: torch.Tensor, iters: int, top: int) -> dict[str, dict]:
    """Per group: device (or CPU) time per batch from the profiler, and its top kernels."""
    gpu = x.device.type == "cuda"
    for _ in range(3):
        run_once(steps, x)
    sync(x.device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if gpu else [])
    with profile(activities=activities) as prof:
        for _ in range(iters):
            run_once(steps, x, label=True)
        sync(x.device)
    tables: dict[str, dict] = {}
    for event in prof.events():
        if not event.name.startswith("group: "):
            continue
        name = event.name.removeprefix("group: ")
        table = tables.setdefault(name, {"us": 0.0, "kernels": defaultdict(float)})
        if gpu:
            for kernel in kernels_under(event):
                table["us"] += kernel.duration
                table["kernels"][kernel.name[:140]] += kernel.duration
        else:
            table["us"] += event.cpu_time_total
    out = {}
    for name, table in tables.items():
        ranked = sorted(table["kernels"].items(), key=lambda kv: -kv[1])[:top]
        out[name] = {
            "ms_per_batch": round(table["us"] / iters / 1e3, 3),
            "top_kernels": [{"name": k, "us_per_batch": round(us / iters, 1)} for k, us in ranked],
        }
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(ap, config_required=True)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--top", type=int, default=6, help="kernels listed per group")
    ap.add_argument("--profile-mode", default="default", help="compile mode of the profiler pass; none skips it")
    ap.add_argument("--no-whole", action="store_true", help="skip the whole model's time")
    ap.add_argument("--output")
    args = ap.parse_args()
    cfg = config_from_args(args)
    device = torch.device(resolve_device(cfg.inference.device))
    seg, dtype, spec = prepared(cfg, device)
    x = torch.rand((spec.batch_size, *spec.frame_shape), device=device)
    steps = groups(seg, dtype)
    timed = time_groups(compiled(steps, spec, spec.compile_mode), x, args.iters, max(3, cfg.inference.warmup_iters))
    result = {
        "config": args.config,
        "overrides": args.overrides,
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "batch_size": spec.batch_size,
        "frame_shape": list(spec.frame_shape),
        "compile_mode": spec.compile_mode,
        "fused_kernels": spec.fused_kernels,
        "groups_ms_per_batch": timed,
        "sum_of_groups_ms": round(sum(timed.values()), 3),
    }
    if not args.no_whole:
        whole = model_only(cfg, iters=args.iters)
        result["whole_model_frames_per_s"] = whole["frames_per_s"]
        result["whole_model_ms_per_batch"] = round(spec.batch_size / whole["frames_per_s"] * 1e3, 3)
    if args.profile_mode != "none":
        torch._dynamo.reset()
        result["profile_mode"] = args.profile_mode
        result["profile"] = profile_groups(compiled(steps, spec, args.profile_mode), x, args.iters, args.top)
    emit_json(result, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
