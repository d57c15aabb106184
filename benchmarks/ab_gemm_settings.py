"""The ConvNeXt GEMM kernels' variants in the whole model: model-only frames/s at the gpu-512 settings,
alternating, in one process on one card.

    python3 benchmarks/ab_gemm_settings.py --arms tma-inline loads --output h200-model-gemm-tma.json
    python3 benchmarks/ab_gemm_settings.py --arms loads rule --output h100-model-gemm-settings.json

Arms:
- `loads`: the model as it runs, the kernels with per-thread loads at their measured launch settings
  (triton_kernels.MEASURED) behind the registered ops of fused_ops.py;
- `rule`: the same with the rule's launch settings alone (this arm and `loads` were called "rule" and
  "measured" in h100-model-gemm-settings.json);
- `tma-inline`, `loads-inline`: the two GEMMs launched straight from the block's forward instead of through the
  registered ops, with TMA or with per-thread loads. Dynamo traces such launches itself and captures their
  tensor descriptors, which the registered ops' tracing does not (torch 2.11 and 2.13: "TMA descriptor
  capturing not yet supported in non-dynamo tracing"), so this is how the TMA kernel can run compiled;
  `loads-inline` separates what launching inline changes from what TMA does.
The arm `tma-device` of h200-model-gemm-tma.json ran the TMA kernel with its descriptors made on the device,
measured slower and removed (commit cf3d7b0 has it).
"""

from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager

import torch
import torch._inductor.config as inductor_config

from peaknet_pipeline.bench import emit_json, model_only
from peaknet_pipeline.config_sources import load_config
from peaknet_pipeline.model import fused_ops
from peaknet_pipeline.model import triton_kernels as tk

ARMS = ("loads", "rule", "tma-inline", "loads-inline")


def inline_ops(tma: bool):
    """fused_ops' two registered ops as plain functions that launch the kernels directly."""

    def gelu_sumsq(a, weight, bias, hw):
        return tk.linear(a, weight, bias, hw, gelu_sumsq=True, tma=tma)

    def scaled_residual(a, a_scale, weight, bias, residual, hw):
        return tk.linear(a, weight, bias, hw, residual=residual, a_scale=a_scale, tma=tma)[0]

    return gelu_sumsq, scaled_residual


@contextmanager
def arm(label: str):
    """The kernels' settings and launch path of one arm, restored afterwards."""
    measured = dict(tk.MEASURED)
    ops = fused_ops.linear_gelu_sumsq, fused_ops.linear_scaled_residual
    if label == "rule":
        tk.MEASURED.clear()
    if label.endswith("-inline"):
        fused_ops.linear_gelu_sumsq, fused_ops.linear_scaled_residual = inline_ops(tma=label == "tma-inline")
    try:
        yield
    finally:
        tk.MEASURED.update(measured)
        fused_ops.linear_gelu_sumsq, fused_ops.linear_scaled_residual = ops


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="examples/configs/gpu-512.yaml")
    ap.add_argument("--arms", nargs="+", choices=ARMS, default=["tma-inline", "loads"])
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--output")
    args = ap.parse_args()
    # Each compile must trace the kernels under the settings in force, not reuse a cached graph.
    inductor_config.fx_graph_cache = False
    cfg = load_config(args.config)
    runs = []
    for label in args.arms * args.rounds:
        with arm(label):
            torch._dynamo.reset()
            runs.append({"launch_settings": label, **model_only(cfg, args.iters)})
        print(runs[-1], file=sys.stderr)
    emit_json({"gpu": torch.cuda.get_device_name(), "config": args.config, "runs": runs}, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
