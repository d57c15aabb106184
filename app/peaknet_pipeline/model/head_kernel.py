"""The head's laterals after their last conv, as two Triton kernels: GroupNorm, GELU, the sum of the laterals that
share a resolution and the 1x1 projection to the few class channels, on NHWC tensors.

Compiled as PyTorch ops, inductor reads a lateral's 256-channel conv output once for GroupNorm's statistics and
again, slowly, in a reduction over the channels that applies GroupNorm and GELU and sums each class's
products. Here two passes read the map: the first writes each tile's per-group mean and sum of squared deviations
(merged exactly by Chan's formula, so no sum of squares of uncentred values loses precision), the second normalises
a tile of pixels across all channels of each level, applies GELU, sums the levels and writes only the class
logits. The conv runs without its bias and the kernels add it (the first as it loads a tile, the second through
GroupNorm's shift): a registered op's input is written whole, so a bias added by inductor would cost a pass.

Runs under TRITON_INTERPRET=1 on CPU tensors too, which is how CI checks it.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .triton_kernels import Wrap, _gelu, _identity

BLOCK_P = 64  # pixels per program; a frame's pixels must be a whole number of tiles
MAX_CLASSES = 4
MAX_LEVELS = 3  # laterals summed before their projection (the head's three coarser ones)


@triton.jit
def _tile(x_ptr, HW, C: tl.constexpr, BLOCK_P: tl.constexpr):
    """This program's frame, first pixel and (BLOCK_P, C) tile in fp32; programs run frame by frame."""
    blocks = HW // BLOCK_P
    frame = tl.program_id(0) // blocks
    p0 = (tl.program_id(0) % blocks) * BLOCK_P
    rows = frame.to(tl.int64) * HW + p0 + tl.arange(0, BLOCK_P)
    x = tl.load(x_ptr + rows[:, None] * C + tl.arange(0, C)[None, :]).to(tl.float32)
    return frame, p0, x


