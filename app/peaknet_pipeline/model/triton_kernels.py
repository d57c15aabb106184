"""Triton kernels for the ConvNeXtV2 block on NHWC tensors, and the plain functions that launch them.

The block's memory-bound steps cost more than its matrix work on the H100 (h100-profile-base-512.json):
cuDNN's depthwise 7x7 kernel, a LayerNorm pass, and GRN's norm read the 4C-wide GELU output once more after
the GEMM wrote it. These kernels fold them into their neighbours:

- `dwconv7`: depthwise 7x7 conv + bias, each input row loaded once per column shift and added into the
  seven output rows it touches (7 loads per input pixel, not 49);
- `linear`: a GEMM whose epilogue adds the bias and either applies GELU and sums its squares per frame and
  column (GRN's statistic, so the wide tensor is never read again) or adds a residual; its weight may differ
  per frame (GRN's scale folded into pwconv2's weight).

Launchers take `wrap` (torch.library.wrap_triton under torch.compile, identity in eager) and run under
TRITON_INTERPRET=1 on CPU tensors, which is how CI checks them without a GPU.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
import triton
import triton.language as tl

ROW_BLOCKS = (128, 64, 32, 16)  # GEMM row tiles; tl.dot needs at least 16
# Triton's CPU interpreter (3.9) returns garbage from tl.dot on bf16 operands: there, and only there, the
# operands go to fp32 first. On a GPU the dot stays on bf16 tensor cores.
INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"


@triton.jit
def _dwconv7_kernel(
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
    bias = tl.load(b_ptr + c, mask=cmask, other=0.0).to(tl.float32)
    out_frame = out_ptr + frame.to(tl.int64) * H * W * C
    for r in range(h0 - 3, h0 + BLOCK_H + 3):
        row_ok = (w * 0 + r >= 0) & (w * 0 + r < H)
        row_ptr = frame_ptr + r * W * C + pix
        for dx in tl.static_range(7):
            cc = w + (dx - 3)
            m = (row_ok & (cc >= 0) & (cc < W))[:, None] & cmask[None, :]
            s = tl.load(row_ptr + (dx - 3) * C, mask=m, other=0.0).to(tl.float32)
            tap = w_ptr + dx * C + c  # taps (49, C), row-major over (dy, dx): a_k uses dy = 6 - k
            a0 += s * tl.load(tap + 42 * C, mask=cmask, other=0.0).to(tl.float32)[None, :]
            a1 += s * tl.load(tap + 35 * C, mask=cmask, other=0.0).to(tl.float32)[None, :]
            a2 += s * tl.load(tap + 28 * C, mask=cmask, other=0.0).to(tl.float32)[None, :]
            a3 += s * tl.load(tap + 21 * C, mask=cmask, other=0.0).to(tl.float32)[None, :]
            a4 += s * tl.load(tap + 14 * C, mask=cmask, other=0.0).to(tl.float32)[None, :]
            a5 += s * tl.load(tap + 7 * C, mask=cmask, other=0.0).to(tl.float32)[None, :]
            a6 += s * tl.load(tap, mask=cmask, other=0.0).to(tl.float32)[None, :]
        o = r - 3  # a0 has all 7 input rows now
        o_ok = (w * 0 + o >= h0) & (w * 0 + o < H) & (w < W)
        y = (a0 + bias[None, :]).to(out_ptr.dtype.element_ty)
        tl.store(out_frame + o * W * C + pix, y, mask=o_ok[:, None] & cmask[None, :])
        a0, a1, a2, a3, a4, a5, a6 = a1, a2, a3, a4, a5, a6, zero


@triton.jit
def _linear_kernel(
    a_ptr, w_ptr, bias_ptr, res_ptr, out_ptr, part_ptr, lnw_ptr, lnb_ptr, M, N, K, HW, frame_stride, eps,
    HAS_BIAS: tl.constexpr, LN_GELU: tl.constexpr, GELU_SUMSQ: tl.constexpr, RESIDUAL: tl.constexpr,
    EVEN_K: tl.constexpr, UPCAST: tl.constexpr, DOT: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    # Column tiles of one row tile run back to back, so the row tile of `a` is read from L2 after the first.
    pid = tl.program_id(0)
    num_n = tl.cdiv(N, BLOCK_N)
    pid_m = pid // num_n
    pid_n = pid % num_n
    rm = (pid_m * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = tl.arange(0, BLOCK_K)
    nmask = rn < N
    frame = (pid_m * BLOCK_M) // HW  # BLOCK_M divides HW: a row tile never spans two frames
    w_base = w_ptr + frame.to(tl.int64) * frame_stride
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        kk = k0 + rk
        a_ptrs = a_ptr + rm[:, None] * K + kk[None, :]
        w_ptrs = w_base + rn[None, :] * K + kk[:, None]  # (K, N) view of the (N, K) weight
        if EVEN_K:
            a = tl.load(a_ptrs)
            w = tl.load(w_ptrs, mask=nmask[None, :], other=0.0)
        else:
            a = tl.load(a_ptrs, mask=kk[None, :] < K, other=0.0)
            w = tl.load(w_ptrs, mask=nmask[None, :] & (kk[:, None] < K), other=0.0)
        if UPCAST:
            a = a.to(tl.float32)
            w = w.to(tl.float32)
        acc = tl.dot(a, w, acc, input_precision=DOT)
    if HAS_BIAS:
        acc += tl.load(bias_ptr + rn, mask=nmask, other=0.0).to(tl.float32)[None, :]
    offs = rm[:, None] * N + rn[None, :]
    if LN_GELU:  # LayerNorm over the row (one column tile holds all N; padded columns are exact zeros), GELU
        mean = tl.sum(acc, axis=1) / N
        d = tl.where(nmask[None, :], acc - mean[:, None], 0.0)
        rstd = tl.rsqrt(tl.sum(d * d, axis=1) / N + eps)
        lnw = tl.load(lnw_ptr + rn, mask=nmask, other=0.0).to(tl.float32)
        lnb = tl.load(lnb_ptr + rn, mask=nmask, other=0.0).to(tl.float32)
        acc = d * rstd[:, None] * lnw[None, :] + lnb[None, :]
        acc = 0.5 * acc * (1.0 + tl.erf(acc * 0.7071067811865476))
    if GELU_SUMSQ:
        acc = 0.5 * acc * (1.0 + tl.erf(acc * 0.7071067811865476))  # exact GELU, as nn.GELU()
        tl.store(part_ptr + pid_m * N + rn, tl.sum(acc * acc, axis=0), mask=nmask)
    if RESIDUAL:
        acc += tl.load(res_ptr + offs, mask=nmask[None, :], other=0.0).to(tl.float32)
    tl.store(out_ptr + offs, acc.to(out_ptr.dtype.element_ty), mask=nmask[None, :])


Wrap = Callable[[object], object]


def _identity(kernel):
    return kernel


def dwconv7(x: torch.Tensor, taps: torch.Tensor, bias: torch.Tensor, wrap: Wrap = _identity,
            tune: dict | None = None) -> torch.Tensor:  # fmt: skip
    """Depthwise 7x7 conv (padding 3) with bias: x (N, H, W, C); taps (49, C) tap-major in x's dtype (the
    kernel reloads them from L1 for every input row: half the loads of fp32); bias (C,) -> (N, H, W, C),
    summed in fp32. `tune` overrides BLOCK_H, BLOCK_W, BLOCK_C, num_warps (benchmarks/bench_kernels.py)."""
    if taps.shape[0] != 49:
        raise ValueError(f"dwconv7: a 7x7 kernel (49 taps) expected, got {taps.shape[0]} taps")
    x = x.contiguous()  # the kernel indexes dense NHWC (a no-op for the block's channels_last input)
    n, h, w, c = x.shape
    out = torch.empty_like(x)
    # best of the sweep in h100-kernels-base-512.json: wide strips of 16 channels at 96, 64 channels above
    wide = {"BLOCK_W": 64, "BLOCK_C": 16} if c <= 128 else {"BLOCK_W": 16, "BLOCK_C": 64}
    params = {"BLOCK_H": 64 if h >= 128 else 32, **wide, "num_warps": 4, **(tune or {})}
    grid = (n * triton.cdiv(h, params["BLOCK_H"]), triton.cdiv(w, params["BLOCK_W"]), triton.cdiv(c, params["BLOCK_C"]))
    wrap(_dwconv7_kernel)[grid](x, taps, bias, out, h, w, c, **params)
    return out


def row_block(hw: int) -> int | None:
    """The largest GEMM row tile that divides a frame's pixel count; None where none does."""
    return next((b for b in ROW_BLOCKS if hw % b == 0), None)


