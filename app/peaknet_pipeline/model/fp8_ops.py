"""The ConvNeXt blocks' two pointwise GEMMs in FP8 (e4m3) for `inference.precision: fp8`: each activation row
and each weight row (output channel) gets its own scale, and torch._scaled_mm multiplies on the FP8 tensor
cores with fp32 accumulation. Everything else runs as in bf16. Whether a mode ships is decided by
benchmarks/bench_accuracy.py (peak-level F1 within 0.002 of bf16's) and its speed by bench_model.py."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

E4M3 = torch.float8_e4m3fn
E4M3_MAX = torch.finfo(E4M3).max  # 448
TINY = 1e-12  # an all-zero row keeps a finite scale
MIN_CAPABILITY = (9, 0)  # Hopper: torch._scaled_mm's per-row scales run on its FP8 kernels only
# Narrower blocks keep bf16 GEMMs: there the GEMMs are memory-bound and quantising the activations costs more
# than the FP8 tensor cores save (measured per threshold: docs/performance.md, "FP8 GEMMs").
MIN_CHANNELS = 1024


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x (M, K) -> (q (M, K) e4m3, scale (M, 1) fp32) with x ~ q * scale; each row's largest |x| maps to 448."""
    scale = x.abs().amax(dim=-1, keepdim=True).float().clamp(min=TINY) / E4M3_MAX
    return (x.float() / scale).to(E4M3), scale


def linear(x: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
    """layer(x) for x (..., K), the product in FP8; bf16 out."""
    rows = x.reshape(-1, x.shape[-1])
    q, scale = quantize_rows(rows)
    w, w_scale = quantize_rows(layer.weight)
    # cuBLASLt takes the second operand column-major: the (N, K) weight's transpose is, as stored.
    y = torch._scaled_mm(q, w.t(), scale_a=scale, scale_b=w_scale.t(), out_dtype=torch.bfloat16)
    return (y + layer.bias.to(torch.bfloat16)).view(*x.shape[:-1], -1)


def convnext_block(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """ConvNeXtV2Block.forward with pwconv1 and pwconv2 in FP8; depthwise conv, LayerNorm, GELU and GRN as
    the plain block runs them."""
    y = block.layernorm(block.depthwise(x))
    h = F.gelu(linear(y, block.pwconv1), approximate=block.gelu)
    y = linear(block.grn(h), block.pwconv2)
    return x + y.permute(0, 3, 1, 2).to(x.dtype)


def supported(device: torch.device) -> bool:
    """FP8 GEMMs with per-row scales need CUDA compute capability 9.0 or newer (tests run them on CPU tensors,
    enabling them by hand)."""
    return device.type == "cuda" and torch.cuda.get_device_capability(device) >= MIN_CAPABILITY


def enable(model: nn.Module) -> int:
    """Switch the ConvNeXt blocks of `model` (MIN_CHANNELS wide or more) to FP8 GEMMs; returns how many."""
    blocks = [m for m in model.modules() if hasattr(m, "fp8") and m.pwconv1.in_features >= MIN_CHANNELS]
    for m in blocks:
        m.fp8 = True
    return len(blocks)
