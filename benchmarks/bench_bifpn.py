"""One BiFPN step: our Triton kernel (model/bifpn_kernel.py) against the same step in PyTorch ops compiled by
inductor, the way the model runs it (issue 23).

Per level of base at 512x512 (256 channels), batch 64, bf16, channels_last: the top-down step (the coarser level
upsampled) and the bottom-up step (the finer level averaged), the kernel over six launch settings; the default
checked against the compiled ops' output first (max |difference|, bf16 rounding), every setting against the
default.

    python3 benchmarks/bench_bifpn.py --output h200-kernels-base-512-b64-bifpn.json
"""

from __future__ import annotations

import argparse

import torch

from bench_kernels import time_us
from peaknet_pipeline.bench import emit_json
from peaknet_pipeline.model import bifpn_kernel as bk
from peaknet_pipeline.model import fused_ops
from peaknet_pipeline.model.bifpn import FUSION_EPS, conv_block, plain_step

SIDES = (128, 64, 32, 16)  # the BiFPN's levels at 512x512


# (BLOCK_M, BLOCK_K, warps, stages): the default, and settings with two programs per SM (registers and shared
# memory as compiled for sm_90 by tests/hopper_compile.py), or more rows per program
TUNES = ((64, 32, 8, 3), (64, 64, 8, 3), (64, 64, 8, 2), (32, 32, 4, 3), (32, 64, 4, 2), (128, 32, 8, 3))


def tunes() -> list[dict]:
    return [{"BLOCK_M": m, "BLOCK_K": k, "num_warps": w, "num_stages": s} for m, k, w, s in TUNES]


def step_case(batch: int, side: int, channels: int, resample: int) -> dict:
    conv = conv_block(channels).cuda().to(torch.bfloat16).to(memory_format=torch.channels_last).eval()
    other_side = side // 2 if resample == bk.UP else 2 * side

    def level(s: int) -> torch.Tensor:
        x = torch.randn(batch, channels, s, s, device="cuda", dtype=torch.bfloat16)
        return x.to(memory_format=torch.channels_last)

    p, m, other = level(side), (level(side) if resample == bk.DOWN else None), level(other_side)
    weights = torch.tensor([0.7, 0.0 if m is None else 0.5, 0.9], device="cuda", dtype=torch.bfloat16)
    compiled = torch.compile(lambda: plain_step(conv, p, m, other, weights))
    with torch.inference_mode():
        args = fused_ops.bifpn_step_args(conv, p, m, other, resample, weights, FUSION_EPS)
        default = bk.bifpn_step(*args).float()  # the kernel as the model runs it
        diff = (default - fused_ops.nhwc(compiled()).float()).abs().max().item()
        rows = [{"tune": {}, "us": time_us(compiled)}]  # the compiled PyTorch ops first
        rows += [timed(args, tune, default) for tune in tunes()]
    ok = [r for r in rows[1:] if "us" in r]
    best = min(ok, key=lambda r: r["us"]) if ok else None
    name = "up" if resample == bk.UP else "down"
    return {"side": side, "resample": name, "max_abs_diff": diff, "compiled_ops_us": rows[0]["us"], "best": best,
            "all": rows[1:]}  # fmt: skip


def timed(args: tuple, tune: dict, default: torch.Tensor) -> dict:
    """The kernel's time at one launch setting, and its largest difference from the default setting's output."""
    try:
        diff = (bk.bifpn_step(*args, tune=tune).float() - default).abs().max().item()
        return {"tune": tune, "us": time_us(lambda: bk.bifpn_step(*args, tune=tune)), "diff_from_default": diff}
    except Exception as exc:  # a setting the GPU cannot launch (shared memory) is skipped, not fatal
        return {"tune": tune, "error": f"{type(exc).__name__}: {str(exc)[:120]}"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--channels", type=int, default=256)
    ap.add_argument("--output")
    args = ap.parse_args()
    cases = []
    for side in SIDES:
        for resample in (bk.UP,) if side == SIDES[0] else (bk.DOWN,) if side == SIDES[-1] else (bk.UP, bk.DOWN):
            cases.append(step_case(args.batch, side, args.channels, resample))
            c = cases[-1]
            print(side, c["resample"], c["compiled_ops_us"], c["best"], round(c["max_abs_diff"], 4), flush=True)
    emit_json({"gpu": torch.cuda.get_device_name(), "batch": args.batch, "cases": cases}, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