def linear(
    a: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    hw: int,
    gelu_sumsq: bool = False,
    layernorm_gelu: tuple[torch.Tensor, torch.Tensor, float] | None = None,
    residual: torch.Tensor | None = None,
    wrap: Wrap = _identity,
    tune: dict | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """a (M, K) with M a whole number of frames of hw rows; weight (N, K), or (frames, N, K) for one weight
    per frame; bias (N,) or None. Epilogue, in this order: `layernorm_gelu` (LayerNorm weight, bias, eps over
    each output row, then GELU; N at most 256), `gelu_sumsq` (GELU, and per-frame column sums of squares),
    `residual` (added). Returns (out (M, N) in a's dtype, the sums of squares (frames, N) fp32 or None).
    Needs row_block(hw); `tune` overrides BLOCK_M (dividing hw), BLOCK_N, BLOCK_K, num_warps, num_stages."""
    a, weight = a.contiguous(), weight.contiguous()  # dense row-major, as the kernel indexes them
    residual = residual.contiguous() if residual is not None else None
    m, k = a.shape
    n = weight.shape[-2]
    block_m = row_block(hw)
    if block_m is None or m % hw:
        raise ValueError(f"linear: a frame of {hw} rows is not a whole number of {ROW_BLOCKS[-1]}-row tiles")
    if layernorm_gelu is not None and n > LN_MAX_COLUMNS:
        raise ValueError(f"linear: a LayerNorm epilogue needs the row in one tile, {n} > {LN_MAX_COLUMNS} columns")
    params = _launch_params(n, k, block_m, wide=residual is not None and n >= 384, row=layernorm_gelu is not None)
    params |= tune or {}
    tiles_m = m // params["BLOCK_M"]
    out = torch.empty((m, n), dtype=a.dtype, device=a.device)
    part = torch.empty((tiles_m, n) if gelu_sumsq else (1,), dtype=torch.float32, device=a.device)
    lnw, lnb, eps = layernorm_gelu if layernorm_gelu is not None else (out, out, 0.0)
    frame_stride = n * k if weight.dim() == 3 else 0
    grid = (tiles_m * triton.cdiv(n, params["BLOCK_N"]),)
    wrap(_linear_kernel)[grid](
        a, weight, bias if bias is not None else out, residual if residual is not None else out, out, part, lnw, lnb,
        m, n, k, hw, frame_stride, eps,
        HAS_BIAS=bias is not None, LN_GELU=layernorm_gelu is not None, GELU_SUMSQ=gelu_sumsq,
        RESIDUAL=residual is not None, EVEN_K=k % params["BLOCK_K"] == 0, UPCAST=INTERPRET,
        DOT="ieee" if a.dtype == torch.float32 else "tf32",  # fp32 models get fp32 products, not TF32
        **params,
    )  # fmt: skip
    sumsq = part.view(m // hw, hw // params["BLOCK_M"], n).sum(1) if gelu_sumsq else None
    return out, sumsq


LN_MAX_COLUMNS = 256  # a wider row tile would not fit the accumulator in registers


def _launch_params(n: int, k: int, block_m: int, wide: bool, row: bool) -> dict:
    """From the sweeps in h100-kernels-base-512.json: narrow column tiles for the GELU GEMM and the narrow
    outputs, wide ones for the residual GEMM once its output has 384 columns or more; a LayerNorm epilogue
    takes the whole row (64-row tiles, so the fp32 row tile stays in registers)."""
    if row:
        return {"BLOCK_M": min(block_m, 64), "BLOCK_N": max(16, triton.next_power_of_2(n)),
                "BLOCK_K": 64 if k >= 64 else 32, "num_warps": 8, "num_stages": 3}  # fmt: skip
    return {"BLOCK_M": block_m, "BLOCK_N": 256 if wide else 64, "BLOCK_K": 64 if k >= 384 else 32,
            "num_warps": 8 if wide else 4, "num_stages": 3}  # fmt: skip
