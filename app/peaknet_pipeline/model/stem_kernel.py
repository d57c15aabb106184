"""The backbone's stem as one Triton kernel: the 4x4 stride-4 patch embedding of one-channel frames, its bias and
the LayerNorm over its output channels, written once as NHWC.

Compiled as PyTorch ops, the conv (one input channel: a GEMM with K = 16, which cuDNN runs far from the memory
bound) writes C channels per output pixel and the LayerNorm reads and writes them again. Here a program takes
BLOCK_P output pixels: their 4x4 patches as a (BLOCK_P, 16) tile, one product with the (16, C) weight on the
tensor cores, then bias and LayerNorm on the fp32 accumulator, which holds every channel of its pixels.

Runs under TRITON_INTERPRET=1 on CPU tensors too, which is how CI checks it.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .triton_kernels import INTERPRET, Wrap, _identity

PATCH = 4  # the stem's kernel size and stride
MAX_CHANNELS = 512  # one program holds every channel of its pixels in registers


@triton.jit
def _stem_kernel(
    x_ptr, w_ptr, b_ptr, ln_w_ptr, ln_b_ptr, out_ptr, PIXELS, OH, OW, eps,
    C: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr, UPCAST: tl.constexpr,
):  # fmt: skip
    pix = (tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)).to(tl.int64)  # output pixels, frames flattened
    pmask = pix < PIXELS
    frame, oy, ox = pix // (OH * OW), (pix // OW) % OH, pix % OW
    tap = tl.arange(0, 16)  # dy * 4 + dx
    width = OW * 4
    corner = frame * (OH * 4) * width + oy * 4 * width + ox * 4  # each patch's top-left input pixel
    patches = tl.load(x_ptr + corner[:, None] + (tap // 4 * width + tap % 4)[None, :], mask=pmask[:, None], other=0.0)
    c = tl.arange(0, BLOCK_C)
    cmask = c < C
    w = tl.load(w_ptr + c[None, :] * 16 + tap[:, None], mask=cmask[None, :], other=0.0)  # (16, C) of (C, 1, 4, 4)
    if UPCAST:
        acc = tl.dot(patches.to(tl.float32), w.to(tl.float32), input_precision="ieee")
    else:
        acc = tl.dot(patches.to(w.dtype), w)
    acc += tl.load(b_ptr + c, mask=cmask, other=0.0).to(tl.float32)[None, :]
    mean = tl.sum(acc, axis=1) / C  # the padded channels hold zeros
    d = tl.where(cmask[None, :], acc - mean[:, None], 0.0)
    # fp32 whatever eps's type: inductor passes a float argument as fp64, which would make the epilogue fp64
    rstd = tl.rsqrt((tl.sum(d * d, axis=1) / C + eps).to(tl.float32))
    ln_w = tl.load(ln_w_ptr + c, mask=cmask, other=0.0).to(tl.float32)
    ln_b = tl.load(ln_b_ptr + c, mask=cmask, other=0.0).to(tl.float32)
    y = d * rstd[:, None] * ln_w[None, :] + ln_b[None, :]
    out = out_ptr + pix[:, None] * C + c[None, :]
    tl.store(out, y.to(out_ptr.dtype.element_ty), mask=pmask[:, None] & cmask[None, :])


def launch_settings(c: int) -> dict:
    """BLOCK_P, BLOCK_C and num_warps: the accumulator at about 64 fp32 values per thread."""
    block_c = triton.next_power_of_2(c)
    warps = 4 if block_c <= 128 else 8
    return {"BLOCK_P": max(16, 64 * 32 * warps // block_c), "BLOCK_C": block_c, "num_warps": warps}


def fusable(in_channels: int, out_channels: int, kernel_size: tuple, stride: tuple) -> bool:
    """Whether a patch embedding fits the kernel: one input channel, 4x4 patches at stride 4, channels that fit."""
    patch = (PATCH, PATCH)
    return in_channels == 1 and tuple(kernel_size) == patch and tuple(stride) == patch and out_channels <= MAX_CHANNELS


def stem(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    ln_weight: torch.Tensor,
    ln_bias: torch.Tensor,
    eps: float,
    wrap: Wrap = _identity,
    tune: dict | None = None,
) -> torch.Tensor:
    """LayerNorm over C of conv2d(x, weight, bias, stride=4): x (N, 1, H, W) with H and W multiples of 4, weight
    (C, 1, 4, 4); returns (N, H/4, W/4, C) dense, in x's dtype. Products and statistics in fp32. `tune` overrides
    the launch settings (benchmarks)."""
    n, ci, h, w = x.shape
    c = weight.shape[0]
    if not fusable(ci, c, weight.shape[2:], (PATCH, PATCH)) or h % PATCH or w % PATCH:
        raise ValueError(f"stem: expected (N, 1, H, W) frames with H, W multiples of 4 and a (C<=512, 1, 4, 4) "
                         f"weight, got {tuple(x.shape)} and {tuple(weight.shape)}")  # fmt: skip
    oh, ow = h // PATCH, w // PATCH
    out = torch.empty((n, oh, ow, c), dtype=x.dtype, device=x.device)
    params = {**launch_settings(c), **(tune or {})}
    grid = (triton.cdiv(n * oh * ow, params["BLOCK_P"]),)
    wrap(_stem_kernel)[grid](
        x.contiguous(), weight.contiguous(), bias, ln_weight, ln_bias, out, n * oh * ow, oh, ow, eps,
        C=c, UPCAST=INTERPRET or x.dtype == torch.float32, **params,
    )  # fmt: skip
    return out
