"""The ConvNeXt block's depthwise 7x7 conv (padding 3, bias) as a Triton kernel on NHWC tensors.

A thread owns one channel of a strip of 4 neighbouring output pixels and walks down BLOCK_H rows. Each input row
is loaded once per strip (the 10 pixels that 4 outputs read) and added into the 7 output rows it touches, whose
28 sums stay in registers with the thread's 49 taps; a warp's load is 32 neighbouring channels of one pixel. The
channels are dealt to the threads in a shuffled order so that Triton does not see them as contiguous and
vectorise across them, which would put several channels' taps in every thread; C is a constant of the kernel,
so the strip's ten columns are constant offsets of one address.

Runs under TRITON_INTERPRET=1 on CPU tensors too, which is how CI checks it.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .triton_kernels import Wrap, _identity


@triton.jit
def _tap_row(w_ptr, c, cmask, dy: tl.constexpr):
    """Row dy of every thread's 7x7 kernel, columns dx = 0..6, as (1, BLOCK_C) fp32 (weights (C, 49))."""
    p = w_ptr + c * 49 + dy * 7
    t0 = tl.load(p, mask=cmask, other=0.0).to(tl.float32)[None, :]
    t1 = tl.load(p + 1, mask=cmask, other=0.0).to(tl.float32)[None, :]
    t2 = tl.load(p + 2, mask=cmask, other=0.0).to(tl.float32)[None, :]
    t3 = tl.load(p + 3, mask=cmask, other=0.0).to(tl.float32)[None, :]
    t4 = tl.load(p + 4, mask=cmask, other=0.0).to(tl.float32)[None, :]
    t5 = tl.load(p + 5, mask=cmask, other=0.0).to(tl.float32)[None, :]
    t6 = tl.load(p + 6, mask=cmask, other=0.0).to(tl.float32)[None, :]
    return t0, t1, t2, t3, t4, t5, t6


@triton.jit
def _col_ok(col0, W, cmask, j: tl.constexpr):
    """Where input column col0 + j - 3 of each strip lies inside the frame, (BLOCK_S, BLOCK_C)."""
    cc = col0 + (j - 3)
    return ((cc >= 0) & (cc < W))[:, None] & cmask[None, :]


@triton.jit
def _strip_row(x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, t0, t1, t2, t3, t4, t5, t6, a0, a1, a2, a3):
    """One kernel row (taps t0..t6) applied to a strip's input row x0..x9, added to its 4 outputs a0..a3 (one
    chain of fused multiply-adds each)."""
    a0 = a0 + x0 * t0 + x1 * t1 + x2 * t2 + x3 * t3 + x4 * t4 + x5 * t5 + x6 * t6
    a1 = a1 + x1 * t0 + x2 * t1 + x3 * t2 + x4 * t3 + x5 * t4 + x6 * t5 + x7 * t6
    a2 = a2 + x2 * t0 + x3 * t1 + x4 * t2 + x5 * t3 + x6 * t4 + x7 * t5 + x8 * t6
    a3 = a3 + x3 * t0 + x4 * t1 + x5 * t2 + x6 * t3 + x7 * t4 + x8 * t5 + x9 * t6
    return a0, a1, a2, a3


@triton.jit
def _store_strip(p, C: tl.constexpr, a0, a1, a2, a3, bias, m0, m1, m2, m3):
    ty = p.dtype.element_ty
    tl.store(p, (a0 + bias).to(ty), mask=m0)
    tl.store(p + C, (a1 + bias).to(ty), mask=m1)
    tl.store(p + 2 * C, (a2 + bias).to(ty), mask=m2)
    tl.store(p + 3 * C, (a3 + bias).to(ty), mask=m3)


