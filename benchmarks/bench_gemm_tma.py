"""The ConvNeXt blocks' two GEMMs with Hopper's bulk tensor copies (TMA) instead of per-thread loads (issue 23).

triton_kernels.linear's TMA kernel (operand tiles, residual and output moved through tensor descriptors: the
copy engine fetches whole tiles into shared memory, zero-filled past the edges, and the output tile leaves by
one bulk store) timed per base-model stage at batch 64 over a few launch settings, next to its per-thread-load
kernel at that kernel's settings and cuBLAS's plain GEMM; each setting's output is compared with the
per-thread-load kernel's first. (`device_desc_*_us` in h200-kernels-base-512-b64-tma.json: the TMA kernel with
its descriptors made on the device, since removed; commit cf3d7b0 has it.)

    python3 benchmarks/bench_gemm_tma.py --output h200-kernels-base-512-b64-tma.json

Triton's warp specialisation (tl.range(warp_specialize=True)) is Blackwell-only in Triton 3.6, so it is not
among the variants.
"""

from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F
import triton

from bench_kernels import time_us
from peaknet_pipeline.model import triton_kernels as tk

STAGES = ((96, 4), (192, 8), (384, 16), (768, 32))  # channels, downsampling of the 512x512 frame
TILES = (  # BLOCK_M, BLOCK_N, BLOCK_K, num_warps, num_stages
    (128, 64, 32, 4, 3),
    (128, 64, 64, 4, 3),
    (128, 128, 32, 4, 3),
    (128, 128, 64, 4, 4),
    (128, 128, 64, 8, 3),
    (128, 256, 64, 8, 3),
    (64, 128, 64, 4, 4),
)


def tma_linear(a, w, bias, hw, tile, **kw):
    """triton_kernels.linear by TMA with the launch settings tile = (BLOCK_M, BLOCK_N, BLOCK_K, warps, stages)."""
    bm, bn, bk, warps, stages = tile
    tune = {"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk, "num_warps": warps, "num_stages": stages}
    return tk.linear(a, w, bias, hw, tma=True, tune=tune, **kw)


def compare(name: str, ref, fn) -> dict:
    """Time fn over the tiles; each tile's output checked against the per-thread-load kernel's (ref) first."""
    rows = {}
    for tile in TILES:
        key = "x".join(map(str, tile))
        try:
            out, sumsq = fn(tile)
            row = {"max_abs_diff": float((out.float() - ref[0].float()).abs().max())}
            if sumsq is not None:
                row["sumsq_max_rel_diff"] = float(((sumsq - ref[1]).abs() / ref[1].abs().clamp_min(1e-6)).max())
            row["us"] = time_us(lambda tile=tile: fn(tile))
        except Exception as exc:  # a tile the descriptors or the compiler refuse is reported, not fatal
            row = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
        rows[key] = row
    timed = {k: r["us"] for k, r in rows.items() if "us" in r}
    best = min(timed, key=timed.get) if timed else None
    return {f"{name}_tma": rows, f"{name}_tma_best": best, f"{name}_tma_best_us": timed.get(best)}


def stage(batch: int, size: int, c: int, stride: int) -> dict:
    bf, dev = torch.bfloat16, "cuda"
    hw = (size // stride) ** 2
    m = batch * hw
    y = torch.randn(m, c, device=dev, dtype=bf)
    w1, b1 = torch.randn(4 * c, c, device=dev, dtype=bf) * 0.05, torch.randn(4 * c, device=dev, dtype=bf) * 0.1
    w2, b2 = torch.randn(c, 4 * c, device=dev, dtype=bf) * 0.05, torch.randn(c, device=dev, dtype=bf) * 0.1
    s2 = torch.rand(batch, 4 * c, device=dev) + 0.5
    res = torch.randn(m, c, device=dev, dtype=bf)
    ref1 = tk.linear(y, w1, b1, hw, gelu_sumsq=True, tma=False)
    a = ref1[0]
    ref2 = tk.linear(a, w2, b2, hw, residual=res, a_scale=s2, tma=False)
    r = {"channels": c, "hw": hw, "rows": m}
    r["cublas_pw1_us"] = time_us(lambda: F.linear(y, w1, b1))
    r["cur_pw1_us"] = time_us(lambda: tk.linear(y, w1, b1, hw, gelu_sumsq=True, tma=False))
    r |= compare("pw1", ref1, lambda t: tma_linear(y, w1, b1, hw, t, gelu_sumsq=True))
    r["cublas_pw2_us"] = time_us(lambda: F.linear(a, w2, b2))
    r["cur_pw2_us"] = time_us(lambda: tk.linear(a, w2, b2, hw, residual=res, a_scale=s2, tma=False))
    r |= compare("pw2", ref2, lambda t: tma_linear(a, w2, b2, hw, t, residual=res, a_scale=s2))
    print(json.dumps({k: v for k, v in r.items() if not isinstance(v, dict)}), flush=True)
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--output", required=True)
    args = ap.parse_args()
    rows = [stage(args.batch, 512, c, stride) for c, stride in STAGES]
    result = {"gpu": torch.cuda.get_device_name(), "triton": triton.__version__, "torch": torch.__version__,
              "batch": args.batch, "size": 512, "stages": rows}  # fmt: skip
    with open(args.output, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
