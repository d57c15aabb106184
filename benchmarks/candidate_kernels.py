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
