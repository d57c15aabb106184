"""The head's 3x3 convs (256 -> 256 channels): cuDNN against our implicit GEMM (model/conv3x3_kernel.py) in bf16
and FP8, with the plain GEMM of the same shape (bf16 by cuBLAS, FP8 by torch._scaled_mm) as the ceiling an
implicit GEMM could reach (issue 23).

Per head resolution of a 512x512 frame at batch 64: each of our variants is checked against cuDNN's output
first (max |difference| relative to cuDNN's largest output), and the per-frame FP8 quantisation is timed
apart (eager; compiled, it fuses with the kernel that makes the conv's input).

    python3 benchmarks/bench_head_conv.py --output h200-kernels-base-512-b64-head-conv.json
"""

from __future__ import annotations

import argparse
import itertools
import json

import torch
import torch.nn.functional as F

from bench_kernels import time_us
from peaknet_pipeline.bench import keep_json
from peaknet_pipeline.model import conv3x3_kernel as ck

LEVELS = (4, 8, 16, 32)  # the head's strides; 256 channels in and out at each


def tunes() -> list[dict]:
    """Launch settings to try besides the rule: the sweep that chose it (h200-kernels-base-512-b64-head-conv.json)
    ran four tiles, four warps too; 256-wide tiles with 64-wide K and 8 warps won everywhere."""
    tiles = ((128, 256), (64, 256), (128, 128))
    combos = itertools.product(tiles, (64, 128), (8,), (3, 4))
    return [
        {"BLOCK_M": m, "BLOCK_N": n, "BLOCK_K": k, "num_warps": nw, "num_stages": ns} for (m, n), k, nw, ns in combos
    ]


def sweep(run, ref: torch.Tensor, quick: bool) -> list[dict]:
    rows = []
    scale = float(ref.abs().max())
    for tune in [{}] + ([] if quick else tunes()):
        entry = {"tune": tune}
        try:
            entry["rel_err"] = float((run(tune).float() - ref).abs().max()) / scale
            entry["us"] = time_us(lambda tune=tune: run(tune))
        except Exception as exc:  # a setting the compiler refuses is reported, not fatal
            entry["error"] = f"{type(exc).__name__}: {str(exc)[:160]}"
        rows.append(entry)
    return rows


def level_row(batch: int, size: int, stride: int, quick: bool, channels: int = 256) -> dict:
    h = size // stride
    x = torch.randn(batch, channels, h, h, device="cuda", dtype=torch.bfloat16).contiguous(
        memory_format=torch.channels_last
    )
    weight = torch.randn(channels, channels, 3, 3, device="cuda", dtype=torch.bfloat16) * 0.03
    bias = torch.randn(channels, device="cuda", dtype=torch.bfloat16)
    torch.backends.cudnn.benchmark = True
    ref = F.conv2d(x, weight, bias, padding=1).permute(0, 2, 3, 1).float()
    nhwc = x.permute(0, 2, 3, 1)
    wg = ck.weights_as_gemm(weight)
    wq, ws = ck.quantize_weights(wg)
    xq, xs = ck.quantize_frames(nhwc)
    m, k = batch * h * h, 9 * channels
    a, b = torch.randn(m, k, device="cuda", dtype=torch.bfloat16), wg.t()
    a8, one = a.to(torch.float8_e4m3fn), torch.ones((), device="cuda")
    row = {
        "stride": stride,
        "hw": h,
        "gflop": round(2 * m * k * channels / 1e9, 1),
        "cudnn_us": time_us(lambda: F.conv2d(x, weight, bias, padding=1)),
        "cublas_gemm_bf16_us": time_us(lambda: a @ b),
        "scaled_mm_fp8_us": time_us(lambda: torch._scaled_mm(a8, wq.t(), one, one, out_dtype=torch.bfloat16)),
        "quantize_frames_us": time_us(lambda: ck.quantize_frames(nhwc)),
        "frame_scales_us": time_us(lambda: ck.frame_scales(nhwc)),
        "bf16": sweep(lambda t: ck.conv3x3(nhwc, wg, bias, torch.bfloat16, tune=t), ref, quick),
        # e4m3 input from quantize_frames, or bf16 input quantised by the kernel tile by tile
        "fp8": sweep(lambda t: ck.conv3x3(xq, wq, bias, torch.bfloat16, xs, ws, tune=t), ref, quick),
        "fp8_inline": sweep(lambda t: ck.conv3x3(nhwc, wq, bias, torch.bfloat16, xs, ws, tune=t), ref, quick),
    }
    for kind in ("bf16", "fp8", "fp8_inline"):
        timed = [e for e in row[kind] if "us" in e]
        row[f"{kind}_best"] = min(timed, key=lambda e: e["us"]) if timed else None
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--quick", action="store_true", help="the launch rule only, no sweep")
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    result = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "batch": args.batch, "levels": []}
    for stride in LEVELS:
        row = level_row(args.batch, args.size, stride, args.quick)
        result["levels"].append(row)
        keep_json(result, args.output)
        short = {k: v for k, v in row.items() if not isinstance(v, list)}
        print(json.dumps(short), flush=True)


if __name__ == "__main__":
    main()
