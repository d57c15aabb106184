"""The fused ConvNeXtV2-block kernels against the PyTorch ops they replace, per backbone stage, on one GPU.

    python3 benchmarks/bench_kernels.py --batch 32 --size 512 --output kernels.json

For each stage of the base model (channels, H*W) it times, in bf16 with CUDA events: Linear + GELU + GRN's
norm against `linear(gelu_sumsq)`; the per-frame baddbmm + residual add against `linear(residual, a_scale)`;
each kernel under a few launch settings, so the defaults in triton_kernels.py come from data. `--sweep` names
the kernels whose settings are swept (the others run their defaults).
"""

from __future__ import annotations

import argparse
import itertools
import sys

import torch
import torch.nn.functional as F

from peaknet_pipeline.bench import emit_json
from peaknet_pipeline.model import triton_kernels as tk

STAGES = ((96, 4), (192, 8), (384, 16), (768, 32))  # base: channels, stride


def time_us(fn, reps: int = 20) -> float:
    for _ in range(3):
        fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    end.synchronize()
    return round(start.elapsed_time(end) * 1000 / reps, 1)


def sweep(run, tunes: list[dict]) -> dict:
    rows = []
    for tune in tunes:
        try:
            rows.append({"tune": tune, "us": time_us(lambda t=tune: run(t))})
        except Exception as exc:  # a setting the GPU cannot launch (shared memory) is skipped, not fatal
            rows.append({"tune": tune, "error": f"{type(exc).__name__}: {str(exc)[:120]}"})
    ok = [r for r in rows if "us" in r]
    return {"default_us": ok[0]["us"] if ok else None, "best": min(ok, key=lambda r: r["us"]) if ok else None,
            "all": rows}  # fmt: skip


def stage(
    batch: int, size: int, c: int, stride: int, swept: set[str], row_tiles: tuple[int, ...], tma: bool | None,
    only: list[str] | None = None,
) -> dict:  # fmt: skip
    h = w = size // stride
    hw, dev, bf = h * w, "cuda", torch.bfloat16
    x = torch.randn(batch, c, h, w, device=dev, dtype=bf).to(memory_format=torch.channels_last)
    dw_w, dw_b = torch.randn(c, 1, 7, 7, device=dev, dtype=bf) * 0.1, torch.randn(c, device=dev, dtype=bf)
    w1, b1 = torch.randn(4 * c, c, device=dev, dtype=bf) * 0.05, torch.zeros(4 * c, device=dev, dtype=bf)
    w2 = torch.randn(c, 4 * c, device=dev, dtype=bf) * 0.05
    s2 = torch.rand(batch, 4 * c, device=dev) + 0.5  # GRN's per-frame scale
    w2_frames = (w2 * s2[:, None, :]).to(bf)
    b2 = torch.zeros(c, device=dev, dtype=bf)
    x_nhwc = x.permute(0, 2, 3, 1)
    y = F.layer_norm(F.conv2d(x, dw_w, dw_b, padding=3, groups=c).permute(0, 2, 3, 1), (c,)).reshape(-1, c)
    a = tk.linear(y, w1, b1, hw, gelu_sumsq=True)[0]
    res = x_nhwc.reshape(-1, c)

    def ref_pw1():
        g = F.gelu(F.linear(y, w1, b1))
        return g, torch.linalg.vector_norm(g.view(batch, hw, -1), dim=1)

    def ref_pw2():
        return torch.baddbmm(b2, a.view(batch, hw, -1), w2_frames.transpose(1, 2)).view(-1, c) + res

    gemm_tunes = [{}] + [
        {"BLOCK_M": m, "BLOCK_N": n, "BLOCK_K": k, "num_warps": nw, "num_stages": ns}
        for m, n, k, nw, ns in itertools.product(row_tiles, (64, 128, 256), (32, 64), (4, 8), (3, 4))
        if hw % m == 0
    ]

    kernels = {  # name: (PyTorch reference, kernel under a launch setting, settings)
        "linear_gelu_sumsq": (
            ref_pw1,
            lambda t: tk.linear(y, w1, b1, hw, gelu_sumsq=True, tune=t, tma=tma),
            gemm_tunes,
        ),
        "linear_residual": (
            ref_pw2,
            lambda t: tk.linear(a, w2, b2, hw, residual=res, a_scale=s2, tune=t, tma=tma),
            gemm_tunes,
        ),
    }
    result = {"channels": c, "hw": [h, w], "batch": batch}
    for name, (ref, run, settings) in ((k, v) for k, v in kernels.items() if not only or k in only):
        result[name] = {"reference_us": time_us(ref), **sweep(run, settings if name in swept else [{}])}
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--output")
    ap.add_argument("--sweep", nargs="*", default=["linear_gelu_sumsq", "linear_residual"])
    ap.add_argument("--stages", nargs="*", type=int, default=[c for c, _ in STAGES], help="by channels")
    ap.add_argument("--row-tiles", nargs="*", type=int, default=[tk.ROW_BLOCKS[0]], help="BLOCK_M values swept")
    ap.add_argument("--kernels", nargs="*", help="the kernels to time (default: all)")
    loads = "per-thread loads, as the compiled model runs the kernels (default: TMA where the GPU has it)"
    ap.add_argument("--loads", action="store_true", help=loads)
    args = ap.parse_args()
    torch.backends.cudnn.benchmark = True
    stages = []
    with torch.inference_mode():
        for c, stride in (s for s in STAGES if s[0] in args.stages):
            stages.append(stage(args.batch, args.size, c, stride, set(args.sweep), tuple(args.row_tiles),
                                False if args.loads else None, args.kernels))  # fmt: skip
            s = stages[-1]
            print(c, {k: (s[k]["reference_us"], s[k]["default_us"], s[k]["best"]) for k in list(s)[3:]}, flush=True)
    emit_json({"gpu": torch.cuda.get_device_name(), "size": args.size, "stages": stages}, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
