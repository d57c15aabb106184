"""One BiFPN step as a Triton kernel on NHWC rows: the weighted fusion of its inputs, the 1x1 conv, LayerNorm
over the channels, GELU and the residual, in one pass.

    out = GELU(LayerNorm(W @ fused)) + p,   fused = c_p * p + c_m * m + c_q * resampled

where `resampled` is the x2 bilinear upsampling of the coarser level (top-down steps) or the 2x2 mean of the
finer one (bottom-up steps), taken as the GEMM's input tile is loaded; c_* are the step's normalised fusion
weights. A row tile holds every output channel, so LayerNorm's statistics come from the accumulator itself. The
fused input and the conv's output never reach memory: per step the kernel reads p, m and the other level and
writes the output, where the PyTorch ops write and read the fused input, the conv's output and LayerNorm's.
p may come without the bias of the 1x1 conv that made it (the BiFPN's first block, fed by the backbone's
adapters); the kernel then adds it as it reads p, so that conv's output is written once.

Runs under TRITON_INTERPRET=1 on CPU tensors too, which is how CI checks it.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .triton_kernels import INTERPRET, Wrap, _gelu, _identity

UP, DOWN = 0, 1  # the resampled input: the coarser level upsampled x2, or the finer level's 2x2 means


@triton.jit
def _rows(x_ptr, row, kk, C: tl.constexpr):
    """x's channels kk of pixel rows `row` (BLOCK_M,), as (BLOCK_M, BLOCK_K) fp32."""
    return tl.load(x_ptr + row[:, None] * C + kk[None, :]).to(tl.float32)


@triton.jit
def _p_rows(p_ptr, pb_ptr, row, kk, C: tl.constexpr, P_BIAS: tl.constexpr):
    """p's channels kk of rows `row` in fp32, plus their bias where p comes without it."""
    p = _rows(p_ptr, row, kk, C)
    if P_BIAS:
        p += tl.load(pb_ptr + kk).to(tl.float32)[None, :]
    return p


@triton.jit
def _upsampled(r_ptr, frame, y, x, H, W, kk, C: tl.constexpr):
    """F.interpolate(scale 2, bilinear, align_corners=False) of the coarser level (H/2 x W/2) at pixels (y, x)."""
    hc, wc = H // 2, W // 2
    sy = tl.maximum(y.to(tl.float32) * 0.5 - 0.25, 0.0)
    sx = tl.maximum(x.to(tl.float32) * 0.5 - 0.25, 0.0)
    y0, x0 = sy.to(tl.int32), sx.to(tl.int32)  # floor: sy, sx >= 0
    ly, lx = sy - y0, sx - x0
    y1, x1 = tl.minimum(y0 + 1, hc - 1), tl.minimum(x0 + 1, wc - 1)
    base = frame * hc
    top = (1.0 - lx)[:, None] * _rows(r_ptr, (base + y0) * wc + x0, kk, C)
    top += lx[:, None] * _rows(r_ptr, (base + y0) * wc + x1, kk, C)
    bottom = (1.0 - lx)[:, None] * _rows(r_ptr, (base + y1) * wc + x0, kk, C)
    bottom += lx[:, None] * _rows(r_ptr, (base + y1) * wc + x1, kk, C)
    return (1.0 - ly)[:, None] * top + ly[:, None] * bottom


@triton.jit
def _pooled(r_ptr, frame, y, x, H, W, kk, C: tl.constexpr):
    """F.avg_pool2d(2) of the finer level (2H x 2W) at pixels (y, x)."""
    wf = 2 * W
    r00 = (frame * 2 * H + 2 * y) * wf + 2 * x
    s = _rows(r_ptr, r00, kk, C) + _rows(r_ptr, r00 + 1, kk, C)
    s += _rows(r_ptr, r00 + wf, kk, C) + _rows(r_ptr, r00 + wf + 1, kk, C)
    return 0.25 * s


