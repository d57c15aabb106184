"""Kernels measured by bench_kernels.py before any goes into the model.

`dwconv_rows`: the depthwise KxK conv sliding along W. The model's `dwconv_layernorm` loads all K*K taps of
every output pixel (49 loads per output, L1-bound on the H100: slower than cuDNN's depthwise kernel in the
compiled model). Here one program walks a row segment, keeps the last K input columns (K rows each) in
registers and loads one new column per output pixel: K loads per output instead of K*K.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _column(x_ptr, row_base, col, r, W, C, lmask):
    """Input column `col` (K rows) as fp32, zeros outside the frame."""
    inside = (r * 0 + col >= 0) & (r * 0 + col < W)
    return tl.load(x_ptr + row_base + col * C, mask=lmask & inside[:, None], other=0.0).to(tl.float32)


@triton.jit
def _dwconv_rows_kernel(
    x_ptr, w_ptr, b_ptr, out_ptr, H, W, C,
    K: tl.constexpr, KP: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_W: tl.constexpr,
):  # fmt: skip
    pid_row = tl.program_id(0)  # frame * H + output row
    h = pid_row % H
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    w0 = tl.program_id(2) * BLOCK_W
    r = tl.arange(0, KP)  # kernel rows, padded to a power of two
    rows = h + r - K // 2
    rmask = (r < K) & (rows >= 0) & (rows < H)
    cmask = c < C
    row_base = ((pid_row - h + rows).to(tl.int64) * W)[:, None] * C + c[None, :]  # column 0 of each input row
    wmask = (r < K)[:, None] & cmask[None, :]
    tap = w_ptr + (r * K)[:, None] * C + c[None, :]  # taps (K*K, C) tap-major: column j at + j * C
    wt0 = tl.load(tap + 0 * C, mask=wmask, other=0.0)
    wt1 = tl.load(tap + 1 * C, mask=wmask, other=0.0)
    wt2 = tl.load(tap + 2 * C, mask=wmask, other=0.0)
    wt3 = tl.load(tap + 3 * C, mask=wmask, other=0.0)
    wt4 = tl.load(tap + 4 * C, mask=wmask, other=0.0)
    wt5 = tl.load(tap + 5 * C, mask=wmask, other=0.0)
    wt6 = tl.load(tap + 6 * C, mask=wmask, other=0.0)
    bias = tl.load(b_ptr + c, mask=cmask, other=0.0)
    lmask = rmask[:, None] & cmask[None, :]
    # the window before the first output: input columns w0-3 .. w0+2
    x0 = _column(x_ptr, row_base, w0 - 3, r, W, C, lmask)
    x1 = _column(x_ptr, row_base, w0 - 2, r, W, C, lmask)
    x2 = _column(x_ptr, row_base, w0 - 1, r, W, C, lmask)
    x3 = _column(x_ptr, row_base, w0, r, W, C, lmask)
    x4 = _column(x_ptr, row_base, w0 + 1, r, W, C, lmask)
    x5 = _column(x_ptr, row_base, w0 + 2, r, W, C, lmask)
    out_row = out_ptr + (pid_row.to(tl.int64) * W) * C + c
    for w in range(w0, w0 + BLOCK_W):
        x6 = _column(x_ptr, row_base, w + 3, r, W, C, lmask)
        acc = x0 * wt0 + x1 * wt1 + x2 * wt2 + x3 * wt3 + x4 * wt4 + x5 * wt5 + x6 * wt6
        y = tl.sum(acc, axis=0) + bias
        tl.store(out_row + w * C, y.to(out_ptr.dtype.element_ty), mask=cmask & (c * 0 + w < W))
        x0, x1, x2, x3, x4, x5 = x1, x2, x3, x4, x5, x6


def dwconv_rows(x: torch.Tensor, taps: torch.Tensor, bias: torch.Tensor, tune: dict | None = None) -> torch.Tensor:
    """x (N, H, W, C) contiguous; taps (49, C) fp32 tap-major; bias (C,) fp32 -> conv output (N, H, W, C)."""
    if taps.shape[0] != 49:
        raise ValueError(f"dwconv_rows: a 7x7 kernel (49 taps) expected, got {taps.shape[0]} taps")
    x = x.contiguous()
    n, h, w, c = x.shape
    out = torch.empty_like(x)
    params = {"BLOCK_C": min(128, triton.next_power_of_2(c)), "BLOCK_W": 32, "num_warps": 4, **(tune or {})}
    grid = (n * h, triton.cdiv(c, params["BLOCK_C"]), triton.cdiv(w, params["BLOCK_W"]))
    _dwconv_rows_kernel[grid](x, taps, bias, out, h, w, c, K=7, KP=8, **params)
    return out


@triton.jit
def _dwconv7_strip_kernel(
    x_ptr, w_ptr, b_ptr, out_ptr, H, W, C,
    BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    # A (BLOCK_W pixels x BLOCK_C channels) strip walks down BLOCK_H output rows. Each input row is loaded at
    # its 7 column shifts once and added into the 7 output rows it touches (a0..a6: rows r-3..r+3), so an
    # input pixel is loaded 7 times in all (from L1 after the first), not 49.
    n_hb = tl.cdiv(H, BLOCK_H)
    frame = tl.program_id(0) // n_hb
    h0 = (tl.program_id(0) % n_hb) * BLOCK_H
    w = tl.program_id(1) * BLOCK_W + tl.arange(0, BLOCK_W)
    c = tl.program_id(2) * BLOCK_C + tl.arange(0, BLOCK_C)
    cmask = c < C
    frame_ptr = x_ptr + frame.to(tl.int64) * H * W * C
    pix = w[:, None] * C + c[None, :]
    zero = tl.zeros([BLOCK_W, BLOCK_C], dtype=tl.float32)
    a0, a1, a2, a3, a4, a5, a6 = zero, zero, zero, zero, zero, zero, zero
    bias = tl.load(b_ptr + c, mask=cmask, other=0.0)
    out_frame = out_ptr + frame.to(tl.int64) * H * W * C
    for r in range(h0 - 3, h0 + BLOCK_H + 3):
        row_ok = (w * 0 + r >= 0) & (w * 0 + r < H)
        row_ptr = frame_ptr + r * W * C + pix
        for dx in tl.static_range(7):
            cc = w + (dx - 3)
            m = (row_ok & (cc >= 0) & (cc < W))[:, None] & cmask[None, :]
            s = tl.load(row_ptr + (dx - 3) * C, mask=m, other=0.0).to(tl.float32)
            tap = w_ptr + dx * C + c  # taps (49, C), row-major over (dy, dx): a_k uses dy = 6 - k
            a0 += s * tl.load(tap + 42 * C, mask=cmask, other=0.0)[None, :]
            a1 += s * tl.load(tap + 35 * C, mask=cmask, other=0.0)[None, :]
            a2 += s * tl.load(tap + 28 * C, mask=cmask, other=0.0)[None, :]
            a3 += s * tl.load(tap + 21 * C, mask=cmask, other=0.0)[None, :]
            a4 += s * tl.load(tap + 14 * C, mask=cmask, other=0.0)[None, :]
            a5 += s * tl.load(tap + 7 * C, mask=cmask, other=0.0)[None, :]
            a6 += s * tl.load(tap, mask=cmask, other=0.0)[None, :]
        o = r - 3  # a0 has all 7 input rows now
        o_ok = (w * 0 + o >= h0) & (w * 0 + o < H) & (w < W)
        y = (a0 + bias[None, :]).to(out_ptr.dtype.element_ty)
        tl.store(out_frame + o * W * C + pix, y, mask=o_ok[:, None] & cmask[None, :])
        a0, a1, a2, a3, a4, a5, a6 = a1, a2, a3, a4, a5, a6, zero


def dwconv7_strip(x: torch.Tensor, taps: torch.Tensor, bias: torch.Tensor, tune: dict | None = None) -> torch.Tensor:
    """x (N, H, W, C) contiguous; taps (49, C) fp32 tap-major; bias (C,) fp32 -> conv output (N, H, W, C)."""
    if taps.shape[0] != 49:
        raise ValueError(f"dwconv7_strip: a 7x7 kernel (49 taps) expected, got {taps.shape[0]} taps")
    x = x.contiguous()
    n, h, w, c = x.shape
    out = torch.empty_like(x)
    params = {"BLOCK_H": 32, "BLOCK_W": 16, "BLOCK_C": min(32, triton.next_power_of_2(c)), "num_warps": 4,
              **(tune or {})}  # fmt: skip
    grid = (n * triton.cdiv(h, params["BLOCK_H"]), triton.cdiv(w, params["BLOCK_W"]), triton.cdiv(c, params["BLOCK_C"]))
    _dwconv7_strip_kernel[grid](x, taps, bias, out, h, w, c, **params)
    return out
