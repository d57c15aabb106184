"""The ConvNeXt GEMM kernels' measured launch settings (triton_kernels.MEASURED) against the rule alone, in
the whole model: model-only frames/s at the gpu-512 settings, alternating, in one process on one card.

    python3 benchmarks/ab_gemm_settings.py --output h100-model-gemm-settings.json
"""

from __future__ import annotations

import argparse
import sys

import torch
import torch._inductor.config as inductor_config

from peaknet_pipeline.bench import emit_json, model_only
from peaknet_pipeline.config_sources import load_config
from peaknet_pipeline.model import triton_kernels as tk


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="examples/configs/gpu-512.yaml")
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--output")
    args = ap.parse_args()
    # Each compile must trace the kernels under the settings in force, not reuse a cached graph.
    inductor_config.fx_graph_cache = False
    cfg = load_config(args.config)
    measured, runs = dict(tk.MEASURED), []
    for label in ("measured", "rule") * args.rounds:
        tk.MEASURED.clear()
        tk.MEASURED.update(measured if label == "measured" else {})
        torch._dynamo.reset()
        runs.append({"launch_settings": label, **model_only(cfg, args.iters)})
    tk.MEASURED.update(measured)
    emit_json({"gpu": torch.cuda.get_device_name(), "config": args.config, "runs": runs}, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