@triton.jit
def _bifpn_step_kernel(
    p_ptr, pb_ptr, m_ptr, r_ptr, coef_ptr, w_ptr, ln_w_ptr, ln_b_ptr, out_ptr, H, W, eps,
    C: tl.constexpr, RESAMPLE: tl.constexpr, HAS_M: tl.constexpr, P_BIAS: tl.constexpr, UPCAST: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    row = (tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)  # BLOCK_M divides the pixels
    frame, y, x = row // (H * W), ((row // W) % H).to(tl.int32), (row % W).to(tl.int32)
    cn = tl.arange(0, C)
    c_p, c_m, c_r = tl.load(coef_ptr), tl.load(coef_ptr + 1), tl.load(coef_ptr + 2)
    acc = tl.zeros([BLOCK_M, C], dtype=tl.float32)
    for k0 in range(0, C, BLOCK_K):
        kk = k0 + tl.arange(0, BLOCK_K)
        if RESAMPLE == 0:  # UP
            a = c_r * _upsampled(r_ptr, frame, y, x, H, W, kk, C)
        else:
            a = c_r * _pooled(r_ptr, frame, y, x, H, W, kk, C)
        a += c_p * _p_rows(p_ptr, pb_ptr, row, kk, C, P_BIAS)
        if HAS_M:
            a += c_m * _rows(m_ptr, row, kk, C)
        w = tl.load(w_ptr + cn[None, :] * C + kk[:, None])  # (K, N) view of the (N, K) weight
        if UPCAST:
            acc = tl.dot(a, w.to(tl.float32), acc, input_precision="ieee")
        else:
            acc = tl.dot(a.to(w.dtype), w, acc)
    mean = tl.sum(acc, axis=1) / C
    d = acc - mean[:, None]
    # fp32 whatever eps's type: inductor passes a float argument as fp64, which would make the epilogue fp64
    rstd = tl.rsqrt((tl.sum(d * d, axis=1) / C + eps).to(tl.float32))
    # The rest by halves of the channels: fewer values live at once, so two programs fit on an SM
    left, right = tl.split(tl.permute(tl.reshape(d, [BLOCK_M, 2, C // 2]), [0, 2, 1]))
    _finish(left, rstd, 0, row, p_ptr, pb_ptr, ln_w_ptr, ln_b_ptr, out_ptr, C, P_BIAS)
    _finish(right, rstd, C // 2, row, p_ptr, pb_ptr, ln_w_ptr, ln_b_ptr, out_ptr, C, P_BIAS)


@triton.jit
def _finish(d, rstd, c0, row, p_ptr, pb_ptr, ln_w_ptr, ln_b_ptr, out_ptr, C: tl.constexpr, P_BIAS: tl.constexpr):
    """LayerNorm's scale and shift, GELU and the residual for channels c0 .. c0 + C/2 of the centred rows d;
    stored."""
    cc = c0 + tl.arange(0, C // 2)
    y = d * rstd[:, None] * tl.load(ln_w_ptr + cc).to(tl.float32)[None, :]
    y += tl.load(ln_b_ptr + cc).to(tl.float32)[None, :]
    out = _gelu(y) + _p_rows(p_ptr, pb_ptr, row, cc, C, P_BIAS)
    tl.store(out_ptr + row[:, None] * C + cc[None, :], out.to(out_ptr.dtype.element_ty))


def fusable(channels: int, pixels: int) -> bool:
    """Whether a level fits the kernel: all channels in one tile (a power of two up to 256), and frames of a
    whole number of 16-row tiles."""
    return 16 <= channels <= 256 and channels & (channels - 1) == 0 and pixels % 16 == 0


def launch_settings(pixels: int, channels: int) -> dict:
    """64-pixel row tiles of all channels at 8 warps, K tiles of 32: 128 registers and 94 KB of shared memory on
    sm_90, so two programs fit on an SM; the best or near it of bench_bifpn.py's settings at every level."""
    block_m = next(b for b in (64, 32, 16) if pixels % b == 0)
    return {"BLOCK_M": block_m, "BLOCK_K": min(channels, 32), "num_warps": 4 if block_m < 64 else 8, "num_stages": 3}


def bifpn_step(
    p: torch.Tensor,
    m: torch.Tensor | None,
    other: torch.Tensor,
    resample: int,
    coefficients: torch.Tensor,
    weight: torch.Tensor,
    ln_weight: torch.Tensor,
    ln_bias: torch.Tensor,
    eps: float,
    p_bias: torch.Tensor | None = None,
    wrap: Wrap = _identity,
    tune: dict | None = None,
) -> torch.Tensor:
    """p and m (N, H, W, C) contiguous (m may be None), other the coarser level (N, H/2, W/2, C) when resample is
    UP or the finer one (N, 2H, 2W, C) when DOWN; coefficients (3,) fp32: the weights of p, m and the resampled
    level; weight (C, C) the 1x1 conv's; p_bias (C,), where given, is added to p as it is read. Returns
    GELU(LayerNorm(weight @ fused)) + p, (N, H, W, C). `tune`
    overrides BLOCK_M (dividing the frame's pixels), BLOCK_K, num_warps, num_stages."""
    n, h, w, c = p.shape
    if not fusable(c, h * w):
        raise ValueError(f"bifpn_step: {c} channels, {h}x{w} pixels do not fit the kernel")
    expected = (n, h // 2, w // 2, c) if resample == UP else (n, 2 * h, 2 * w, c)
    if tuple(other.shape) != expected or (resample == UP and (h % 2 or w % 2)):
        raise ValueError(f"bifpn_step: the other level is {tuple(other.shape)}, expected {expected}")
    out = torch.empty_like(p)
    settings = launch_settings(h * w, c) | (tune or {})
    grid = (n * h * w // settings["BLOCK_M"],)
    wrap(_bifpn_step_kernel)[grid](
        p, p_bias if p_bias is not None else coefficients, m if m is not None else p, other, coefficients,
        weight.contiguous(), ln_weight, ln_bias, out, h, w, eps, C=c, RESAMPLE=resample, HAS_M=m is not None,
        P_BIAS=p_bias is not None, UPCAST=INTERPRET or p.dtype == torch.float32, **settings,
    )  # fmt: skip
    return out
