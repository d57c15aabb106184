"""The ConvNeXt block's depthwise 7x7 conv (padding 3, bias) as a Triton kernel on NHWC tensors.

A program owns a strip of BLOCK_W pixels x BLOCK_C channels and walks down BLOCK_H output rows. Each input row
is loaded at its seven column shifts and added into the seven output rows it touches, so a pixel is loaded 7
times (from L1 after the first), not 49. Each thread keeps one channel: its 49 taps stay in registers for the
whole walk, and a warp's load is 32 neighbouring channels of one pixel. The channels are dealt to the threads
in a shuffled order so that Triton does not see them as contiguous and vectorise across them, which would put
8 channels' taps in every thread; C is a constant of the kernel, so the seven column shifts are constant
offsets of one address.

Runs under TRITON_INTERPRET=1 on CPU tensors too, which is how CI checks it.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .triton_kernels import Wrap, _identity


@triton.jit
def _tap_column(w_ptr, c, cmask, dx: tl.constexpr):
    """Column dx of every thread's 7x7 kernel, rows dy = 0..6, as (BLOCK_C, 1) fp32 (weights (C, 49))."""
    p = w_ptr + c * 49 + dx
    t0 = tl.load(p, mask=cmask, other=0.0).to(tl.float32)[:, None]
    t1 = tl.load(p + 7, mask=cmask, other=0.0).to(tl.float32)[:, None]
    t2 = tl.load(p + 14, mask=cmask, other=0.0).to(tl.float32)[:, None]
    t3 = tl.load(p + 21, mask=cmask, other=0.0).to(tl.float32)[:, None]
    t4 = tl.load(p + 28, mask=cmask, other=0.0).to(tl.float32)[:, None]
    t5 = tl.load(p + 35, mask=cmask, other=0.0).to(tl.float32)[:, None]
    t6 = tl.load(p + 42, mask=cmask, other=0.0).to(tl.float32)[:, None]
    return t0, t1, t2, t3, t4, t5, t6


@triton.jit
def _acc(a0, a1, a2, a3, a4, a5, a6, row_ptr, w, W, C: tl.constexpr, m, dx: tl.constexpr, t0, t1, t2, t3, t4, t5, t6):
    """Adds one input row, shifted by dx - 3 columns, into the seven output rows it touches: a_k is output
    row r - 3 + k, which takes input row r through kernel row 6 - k."""
    cc = w + (dx - 3)
    s = tl.load(row_ptr + (dx - 3) * C, mask=m & ((cc >= 0) & (cc < W))[None, :], other=0.0).to(tl.float32)
    return a0 + s * t6, a1 + s * t5, a2 + s * t4, a3 + s * t3, a4 + s * t2, a5 + s * t1, a6 + s * t0


