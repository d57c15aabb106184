"""Candidate rewrites of parts of the model, each against the model as it is: model-only frames/s at a config's
settings, alternating variants in one process on one card (issue 23). A variant swaps modules in a freshly
built model; numerics are checked against the plain model in eager mode before any timing.

    python3 benchmarks/ab_model_variants.py --variants plain stem-products dwconv-products --output F.json

- stem-products: the 4x4/4 patch embedding as sixteen products summed per output channel, which inductor
  fuses into one kernel with the LayerNorm after it (cuDNN's conv has one input channel: K of 16).
- dwconv-products: each ConvNeXt block's depthwise 7x7 as 49 shifted products summed in fp32, left to
  inductor to generate as one elementwise kernel over the NHWC tensor.
- stem-cudnn: the config as it is, but the stem by cuDNN's conv and inductor's LayerNorm instead of its kernel
  (stem_kernel.py, in fused_kernels all); the kernel has its own tests against the plain path.
- head-inductor: the same for the head's laterals after their last conv (GroupNorm, GELU, their sum and the class
  projection by inductor instead of head_kernel.py).
- tanh-kernel: the config as it is, but GELU's tanh form (base's default) in our GEMM kernel's epilogue with GRN's
  sums of squares, instead of cuBLASLt's bias-GELU epilogue and inductor's pass for the sums
  (fused_ops.TANH_KERNEL_MODES, which no mode includes until measured).
- bifpn-bias: the config as it is, and the backbone adapters' 1x1 convs without their bias, which the BiFPN's
  first step kernels add as they read them (fused_ops.BIFPN_BIAS_MODES, which no mode includes until measured).
- fused-<mode>: the config with model.peaknet.fused_kernels=<mode> (fused_ops.MODES; fused-blocks against
  fused-all measures the BiFPN step's kernel); its kernels have their own tests against the plain path, so no
  check here.
- KEY=VALUE: the config with that one setting changed (inference.precision=fp8).

The output file is rewritten after every run, so a run cut short by a time limit keeps what it measured.
"""

from __future__ import annotations

import argparse
import sys

import torch
import torch._inductor.config as inductor_config
import torch.nn.functional as F
from torch import nn

from peaknet_pipeline.bench import emit_json, keep_json, model_only
from peaknet_pipeline.config_sources import load_config
from peaknet_pipeline.inference.models import build_model
from peaknet_pipeline.model.backbone import ConvNeXtV2Block, Embeddings
from peaknet_pipeline.model.bifpn import BiFPN
from peaknet_pipeline.model.head import SegLateral


class ProductsConv(nn.Module):
    """conv (stride 1 depthwise with padding k//2, or kernel = stride patchify) as a sum of products over its
    taps, in fp32 on the NHWC view; the conv itself where not compiling (eager would allocate every product)."""

    def __init__(self, conv: nn.Conv2d, eager: bool = False):
        super().__init__()
        self.conv = conv
        self.eager = eager  # the products in eager mode too (the numerics check, on small frames)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.eager or torch.compiler.is_compiling()):
            return self.conv(x)
        if self.conv.groups > 1:
            return depthwise_by_products(x, self.conv)
        return patchify_by_products(x, self.conv)


