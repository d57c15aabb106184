"""The head (segmentation_logits) with its laterals' GroupNorm-GELU-projection by head_kernel.py against inductor's
ops, on the features the config's model makes of random frames (issue 23).

    python3 benchmarks/bench_head.py --config examples/configs/gpu-512.yaml --output h200-head-base-512.json

Per variant (inductor: no lateral by the kernels; finest: the finest lateral; all: every lateral): the compiled
head's time per batch in the config's compile mode, and its top kernels from a profile compiled in inductor's
default mode. Then the kernels alone (statistics and projection, eager) on the finest lateral's conv output and on
the three coarser ones summed, at a few launch settings.
"""

from __future__ import annotations

import argparse

import torch

from bench_kernels import time_us
from peaknet_pipeline.bench import emit_json
from peaknet_pipeline.cli import add_config_args, config_from_args
from peaknet_pipeline.inference.engine import resolve_device
from peaknet_pipeline.model import fused_ops
from peaknet_pipeline.model import head_kernel as hk
from profile_groups import compiled, groups, prepared, profile_groups, run_once, time_groups

VARIANTS = {"inductor": (), "finest": (0,), "all": (0, 1, 2, 3)}  # laterals by the kernels
TUNES = ({}, {"BLOCK_P": 32, "num_warps": 4}, {"BLOCK_P": 64, "num_warps": 16}, {"BLOCK_P": 128, "num_warps": 8},
         {"BLOCK_P": 128, "num_warps": 16}, {"BLOCK_P": 128, "num_warps": 32}, {"BLOCK_P": 256, "num_warps": 16},
         {"BLOCK_P": 256, "num_warps": 32})  # fmt: skip


def variant_rows(seg, head, features, spec, iters: int, top: int) -> dict:
    # profile_groups' helpers pass a carry and read its device: the first level stands in, the step reads them all
    step, carry = ("head", lambda _: head[1](features)), features[0]
    rows = {}
    for name, by_kernel in VARIANTS.items():
        for i, lateral in enumerate(seg.model.seg_lateral_layers):
            lateral.by_kernel = i in by_kernel
        torch._dynamo.reset()
        ms = time_groups(compiled([step], spec, spec.compile_mode), carry, iters, 5)["head"]
        torch._dynamo.reset()
        kernels = profile_groups(compiled([step], spec, "default"), carry, iters, top)["head"]
        rows[name] = {"ms_per_batch": ms, "profile": kernels}
        print(name, ms, kernels["ms_per_batch"], flush=True)
    return rows


@torch.inference_mode()
def kernel_rows(seg, features, levels: list[int]) -> list[dict]:
    """The projection kernel (and the statistics before it) alone, on the conv outputs of the laterals `levels`
    (summed), at each launch setting in TUNES."""
    laterals, segmask = seg.model.seg_lateral_layers, seg.model.head_segmask
    lasts = [laterals[i].last_sublayer(features[i]) for i in levels]
    ys = fused_ops.head_conv_outputs(lasts)
    convs, norms = [sub[0] for _, sub in lasts], [sub[1] for _, sub in lasts]
    args = (ys, [c.bias for c in convs], norms[0].num_groups, [n.weight for n in norms], [n.bias for n in norms],
            [n.eps for n in norms], segmask.weight, segmask.bias if levels == [0] else None)  # fmt: skip
    ref = hk.norm_gelu_project(*args)
    stats_us = time_us(lambda: [hk.group_stats(y, c.bias, norms[0].num_groups) for y, c in zip(ys, convs)])
    rows = [{"levels": levels, "stats_us": stats_us, "shape": list(ys[0].shape)}]
    for tune in TUNES:
        try:
            diff = (hk.norm_gelu_project(*args, tune=tune) - ref).abs().max().item()
            us = time_us(lambda t=tune: hk.norm_gelu_project(*args, tune=t))
            rows.append({"tune": tune, "us": us, "diff": diff})
        except Exception as e:  # a setting that does not compile (registers, shared memory) is a result too
            rows.append({"tune": tune, "error": str(e)[:200]})
        print(levels, rows[-1], flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(ap, config_required=True)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--output")
    args = ap.parse_args()
    cfg = config_from_args(args)
    device = torch.device(resolve_device(cfg.inference.device))
    seg, dtype, spec = prepared(cfg, device)
    steps = groups(seg, dtype)
    with torch.inference_mode():
        features = run_once(steps[:-1], torch.rand((spec.batch_size, *spec.frame_shape), device=device))
    result = {
        "gpu": torch.cuda.get_device_name(),
        "config": args.config,
        "overrides": args.overrides,
        "variants": variant_rows(seg, steps[-1], features, spec, args.iters, args.top),
        "kernel": kernel_rows(seg, features, [0]),
        "kernel_coarse": kernel_rows(seg, features, [1, 2, 3]),
    }
    emit_json(result, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