@triton.jit
def _dwconv7_kernel(
    x_ptr, w_ptr, b_ptr, out_ptr, H, W, C: tl.constexpr,
    BLOCK_H: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    """Programs: (frame and row block, strips, channel blocks)."""
    n_hb = tl.cdiv(H, BLOCK_H)
    frame = tl.program_id(0) // n_hb
    h0 = (tl.program_id(0) % n_hb) * BLOCK_H
    col0 = (tl.program_id(1) * BLOCK_S + tl.arange(0, BLOCK_S)) * 4  # each strip's first column
    c = tl.program_id(2) * BLOCK_C + (tl.arange(0, BLOCK_C) * 5) % BLOCK_C  # a permutation: BLOCK_C is 2^k
    cmask = c < C
    offs = (col0[:, None] - 3) * C + c[None, :]  # input column col0 - 3, the strip's first
    in_frame = x_ptr + frame.to(tl.int64) * H * W * C
    out_frame = out_ptr + frame.to(tl.int64) * H * W * C + offs + 3 * C
    m0, m1, m2 = _col_ok(col0, W, cmask, 0), _col_ok(col0, W, cmask, 1), _col_ok(col0, W, cmask, 2)
    m3, m4, m5 = _col_ok(col0, W, cmask, 3), _col_ok(col0, W, cmask, 4), _col_ok(col0, W, cmask, 5)
    m6, m7, m8 = _col_ok(col0, W, cmask, 6), _col_ok(col0, W, cmask, 7), _col_ok(col0, W, cmask, 8)
    m9 = _col_ok(col0, W, cmask, 9)
    k00, k01, k02, k03, k04, k05, k06 = _tap_row(w_ptr, c, cmask, 0)
    k10, k11, k12, k13, k14, k15, k16 = _tap_row(w_ptr, c, cmask, 1)
    k20, k21, k22, k23, k24, k25, k26 = _tap_row(w_ptr, c, cmask, 2)
    k30, k31, k32, k33, k34, k35, k36 = _tap_row(w_ptr, c, cmask, 3)
    k40, k41, k42, k43, k44, k45, k46 = _tap_row(w_ptr, c, cmask, 4)
    k50, k51, k52, k53, k54, k55, k56 = _tap_row(w_ptr, c, cmask, 5)
    k60, k61, k62, k63, k64, k65, k66 = _tap_row(w_ptr, c, cmask, 6)
    bias = tl.load(b_ptr + c, mask=cmask, other=0.0).to(tl.float32)[None, :]
    z = tl.zeros([BLOCK_S, BLOCK_C], dtype=tl.float32)
    # a<k><p>: output row r - 3 + k, pixel p of the strip; it takes input row r through kernel row 6 - k
    a00, a01, a02, a03, a10, a11, a12, a13, a20, a21, a22, a23 = z, z, z, z, z, z, z, z, z, z, z, z
    a30, a31, a32, a33, a40, a41, a42, a43, a50, a51, a52, a53 = z, z, z, z, z, z, z, z, z, z, z, z
    a60, a61, a62, a63 = z, z, z, z
    for r in range(h0 - 3, h0 + BLOCK_H + 3):
        row = col0 * 0 + r  # as a tensor: the interpreter takes no Python bool in a mask
        ok = ((row >= 0) & (row < H))[:, None]
        p = in_frame + r * W * C + offs
        x0 = tl.load(p, mask=m0 & ok, other=0.0).to(tl.float32)
        x1 = tl.load(p + C, mask=m1 & ok, other=0.0).to(tl.float32)
        x2 = tl.load(p + 2 * C, mask=m2 & ok, other=0.0).to(tl.float32)
        x3 = tl.load(p + 3 * C, mask=m3 & ok, other=0.0).to(tl.float32)
        x4 = tl.load(p + 4 * C, mask=m4 & ok, other=0.0).to(tl.float32)
        x5 = tl.load(p + 5 * C, mask=m5 & ok, other=0.0).to(tl.float32)
        x6 = tl.load(p + 6 * C, mask=m6 & ok, other=0.0).to(tl.float32)
        x7 = tl.load(p + 7 * C, mask=m7 & ok, other=0.0).to(tl.float32)
        x8 = tl.load(p + 8 * C, mask=m8 & ok, other=0.0).to(tl.float32)
        x9 = tl.load(p + 9 * C, mask=m9 & ok, other=0.0).to(tl.float32)
        a00, a01, a02, a03 = _strip_row(
            x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, k60, k61, k62, k63, k64, k65, k66, a00, a01, a02, a03
        )
        a10, a11, a12, a13 = _strip_row(
            x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, k50, k51, k52, k53, k54, k55, k56, a10, a11, a12, a13
        )
        a20, a21, a22, a23 = _strip_row(
            x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, k40, k41, k42, k43, k44, k45, k46, a20, a21, a22, a23
        )
        a30, a31, a32, a33 = _strip_row(
            x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, k30, k31, k32, k33, k34, k35, k36, a30, a31, a32, a33
        )
        a40, a41, a42, a43 = _strip_row(
            x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, k20, k21, k22, k23, k24, k25, k26, a40, a41, a42, a43
        )
        a50, a51, a52, a53 = _strip_row(
            x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, k10, k11, k12, k13, k14, k15, k16, a50, a51, a52, a53
        )
        a60, a61, a62, a63 = _strip_row(
            x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, k00, k01, k02, k03, k04, k05, k06, a60, a61, a62, a63
        )
        o_ok = ((row - 3 >= h0) & (row - 3 < H))[:, None]  # output row r - 3 (a0p) has all seven input rows now
        _store_strip(
            out_frame + (r - 3) * W * C, C, a00, a01, a02, a03, bias, m3 & o_ok, m4 & o_ok, m5 & o_ok, m6 & o_ok
        )
        a00, a01, a02, a03, a10, a11, a12, a13 = a10, a11, a12, a13, a20, a21, a22, a23
        a20, a21, a22, a23, a30, a31, a32, a33 = a30, a31, a32, a33, a40, a41, a42, a43
        a40, a41, a42, a43, a50, a51, a52, a53 = a50, a51, a52, a53, a60, a61, a62, a63
        a60, a61, a62, a63 = z, z, z, z


def launch_settings(h: int, w: int, c: int) -> dict:
    """BLOCK_H, BLOCK_S, BLOCK_C and num_warps for an (h, w, c) frame: a program walks the whole column (up to 128
    rows, so few rows are loaded twice) of one strip per warp, one channel per thread (bench_dwconv.py)."""
    return {"BLOCK_H": min(h, 128), "BLOCK_S": 2, "BLOCK_C": 32, "num_warps": 2}


def grid(n: int, h: int, w: int, c: int, params: dict) -> tuple[int, int, int]:
    """The kernel's programs for n frames of (h, w, c) under launch settings `params`."""
    return (
        n * triton.cdiv(h, params["BLOCK_H"]),
        triton.cdiv(w, 4 * params["BLOCK_S"]),
        triton.cdiv(c, params["BLOCK_C"]),
    )


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
