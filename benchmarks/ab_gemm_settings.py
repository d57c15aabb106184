"""The ConvNeXt GEMM kernels' variants in the whole model: model-only frames/s at the gpu-512 settings,
alternating, in one process on one card.

    python3 benchmarks/ab_gemm_settings.py --arms tma-inline loads --output h200-model-gemm-tma-inline.json
    python3 benchmarks/ab_gemm_settings.py --arms loads rule --output h100-model-gemm-settings.json

Arms:
- `tma-inline`: the model as it runs on Hopper: the GEMM kernels by TMA, launched straight from the block's
  forward (fused_ops.tma_inline), where dynamo captures their tensor descriptors;
- `loads`: the kernels with per-thread loads at their measured launch settings (triton_kernels.MEASURED),
  behind the registered ops of fused_ops.py, as the model runs on GPUs without the copy engine;
- `rule`: the same with the rule's launch settings alone (this arm and `loads` were called "rule" and
  "measured" in h100-model-gemm-settings.json).
The arm `tma-device` of h200-model-gemm-tma.json ran the TMA kernel with its descriptors made on the device,
measured slower and removed (commit cf3d7b0 has it); `loads-inline` (per-thread loads launched from the forward)
is in commit 9732b56.
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

ARMS = ("tma-inline", "loads", "rule")


@contextmanager
def arm(label: str):
    """The kernels' settings and launch path of one arm, restored afterwards."""
    measured = dict(tk.MEASURED)
    tma_inline = fused_ops.tma_inline
    if label != "tma-inline":
        fused_ops.tma_inline = lambda *tensors: False
    if label == "rule":
        tk.MEASURED.clear()
    try:
        yield
    finally:
        tk.MEASURED.update(measured)
        fused_ops.tma_inline = tma_inline


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
