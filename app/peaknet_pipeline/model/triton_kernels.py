"""Triton kernels for the ConvNeXtV2 block on NHWC tensors, and the plain functions that launch them.

The block's memory-bound steps cost more than its matrix work on the H100 (h100-profile-base-512.json):
GRN's norm read the 4C-wide GELU output once more after the GEMM wrote it, and its scale and the residual
took passes of their own. The kernels fold them into the GEMMs:

- `linear`: a GEMM whose epilogue adds the bias and either applies GELU and sums its squares per frame and
  column (GRN's statistic, so the wide tensor is never read again) or adds a residual; it may scale its
  input's columns per frame first (GRN's scale, applied as pwconv2 reads the GELU output).

On GPUs with Hopper's bulk tensor copy engine (TMA, compute capability 9.0 on) `linear` runs the same GEMM
with its operand tiles, residual and output moved as whole tiles through tensor descriptors, which the copy
engine fetches into shared memory (zero-filled past the edges, so no masks) while the threads compute; elsewhere,
and where a row's bytes do not meet the copy engine's 16-byte alignment, by per-thread loads.

Launchers take `wrap` (torch.library.wrap_triton under torch.compile, identity in eager) and run under
TRITON_INTERPRET=1 on CPU tensors, which is how CI checks them without a GPU.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
import triton
import triton.language as tl
from torch._subclasses.fake_tensor import is_fake
from triton.tools.tensor_descriptor import TensorDescriptor

ROW_BLOCKS = (128, 64, 32, 16)  # GEMM row tiles; tl.dot needs at least 16
# Triton's CPU interpreter (3.9) returns garbage from tl.dot on bf16 operands: there, and only there, the
# operands go to fp32 first. On a GPU the dot stays on bf16 tensor cores.
INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"


@triton.jit
def _gelu(x):
    """Exact GELU, x * Phi(x), with erf by Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7, far below bf16's
    rounding) on the fast exp2 and division: libdevice's erf is a large share of the GELU GEMM's time, for
    outputs identical after rounding (docs/performance.md)."""
    z = tl.abs(x) * 0.7071067811865476
    t = tl.fdiv(tl.full(z.shape, 1.0, tl.float32), 1.0 + 0.3275911 * z, ieee_rounding=False)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    erf_abs = 1.0 - poly * tl.exp2(-1.4426950408889634 * z * z)  # erf(|x| / sqrt 2)
    return 0.5 * x + 0.5 * tl.abs(x) * erf_abs


@triton.jit
def _gelu_tanh(x, ASM: tl.constexpr):
    """GELU's tanh form, 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))): on the GPU by the one special-function
    instruction tanh.approx.f32 (the exact form's erf takes two: exp2 and a reciprocal); in the interpreter, which
    runs no inline assembly, by exp."""
    u = 0.7978845608028654 * (x + 0.044715 * x * x * x)
    if ASM:
        t = tl.inline_asm_elementwise("tanh.approx.f32 $0, $1;", "=f,f", [u], dtype=tl.float32, is_pure=True, pack=1)
    else:
        t = 1.0 - 2.0 / (tl.exp(2.0 * u) + 1.0)
    return 0.5 * x * (1.0 + t)


@triton.jit
def _tile_origin(N, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """This program's output tile: its row tile's index, first row and first column. Column tiles of one row
    tile run back to back, so the row tile of `a` is read from L2 after the first."""
    pid = tl.program_id(0)
    num_n = tl.cdiv(N, BLOCK_N)
    pid_m = pid // num_n
    return pid_m, pid_m * BLOCK_M, (pid % num_n) * BLOCK_N


@triton.jit
def _tile(N, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """This program's output tile (_tile_origin) as its row tile's index, rows (int64), columns and the
    columns' mask."""
    pid_m, off_m, off_n = _tile_origin(N, BLOCK_M, BLOCK_N)
    rm = (off_m + tl.arange(0, BLOCK_M)).to(tl.int64)
    rn = off_n + tl.arange(0, BLOCK_N)
    return pid_m, rm, rn, rn < N


@triton.jit
def _linear_kernel(
    a_ptr, w_ptr, bias_ptr, res_ptr, out_ptr, part_ptr, scale_ptr, M, N, K, HW,
    GELU_SUMSQ: tl.constexpr, RESIDUAL: tl.constexpr, SCALE_A: tl.constexpr, TANH: tl.constexpr,
    TANH_ASM: tl.constexpr, EVEN_K: tl.constexpr, UPCAST: tl.constexpr, DOT: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    pid_m, rm, rn, nmask = _tile(N, BLOCK_M, BLOCK_N)
    rk = tl.arange(0, BLOCK_K)
    frame = (pid_m * BLOCK_M) // HW  # BLOCK_M divides HW: a row tile never spans two frames
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        kk = k0 + rk
        a_ptrs = a_ptr + rm[:, None] * K + kk[None, :]
        w_ptrs = w_ptr + rn[None, :] * K + kk[:, None]  # (K, N) view of the (N, K) weight
        if EVEN_K:
            a = tl.load(a_ptrs)
            w = tl.load(w_ptrs, mask=nmask[None, :], other=0.0)
        else:
            a = tl.load(a_ptrs, mask=kk[None, :] < K, other=0.0)
            w = tl.load(w_ptrs, mask=nmask[None, :] & (kk[:, None] < K), other=0.0)
        acc = _accumulate(acc, a, w, scale_ptr, frame, k0, K, SCALE_A, UPCAST, DOT, BLOCK_K)
    acc = _bias_gelu_sumsq(acc, bias_ptr, part_ptr, pid_m, rn, nmask, N, GELU_SUMSQ, TANH, TANH_ASM)
    offs = rm[:, None] * N + rn[None, :]
    if RESIDUAL:
        acc += tl.load(res_ptr + offs, mask=nmask[None, :], other=0.0).to(tl.float32)
    tl.store(out_ptr + offs, acc.to(out_ptr.dtype.element_ty), mask=nmask[None, :])


@triton.jit
def _accumulate(
    acc, a, w, scale_ptr, frame, k0, K,
    SCALE_A: tl.constexpr, UPCAST: tl.constexpr, DOT: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    """One K tile of both kernels: `a` scaled per column for this frame (in registers, where the tensor cores
    take it from; the weight stays shared, in L2), the product added."""
    if SCALE_A:
        kk = k0 + tl.arange(0, BLOCK_K)
        s = tl.load(scale_ptr + frame * K + kk, mask=kk < K, other=0.0)
        a = (a.to(tl.float32) * s[None, :]).to(a.dtype)
    if UPCAST:
        a = a.to(tl.float32)
        w = w.to(tl.float32)
    return tl.dot(a, w, acc, input_precision=DOT)


@triton.jit
def _bias_gelu_sumsq(
    acc, bias_ptr, part_ptr, pid_m, rn, nmask, N,
    GELU_SUMSQ: tl.constexpr, TANH: tl.constexpr, TANH_ASM: tl.constexpr,
):  # fmt: skip
    """The epilogue both kernels share: bias, then GELU (exact, or its tanh form) and its per-column sums of
    squares for this row tile."""
    acc += tl.load(bias_ptr + rn, mask=nmask, other=0.0).to(tl.float32)[None, :]
    if GELU_SUMSQ:
        acc = _gelu_tanh(acc, TANH_ASM) if TANH else _gelu(acc)
        tl.store(part_ptr + pid_m * N + rn, tl.sum(acc * acc, axis=0), mask=nmask)
    return acc


@triton.jit
def _tma_linear_kernel(
    a_desc, w_desc, res_desc, out_desc, bias_ptr, part_ptr, scale_ptr, N, K, HW,
    GELU_SUMSQ: tl.constexpr, RESIDUAL: tl.constexpr, SCALE_A: tl.constexpr, TANH: tl.constexpr,
    TANH_ASM: tl.constexpr, UPCAST: tl.constexpr, DOT: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    pid_m, off_m, off_n = _tile_origin(N, BLOCK_M, BLOCK_N)  # whole tiles by descriptor, from their corner
    rn = off_n + tl.arange(0, BLOCK_N)  # the columns, for the bias and the sums of squares
    nmask = rn < N
    frame = off_m // HW
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        a = a_desc.load([off_m, k0])
        w = w_desc.load([off_n, k0]).T  # the weight's (BLOCK_N, BLOCK_K) rows as the (K, N) operand
        acc = _accumulate(acc, a, w, scale_ptr, frame, k0, K, SCALE_A, UPCAST, DOT, BLOCK_K)
    acc = _bias_gelu_sumsq(acc, bias_ptr, part_ptr, pid_m, rn, nmask, N, GELU_SUMSQ, TANH, TANH_ASM)
    if RESIDUAL:
        acc += res_desc.load([off_m, off_n]).to(tl.float32)
    out_desc.store([off_m, off_n], acc.to(out_desc.dtype))


Wrap = Callable[[object], object]

# Launch settings that beat the rule in `linear` for the base model's shapes, by (kernel, K, N), from the tile
# sweep at batch 64 on the H100 (bench_kernels.py; docs/performance.md). Other shapes take the rule.
MEASURED = {
    ("residual", 384, 96): {"BLOCK_N": 128, "BLOCK_K": 64, "num_warps": 4, "num_stages": 4},
    ("residual", 1536, 384): {"BLOCK_N": 128, "BLOCK_K": 64, "num_warps": 8, "num_stages": 3},
    ("gelu", 768, 3072): {"BLOCK_N": 128, "BLOCK_K": 64, "num_warps": 4, "num_stages": 3},
}
# The same for the TMA kernel, from its sweep at batch 64 on the H200 (bench_gemm_tma.py).
MEASURED_TMA = {
    ("residual", 768, 192): {"BLOCK_N": 64, "num_warps": 4, "num_stages": 3},
    ("residual", 3072, 768): {"BLOCK_N": 256},
}
# Shared memory for the TMA kernel's stages of `a` and weight tiles, which it buffers whole: below the 227 KB a
# program may take on sm_90, with room for its barriers. fp32 tiles (precision fp32) take fewer stages.
TMA_STAGE_BYTES = 200 * 1024


def _identity(kernel):
    return kernel


def row_block(hw: int) -> int | None:
    """The largest GEMM row tile that divides a frame's pixel count; None where none does."""
    return next((b for b in ROW_BLOCKS if hw % b == 0), None)


def tma_fits(*tensors: torch.Tensor) -> bool:
    """The copy engine needs each row (and each tensor's start) on a 16-byte boundary. While torch.compile
    traces, a storage offset cannot be asked without breaking the graph, so there only the rows are checked:
    the compiled block hands the kernels whole buffers (its input's rows, a GEMM's output, the weights)."""
    rows = all((t.stride(0) * t.element_size()) % 16 == 0 for t in tensors)
    if torch.compiler.is_compiling():
        return rows
    return rows and all((t.storage_offset() * t.element_size()) % 16 == 0 for t in tensors)


def has_tma(device: torch.device) -> bool:
    """Whether the GPU has Hopper's bulk tensor copy engine (compute capability 9.0 on). torch.compile folds
    get_device_properties to a constant, so traced code may ask."""
    return device.type == "cuda" and torch.cuda.get_device_properties(device).major >= 9


def use_tma(a: torch.Tensor) -> bool:
    """The TMA kernel where the GPU has the copy engine, when called with real tensors: the registered ops'
    tracing for torch.compile (fake tensors) does not capture tensor descriptors (torch 2.11 and 2.13; inductor
    then fails on them), so through the registered ops compiled models keep per-thread loads. Launched straight
    from traced code, dynamo captures them (fused_ops.tma_inline)."""
    return not INTERPRET and not is_fake(a) and has_tma(a.device)


def launch_settings(kind: str, k: int, n: int, block_m: int, tma: bool, element_size: int = 2) -> dict:
    """BLOCK_M/N/K, warps and stages for one of the two GEMMs (kind "gelu" or "residual") from the kernel
    sweeps (docs/performance.md): narrow column tiles for the GELU GEMM and the narrow outputs, wider ones for
    the residual GEMM; for the TMA kernel, as many of the swept stages as fit TMA_STAGE_BYTES for operands of
    `element_size` bytes."""
    if tma:
        wide = kind == "residual"
        params = {"BLOCK_M": block_m, "BLOCK_N": 128 if wide else 64, "BLOCK_K": 64 if wide or k >= 768 else 32}
        params |= {"num_warps": 8 if wide and n >= 384 else 4, "num_stages": 4 if wide and n < 384 else 3}
        params |= MEASURED_TMA.get((kind, k, n), {})
        stage = (params["BLOCK_M"] + params["BLOCK_N"]) * params["BLOCK_K"] * element_size
        return params | {"num_stages": min(params["num_stages"], TMA_STAGE_BYTES // stage)}
    wide = kind == "residual" and n >= 384
    params = {"BLOCK_M": block_m, "BLOCK_N": 256 if wide else 64, "BLOCK_K": 64 if k >= 384 else 32}
    params |= {"num_warps": 8 if wide else 4, "num_stages": 3}
    return params | MEASURED.get((kind, k, n), {})


def kernel_flags(gelu_sumsq: bool, residual: bool, scale_a: bool, dtype: torch.dtype, tanh: bool = False) -> dict:
    """The constexpr switches both GEMM kernels take: which epilogue (GELU exact or in its tanh form), whether
    `a` is scaled, and how products are computed for operands of `dtype`."""
    return dict(
        GELU_SUMSQ=gelu_sumsq,
        RESIDUAL=residual,
        SCALE_A=scale_a,
        TANH=tanh,
        TANH_ASM=not INTERPRET,
        UPCAST=INTERPRET,
        DOT="ieee" if dtype == torch.float32 else "tf32",  # fp32 models get fp32 products, not TF32
    )


def linear(
    a: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    hw: int,
    gelu_sumsq: bool = False,
    residual: torch.Tensor | None = None,
    a_scale: torch.Tensor | None = None,
    wrap: Wrap = _identity,
    tune: dict | None = None,
    tma: bool | None = None,
    tanh: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """a (M, K) with M a whole number of frames of hw rows; weight (N, K); bias (N,); a_scale (frames, K) fp32
    scales a's columns per frame before the product (GRN's scale). Returns (out (M, N) in a's dtype, the
    per-frame column sums of squares (frames, N) fp32 of GELU's output when gelu_sumsq, else None). Needs
    row_block(hw); `tune` overrides BLOCK_M (dividing hw), BLOCK_N, BLOCK_K, num_warps, num_stages. `tma`:
    the TMA kernel (True), per-thread loads (False), or the TMA kernel where use_tma and tma_fits say (None).
    `tanh`: GELU's tanh form instead of the exact GELU."""
    a, weight = a.contiguous(), weight.contiguous()  # dense row-major, as the kernel indexes them
    residual = residual.contiguous() if residual is not None else None
    m, k = a.shape
    n = weight.shape[-2]
    block_m = row_block(hw)
    if block_m is None or m % hw:
        raise ValueError(f"linear: a frame of {hw} rows is not a whole number of {ROW_BLOCKS[-1]}-row tiles")
    out = torch.empty((m, n), dtype=a.dtype, device=a.device)
    operands = [t for t in (a, weight, residual, out) if t is not None]
    if tma is None:
        tma = use_tma(a) and tma_fits(*operands)
    elif tma and not tma_fits(*operands):
        raise ValueError("linear: rows not on 16-byte boundaries cannot move by TMA")
    params = launch_settings("gelu" if gelu_sumsq else "residual", k, n, block_m, tma, a.element_size())
    params |= tune or {}
    tiles_m = m // params["BLOCK_M"]
    part = torch.empty((tiles_m, n) if gelu_sumsq else (1,), dtype=torch.float32, device=a.device)
    grid = (tiles_m * triton.cdiv(n, params["BLOCK_N"]),)
    res = residual if residual is not None else out
    scale = a_scale.contiguous() if a_scale is not None else part
    flags = kernel_flags(gelu_sumsq, residual is not None, a_scale is not None, a.dtype, tanh)
    if tma:
        bm, bn, bk = params["BLOCK_M"], params["BLOCK_N"], params["BLOCK_K"]
        wrap(_tma_linear_kernel)[grid](
            TensorDescriptor.from_tensor(a, [bm, bk]), TensorDescriptor.from_tensor(weight, [bn, bk]),
            TensorDescriptor.from_tensor(res, [bm, bn]), TensorDescriptor.from_tensor(out, [bm, bn]),
            bias, part, scale, n, k, hw, **flags, **params,
        )  # fmt: skip
    else:
        wrap(_linear_kernel)[grid](
            a, weight, bias, res, out, part, scale, m, n, k, hw,
            EVEN_K=k % params["BLOCK_K"] == 0, **flags, **params,
        )  # fmt: skip
    sumsq = part.view(m // hw, hw // params["BLOCK_M"], n).sum(1) if gelu_sumsq else None
    return out, sumsq
