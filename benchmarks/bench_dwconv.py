"""The ConvNeXt blocks' depthwise 7x7 conv: our Triton kernel (model/dwconv_kernel.py) against cuDNN (issue 23).

Per base-model stage at 512x512, batch 64, bf16: cuDNN on the channels_last tensor the model holds (what the
model runs today), cuDNN on a contiguous NCHW copy (for reference), and the kernel over a few launch settings,
each checked against cuDNN's output first (max |difference|, bf16 rounding).

    python3 benchmarks/bench_dwconv.py --output h200-kernels-base-512-b64-dwconv.json
"""

from __future__ import annotations

import argparse
import itertools
import json

import torch
import torch.nn.functional as F

from bench_kernels import time_us
from peaknet_pipeline.model.dwconv_kernel import _dwconv7_kernel, dwconv7, grid, launch_settings

STAGES = ((96, 4), (192, 8), (384, 16), (768, 32))  # channels, downsampling of the 512x512 frame


def tunes(h: int) -> list[dict]:
    """Launch settings to try: 4-pixel strips per program (one per warp, or two), rows per program, warps
    (BLOCK_C 32: one channel per thread)."""
    combos = itertools.product((1, 2), (32, 64, 128), (2, 4, 8))
    return [{"BLOCK_S": s * nw, "BLOCK_H": bh, "BLOCK_C": 32, "num_warps": nw} for s, bh, nw in combos if bh <= h]


def registers(nhwc, weight, bias, tune: dict) -> dict:
    """Registers and spills per thread of the kernel compiled with these settings."""
    n, h, w, c = nhwc.shape
    k = _dwconv7_kernel[grid(n, h, w, c, tune)](nhwc, weight, bias, torch.empty_like(nhwc), h, w, c, **tune)
    return {"n_regs": getattr(k, "n_regs", None), "n_spills": getattr(k, "n_spills", None)}


def autotuned(fn) -> float:
    """fn's time with cuDNN choosing among its algorithms by timing them (as ModelRunner sets it)."""
    torch.backends.cudnn.benchmark = True
    try:
        return time_us(fn)
    finally:
        torch.backends.cudnn.benchmark = False


def stage_row(batch: int, size: int, channels: int, down: int) -> dict:
    h = size // down
    x = torch.randn(batch, channels, h, h, device="cuda", dtype=torch.bfloat16)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    weight = torch.randn(channels, 1, 7, 7, device="cuda", dtype=torch.bfloat16) * 0.1
    bias = torch.randn(channels, device="cuda", dtype=torch.bfloat16)
    ref = F.conv2d(x_cl, weight, bias, padding=3, groups=channels)
    nhwc = x_cl.permute(0, 2, 3, 1)  # dense NHWC view of the channels_last tensor: no copy
    row = {
        "channels": channels,
        "hw": h,
        "cudnn_channels_last_us": time_us(lambda: F.conv2d(x_cl, weight, bias, padding=3, groups=channels)),
        "cudnn_nchw_us": time_us(lambda: F.conv2d(x, weight, bias, padding=3, groups=channels)),
        "cudnn_channels_last_autotuned_us": autotuned(lambda: F.conv2d(x_cl, weight, bias, padding=3, groups=channels)),
        "default_settings": launch_settings(h, h, channels),
        "sweep": [],
    }
    ref_nhwc = ref.permute(0, 2, 3, 1).float()
    for tune in [{}] + tunes(h):
        entry = {"tune": tune}
        try:
            out = dwconv7(nhwc, weight, bias, tune=tune)
            entry["max_abs_diff"] = float((out.float() - ref_nhwc).abs().max())
            entry["us"] = time_us(lambda tune=tune: dwconv7(nhwc, weight, bias, tune=tune))
            entry.update(registers(nhwc, weight, bias, {**launch_settings(h, h, channels), **tune}))
        except Exception as exc:  # a setting the compiler refuses is reported, not fatal
            entry["error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
        row["sweep"].append(entry)
    timed = [e for e in row["sweep"] if "us" in e]
    row["best"] = min(timed, key=lambda e: e["us"]) if timed else None
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    result = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "batch": args.batch, "size": args.size}
    result["stages"] = []
    for channels, down in STAGES:
        row = stage_row(args.batch, args.size, channels, down)
        result["stages"].append(row)
        best = row["best"] or {}
        cudnn = {k: v for k, v in row.items() if k.startswith("cudnn")}
        print(
            channels,
            cudnn,
            "ours default",
            row["sweep"][0].get("us"),
            "best",
            best.get("us"),
            best.get("tune"),
            flush=True,
        )
    with open(args.output, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