def depthwise_by_products(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    k = conv.kernel_size[0]
    n, c, h, w = x.shape
    xp = F.pad(x.permute(0, 2, 3, 1), (0, 0, k // 2, k // 2, k // 2, k // 2))
    taps = conv.weight.view(c, k * k).t().float()
    acc = conv.bias.float()
    for dy in range(k):
        for dx in range(k):
            acc = acc + xp[:, dy : dy + h, dx : dx + w, :].float() * taps[dy * k + dx]
    return acc.to(x.dtype).permute(0, 3, 1, 2)


def patchify_by_products(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    p = conv.kernel_size[0]
    n, c, h, w = x.shape
    patches = x.reshape(n, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5).reshape(n, h // p, w // p, c * p * p)
    weight = conv.weight.reshape(conv.out_channels, -1).float()
    acc = conv.bias.float()
    for i in range(c * p * p):
        acc = acc + patches[..., i : i + 1].float() * weight[:, i]
    out_dtype = torch.get_autocast_dtype("cuda") if torch.is_autocast_enabled("cuda") else x.dtype
    return acc.to(out_dtype).permute(0, 3, 1, 2)


# Variants that set the modes in which a part with a kernel of its own runs it (the attribute fused_ops.enable or the
# block reads): none, for PyTorch's ops instead of the kernel, or mode all, for a kernel that no mode runs yet
KERNEL_MODES = {
    "stem-cudnn": (Embeddings, "kernel_modes", ()),
    "head-inductor": (SegLateral, "kernel_modes", ()),
    "bifpn-bias": (BiFPN, "kernel_modes", ("all",)),
    "tanh-kernel": (ConvNeXtV2Block, "tanh_kernel_modes", ("all",)),
}


def apply(model: nn.Module, variant: str, eager: bool = False) -> int:
    """Swap the modules `variant` rewrites; returns how many."""
    swapped = 0
    if variant in KERNEL_MODES:
        kind, attribute, modes = KERNEL_MODES[variant]
        for part in [m for m in model.modules() if isinstance(m, kind)]:
            setattr(part, attribute, modes)
            swapped += 1
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if not isinstance(child, nn.Conv2d):
                continue
            depthwise = name == "dwconv"  # the ConvNeXt blocks' (the BiFPN's reads its weight itself)
            stem = name == "patch_embeddings"
            if (variant == "dwconv-products" and depthwise) or (variant == "stem-products" and stem):
                setattr(module, name, ProductsConv(child, eager))
                swapped += 1
    return swapped


def variant_config(path: str, variant: str):
    """The config a variant runs: a fused-<mode> variant is model.peaknet.fused_kernels=<mode>, KEY=VALUE sets
    that setting (both validated by the config model); the other variants run the config as it is."""
    if variant.startswith("fused-"):
        variant = f"model.peaknet.fused_kernels={variant.removeprefix('fused-')}"
    return load_config(path, [variant] if "=" in variant else [])


def check(cfg, variant: str) -> float:
    """Largest |difference| of the variant's logits from the plain model's, eager, fp32, on the CPU."""
    model, _ = build_model(cfg.model)
    model.eval()
    x = torch.rand((2, *cfg.data.frame_shape))
    with torch.no_grad():
        ref = model(x)
        apply(model, variant, eager=True)
        out = model(x)
    return float((out - ref).abs().max() / ref.abs().max())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="examples/configs/gpu-512.yaml")
    ap.add_argument("--variants", nargs="+", default=["plain", "stem-products", "dwconv-products"])
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--check-shape", type=int, nargs=3, default=[1, 64, 64], help="frame shape of the CPU check")
    ap.add_argument("--output")
    args = ap.parse_args()
    inductor_config.fx_graph_cache = False  # each compile traces its own variant
    small = load_config(args.config)
    small.data.frame_shape = tuple(args.check_shape)
    checks = {v: check(small, v) for v in args.variants if v in ("stem-products", "dwconv-products")}
    print("max |logit difference| / max |logit| against the plain model (CPU, fp32, eager):", checks, file=sys.stderr)
    runs = []
    for _ in range(args.rounds):
        for variant in args.variants:
            vcfg = variant_config(args.config, variant)
            model, _ = build_model(vcfg.model)
            swapped = apply(model, variant)
            torch._dynamo.reset()
            runs.append({"variant": variant, "swapped": swapped, **model_only(vcfg, args.iters, model=model)})
            print(runs[-1], file=sys.stderr)
            keep_json(result(args.config, checks, runs), args.output)
    emit_json(result(args.config, checks, runs), args.output)
    return 0


def result(config: str, checks: dict, runs: list) -> dict:
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    return {"gpu": gpu, "config": config, "max_rel_logit_diff": checks, "runs": runs}


if __name__ == "__main__":
    sys.exit(main())