@triton.jit
def _group_partials_kernel(
    x_ptr, b_ptr, mean_ptr, m2_ptr, HW, C: tl.constexpr, G: tl.constexpr, BLOCK_P: tl.constexpr,
):  # fmt: skip
    """Per tile and group of x plus the conv's bias b: the mean and the sum of squared deviations from it, at
    [program, group]."""
    _, _, x = _tile(x_ptr, HW, C, BLOCK_P)
    x += tl.load(b_ptr + tl.arange(0, C)).to(tl.float32)[None, :]
    xg = tl.reshape(x, [BLOCK_P, G, C // G])
    mean = tl.sum(tl.sum(xg, axis=2), axis=0) / (BLOCK_P * (C // G))
    d = xg - mean[None, :, None]
    m2 = tl.sum(tl.sum(d * d, axis=2), axis=0)
    g = tl.arange(0, G)
    tl.store(mean_ptr + tl.program_id(0) * G + g, mean)
    tl.store(m2_ptr + tl.program_id(0) * G + g, m2)


@triton.jit
def _normed_gelu(x_ptr, scale_ptr, shift_ptr, level: tl.constexpr, LEVEL_STRIDE, HW, C: tl.constexpr,
                 BLOCK_P: tl.constexpr):  # fmt: skip
    """GELU(x * scale + shift) of one level's tile; scale and shift (levels, N, C) hold GroupNorm's statistics and
    affine parameters per frame and channel."""
    frame, p0, x = _tile(x_ptr, HW, C, BLOCK_P)
    at = level * LEVEL_STRIDE + frame * C + tl.arange(0, C)
    return frame, p0, _gelu(x * tl.load(scale_ptr + at)[None, :] + tl.load(shift_ptr + at)[None, :])


@triton.jit
def _norm_gelu_project_kernel(
    x0_ptr, x1_ptr, x2_ptr, scale_ptr, shift_ptr, w_ptr, b_ptr, out_ptr, HW, LEVEL_STRIDE,
    C: tl.constexpr, K: tl.constexpr, LEVELS: tl.constexpr, HAS_BIAS: tl.constexpr, BLOCK_P: tl.constexpr,
):  # fmt: skip
    """out[frame, k, pixel] = sum over c of (the LEVELS levels' GELU(x * scale + shift) summed)[c] * w[k, c], plus
    b[k] where HAS_BIAS."""
    frame, p0, y = _normed_gelu(x0_ptr, scale_ptr, shift_ptr, 0, LEVEL_STRIDE, HW, C, BLOCK_P)
    if LEVELS > 1:
        y += _normed_gelu(x1_ptr, scale_ptr, shift_ptr, 1, LEVEL_STRIDE, HW, C, BLOCK_P)[2]
    if LEVELS > 2:
        y += _normed_gelu(x2_ptr, scale_ptr, shift_ptr, 2, LEVEL_STRIDE, HW, C, BLOCK_P)[2]
    c = tl.arange(0, C)
    pixels = p0 + tl.arange(0, BLOCK_P)
    for k in tl.static_range(K):
        logit = tl.sum(y * tl.load(w_ptr + k * C + c).to(tl.float32)[None, :], axis=1)
        if HAS_BIAS:
            logit += tl.load(b_ptr + k).to(tl.float32)
        tl.store(out_ptr + (frame.to(tl.int64) * K + k) * HW + pixels, logit)


def project_warps(levels: int) -> int:
    """Warps of the projection kernel: a sum of several levels holds two tiles at once, which at 8 warps spills."""
    return 8 if levels == 1 else 16


def fusable(channels: int, groups: int, hw: int, classes: int) -> bool:
    """Whether a level fits: channels a power of two in whole groups, whole tiles per frame, few classes."""
    power_of_two = channels & (channels - 1) == 0
    return power_of_two and channels % groups == 0 and hw % BLOCK_P == 0 and 0 < classes <= MAX_CLASSES


def group_stats(
    x: torch.Tensor, bias: torch.Tensor, groups: int, wrap: Wrap = _identity
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (biased) variance of x (N, H, W, C) plus bias (C,) per frame and group of C/groups channels,
    (N, groups) fp32."""
    n, h, w, c = x.shape
    tiles = h * w // BLOCK_P
    mean = torch.empty((n, tiles, groups), dtype=torch.float32, device=x.device)
    m2 = torch.empty_like(mean)
    wrap(_group_partials_kernel)[(n * tiles,)](x, bias, mean, m2, h * w, C=c, G=groups, BLOCK_P=BLOCK_P, num_warps=8)
    # Chan's merge of equal-sized tiles: the deviations within tiles plus the tiles' means about the whole mean
    whole = mean.mean(1)
    count = BLOCK_P * (c // groups)
    var = (m2.sum(1) + count * (mean - whole[:, None]).square().sum(1)) / (count * tiles)
    return whole, var


def norm_gelu_project(
    xs: list[torch.Tensor],
    conv_biases: list[torch.Tensor],
    groups: int,
    gn_weights: list[torch.Tensor],
    gn_biases: list[torch.Tensor],
    eps: list[float],
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    wrap: Wrap = _identity,
    tune: dict | None = None,
) -> torch.Tensor:
    """conv1x1(sum over levels of GELU(GroupNorm_l(xs[l] + conv_biases[l]))) with conv1x1's weight (K, C) and bias
    (K,) or none: xs one to MAX_LEVELS (N, H, W, C) dense NHWC tensors of one shape (3x3 conv outputs without their
    bias (C,), which is added here, so no pass of its own writes them again), each with its GroupNorm's parameters
    and eps; returns (N, K, H, W) fp32. GroupNorm's statistics and everything after them in fp32; GELU exact (erf).
    `tune` overrides the projection kernel's BLOCK_P and num_warps (benchmarks)."""
    n, h, w, c = xs[0].shape
    k = weight.shape[0]
    if not (fusable(c, groups, h * w, k) and 0 < len(xs) <= MAX_LEVELS and all(x.shape == xs[0].shape for x in xs)):
        raise ValueError(
            f"norm_gelu_project: {len(xs)} levels of {tuple(xs[0].shape)} ({c} channels in {groups} groups) and {k} "
            f"classes: expected 1 to {MAX_LEVELS} levels of one shape, channels a power of two in whole groups, "
            f"whole {BLOCK_P}-pixel tiles, at most {MAX_CLASSES} classes"
        )
    xs = [x.contiguous() for x in xs]
    per_level = zip(xs, conv_biases, gn_weights, gn_biases, eps)
    scales, shifts = zip(*(affine(x, cb, groups, g, b, e, wrap) for x, cb, g, b, e in per_level))
    scale, shift = torch.stack(scales), torch.stack(shifts)  # (levels, N, C)
    out = torch.empty((n, k, h, w), dtype=torch.float32, device=xs[0].device)
    padded = xs + xs[:1] * (MAX_LEVELS - len(xs))  # unused pointers for the levels not given
    launch = {"BLOCK_P": BLOCK_P, "num_warps": project_warps(len(xs))} | (tune or {})
    if h * w % launch["BLOCK_P"]:
        raise ValueError(f"norm_gelu_project: tune {tune}: {h * w} pixels per frame are not whole tiles")
    wrap(_norm_gelu_project_kernel)[(n * (h * w // launch["BLOCK_P"]),)](
        *padded, scale, shift, weight.reshape(k, c).contiguous(), bias if bias is not None else scale, out, h * w,
        n * c, C=c, K=k, LEVELS=len(xs), HAS_BIAS=bias is not None, **launch,
    )  # fmt: skip
    return out


def affine(
    x: torch.Tensor,
    conv_bias: torch.Tensor,
    groups: int,
    gn_weight: torch.Tensor,
    gn_bias: torch.Tensor,
    eps: float,
    wrap: Wrap = _identity,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GroupNorm of x (N, H, W, C) plus conv_bias (C,) as x * scale + shift, scale and shift (N, C) fp32."""
    c = x.shape[-1]
    mean, var = group_stats(x, conv_bias, groups, wrap)
    scale = torch.rsqrt(var + eps).repeat_interleave(c // groups, dim=1) * gn_weight.float()
    mean = mean.repeat_interleave(c // groups, dim=1)
    return scale, gn_bias.float() + (conv_bias.float() - mean) * scale