@triton.jit
def _dwconv7_kernel(
    x_ptr, w_ptr, b_ptr, out_ptr, H, W, C: tl.constexpr,
    BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    n_hb = tl.cdiv(H, BLOCK_H)
    frame = tl.program_id(0) // n_hb
    h0 = (tl.program_id(0) % n_hb) * BLOCK_H
    w = tl.program_id(1) * BLOCK_W + tl.arange(0, BLOCK_W)
    c = tl.program_id(2) * BLOCK_C + (tl.arange(0, BLOCK_C) * 5) % BLOCK_C  # a permutation: BLOCK_C is 2^k
    cmask = c < C
    offs = w[None, :] * C + c[:, None]  # (channels, pixels): a thread keeps one channel
    in_frame = x_ptr + frame.to(tl.int64) * H * W * C
    out_frame = out_ptr + frame.to(tl.int64) * H * W * C
    k00, k10, k20, k30, k40, k50, k60 = _tap_column(w_ptr, c, cmask, 0)
    k01, k11, k21, k31, k41, k51, k61 = _tap_column(w_ptr, c, cmask, 1)
    k02, k12, k22, k32, k42, k52, k62 = _tap_column(w_ptr, c, cmask, 2)
    k03, k13, k23, k33, k43, k53, k63 = _tap_column(w_ptr, c, cmask, 3)
    k04, k14, k24, k34, k44, k54, k64 = _tap_column(w_ptr, c, cmask, 4)
    k05, k15, k25, k35, k45, k55, k65 = _tap_column(w_ptr, c, cmask, 5)
    k06, k16, k26, k36, k46, k56, k66 = _tap_column(w_ptr, c, cmask, 6)
    bias = tl.load(b_ptr + c, mask=cmask, other=0.0).to(tl.float32)[:, None]
    zero = tl.zeros([BLOCK_C, BLOCK_W], dtype=tl.float32)
    a0, a1, a2, a3, a4, a5, a6 = zero, zero, zero, zero, zero, zero, zero
    for r in range(h0 - 3, h0 + BLOCK_H + 3):
        m = cmask[:, None] & ((w * 0 + r >= 0) & (w * 0 + r < H))[None, :]
        p = in_frame + r * W * C + offs
        a0, a1, a2, a3, a4, a5, a6 = _acc(
            a0, a1, a2, a3, a4, a5, a6, p, w, W, C, m, 0, k00, k10, k20, k30, k40, k50, k60
        )
        a0, a1, a2, a3, a4, a5, a6 = _acc(
            a0, a1, a2, a3, a4, a5, a6, p, w, W, C, m, 1, k01, k11, k21, k31, k41, k51, k61
        )
        a0, a1, a2, a3, a4, a5, a6 = _acc(
            a0, a1, a2, a3, a4, a5, a6, p, w, W, C, m, 2, k02, k12, k22, k32, k42, k52, k62
        )
        a0, a1, a2, a3, a4, a5, a6 = _acc(
            a0, a1, a2, a3, a4, a5, a6, p, w, W, C, m, 3, k03, k13, k23, k33, k43, k53, k63
        )
        a0, a1, a2, a3, a4, a5, a6 = _acc(
            a0, a1, a2, a3, a4, a5, a6, p, w, W, C, m, 4, k04, k14, k24, k34, k44, k54, k64
        )
        a0, a1, a2, a3, a4, a5, a6 = _acc(
            a0, a1, a2, a3, a4, a5, a6, p, w, W, C, m, 5, k05, k15, k25, k35, k45, k55, k65
        )
        a0, a1, a2, a3, a4, a5, a6 = _acc(
            a0, a1, a2, a3, a4, a5, a6, p, w, W, C, m, 6, k06, k16, k26, k36, k46, k56, k66
        )
        o = r - 3  # a0 has all seven input rows now
        o_ok = (w * 0 + o >= h0) & (w * 0 + o < H) & (w < W)
        tl.store(
            out_frame + o * W * C + offs, (a0 + bias).to(out_ptr.dtype.element_ty), mask=cmask[:, None] & o_ok[None, :]
        )
        a0, a1, a2, a3, a4, a5, a6 = a1, a2, a3, a4, a5, a6, zero


def launch_settings(h: int, w: int, c: int) -> dict:
    """BLOCK_H, BLOCK_W, BLOCK_C and num_warps for an (h, w, c) frame: a program walks the whole column (up to
    128 rows, so few rows are loaded twice) of a 16-pixel strip, four pixels per thread (bench_dwconv.py)."""
    return {"BLOCK_H": min(h, 128), "BLOCK_W": 16, "BLOCK_C": 32, "num_warps": 4}


def grid(n: int, h: int, w: int, c: int, params: dict) -> tuple[int, int, int]:
    """The kernel's programs for n frames of (h, w, c) under launch settings `params`."""
    return n * triton.cdiv(h, params["BLOCK_H"]), triton.cdiv(w, params["BLOCK_W"]), triton.cdiv(c, params["BLOCK_C"])


def dwconv7(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, wrap: Wrap = _identity, tune: dict | None = None
) -> torch.Tensor:
    """Depthwise 7x7 conv, padding 3, plus bias: x (N, H, W, C) dense NHWC; weight (C, 1, 7, 7) as
    nn.Conv2d(groups=C) holds it; bias (C,). Sums in fp32, returns x's dtype. `tune` overrides the launch
    settings (benchmarks)."""
    if weight.shape[1:] != (1, 7, 7) or weight.shape[0] != x.shape[3]:
        raise ValueError(f"dwconv7: weight (C, 1, 7, 7) for C={x.shape[3]} expected, got {tuple(weight.shape)}")
    x = x.contiguous()  # dense NHWC, as the kernel indexes it (and so is `out`)
    n, h, w, c = x.shape
    out = torch.empty_like(x)
    params = {**launch_settings(h, w, c), **(tune or {})}
    wrap(_dwconv7_kernel)[grid(n, h, w, c, params)](x, weight.contiguous(), bias, out, h, w, c, **params)
    return out
