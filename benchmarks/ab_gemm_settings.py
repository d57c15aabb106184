"""The ConvNeXt GEMM kernels' variants in the whole model: model-only frames/s at the gpu-512 settings,
alternating, in one process on one card.

    python3 benchmarks/ab_gemm_settings.py --arms tma loads --output h200-model-gemm-tma.json
    python3 benchmarks/ab_gemm_settings.py --arms loads rule --output h100-model-gemm-settings.json

Arms: `tma`, the kernel whose tiles move by the copy engine (triton_kernels.USE_TMA, Hopper on); `loads`, the
kernel with per-thread loads at its measured launch settings (triton_kernels.MEASURED); `rule`, the same with
the rule's settings alone. The second command's arms were called "measured" and "rule" in its result file.
"""

from __future__ import annotations

import argparse
import sys

import torch
import torch._inductor.config as inductor_config

from peaknet_pipeline.bench import emit_json, model_only
from peaknet_pipeline.config_sources import load_config
from peaknet_pipeline.model import triton_kernels as tk

ARMS = {"tma": (True, True), "loads": (False, True), "rule": (False, False)}  # USE_TMA, MEASURED kept


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="examples/configs/gpu-512.yaml")
    ap.add_argument("--arms", nargs="+", choices=list(ARMS), default=["tma", "loads"])
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--output")
    args = ap.parse_args()
    # Each compile must trace the kernels under the settings in force, not reuse a cached graph.
    inductor_config.fx_graph_cache = False
    cfg = load_config(args.config)
    measured, use_tma, runs = dict(tk.MEASURED), tk.USE_TMA, []
    for label in args.arms * args.rounds:
        tk.USE_TMA, keep = ARMS[label]
        tk.MEASURED.clear()
        tk.MEASURED.update(measured if keep else {})
        torch._dynamo.reset()
        runs.append({"launch_settings": label, **model_only(cfg, args.iters)})
        print(runs[-1], file=sys.stderr)
    tk.MEASURED.update(measured)
    tk.USE_TMA = use_tma
    emit_json({"gpu": torch.cuda.get_device_name(), "config": args.config, "runs": runs}, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
