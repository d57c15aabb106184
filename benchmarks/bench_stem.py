"""The stem's Triton kernel (model/stem_kernel.py: 4x4 stride-4 patch embedding + LayerNorm, one pass) against
the Embeddings module's PyTorch ops (cuDNN's conv and LayerNorm) compiled by inductor, the way the model runs
them (issue 23).

Per frame size, batch 64 (8 at 1920), bf16, channels_last: the compiled ops, then the kernel at a few launch
settings, each checked against the compiled ops' output (max |difference|, bf16 rounding).

    python3 benchmarks/bench_stem.py --output h200-kernels-base-b64-stem.json
"""

from __future__ import annotations

import argparse

import torch

from bench_kernels import time_us
from peaknet_pipeline.bench import emit_json
from peaknet_pipeline.model import fused_ops
from peaknet_pipeline.model import stem_kernel as sk
from peaknet_pipeline.model.backbone import Embeddings

# (frame side, batch): base at 512 and at 1920
FRAMES = ((512, 64), (1920, 8))
TUNES = ({}, {"BLOCK_P": 32}, {"BLOCK_P": 128}, {"BLOCK_P": 128, "num_warps": 8}, {"BLOCK_P": 256, "num_warps": 8})


def case(side: int, batch: int, channels: int) -> dict:
    stem = Embeddings(1, channels).cuda().to(torch.bfloat16).to(memory_format=torch.channels_last).eval()
    x = torch.rand(batch, 1, side, side, device="cuda", dtype=torch.bfloat16)
    compiled = torch.compile(lambda: stem(x))
    conv, ln = stem.patch_embeddings, stem.layernorm
    args = (x, conv.weight, conv.bias, ln.weight, ln.bias, ln.eps)
    rows = []
    with torch.inference_mode():
        ref = fused_ops.nhwc(compiled()).float()
        ops_us = time_us(compiled)
        for tune in TUNES:
            diff = (sk.stem(*args, tune=tune).float() - ref).abs().max().item()
            rows.append({"tune": tune, "us": time_us(lambda t=tune: sk.stem(*args, tune=t)), "max_abs_diff": diff})
    best = min(rows, key=lambda r: r["us"])
    return {"side": side, "batch": batch, "channels": channels, "compiled_ops_us": ops_us, "best": best, "all": rows}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--channels", type=int, default=96)
    ap.add_argument("--output")
    args = ap.parse_args()
    cases = []
    for side, batch in FRAMES:
        cases.append(case(side, batch, args.channels))
        c = cases[-1]
        print(side, batch, c["compiled_ops_us"], c["best"], flush=True)
    emit_json({"gpu": torch.cuda.get_device_name(), "cases": cases}, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
