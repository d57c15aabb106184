"""The head's finest lateral after its conv, as two Triton kernels: GroupNorm, GELU and the 1x1 projection to the
few class channels, on NHWC tensors.

Compiled as PyTorch ops, inductor reads the conv's 256-channel map at 1/4 resolution once for GroupNorm's
statistics and again, slowly, in a reduction over the channels that applies GroupNorm and GELU and sums each class's
products. Here both passes read the map at the memory's pace: the first writes each tile's per-group mean and sum
of squared deviations (merged exactly by Chan's formula, so no sum of squares of uncentred values loses precision),
the second normalises a tile of pixels across all channels, applies GELU and writes only the class logits.

Runs under TRITON_INTERPRET=1 on CPU tensors too, which is how CI checks it.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .triton_kernels import Wrap, _gelu, _identity

BLOCK_P = 64  # pixels per program; a frame's pixels must be a whole number of tiles
MAX_CLASSES = 4


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
def _group_partials_kernel(x_ptr, mean_ptr, m2_ptr, HW, C: tl.constexpr, G: tl.constexpr, BLOCK_P: tl.constexpr):
    """Per tile and group: the mean and the sum of squared deviations from it, at [program, group]."""
    _, _, x = _tile(x_ptr, HW, C, BLOCK_P)
    xg = tl.reshape(x, [BLOCK_P, G, C // G])
    mean = tl.sum(tl.sum(xg, axis=2), axis=0) / (BLOCK_P * (C // G))
    d = xg - mean[None, :, None]
    m2 = tl.sum(tl.sum(d * d, axis=2), axis=0)
    g = tl.arange(0, G)
    tl.store(mean_ptr + tl.program_id(0) * G + g, mean)
    tl.store(m2_ptr + tl.program_id(0) * G + g, m2)


@triton.jit
def _norm_gelu_project_kernel(
    x_ptr, scale_ptr, shift_ptr, w_ptr, b_ptr, out_ptr, HW,
    C: tl.constexpr, K: tl.constexpr, BLOCK_P: tl.constexpr,
):  # fmt: skip
    """out[frame, k, pixel] = sum over c of GELU(x * scale + shift)[c] * w[k, c], plus b[k]: scale and shift per
    frame and channel hold GroupNorm's statistics and affine parameters."""
    frame, p0, x = _tile(x_ptr, HW, C, BLOCK_P)
    c = tl.arange(0, C)
    scale = tl.load(scale_ptr + frame * C + c)
    shift = tl.load(shift_ptr + frame * C + c)
    y = _gelu(x * scale[None, :] + shift[None, :])
    pixels = p0 + tl.arange(0, BLOCK_P)
    for k in tl.static_range(K):
        w = tl.load(w_ptr + k * C + c).to(tl.float32)
        logit = tl.sum(y * w[None, :], axis=1) + tl.load(b_ptr + k).to(tl.float32)
        tl.store(out_ptr + (frame.to(tl.int64) * K + k) * HW + pixels, logit)


def fusable(channels: int, groups: int, hw: int, classes: int) -> bool:
    """Whether a level fits: channels a power of two in whole groups, whole tiles per frame, few classes."""
    power_of_two = channels & (channels - 1) == 0
    return power_of_two and channels % groups == 0 and hw % BLOCK_P == 0 and 0 < classes <= MAX_CLASSES


def group_stats(x: torch.Tensor, groups: int, wrap: Wrap = _identity) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (biased) variance of x (N, H, W, C) per frame and group of C/groups channels, (N, groups) fp32."""
    n, h, w, c = x.shape
    tiles = h * w // BLOCK_P
    mean = torch.empty((n, tiles, groups), dtype=torch.float32, device=x.device)
    m2 = torch.empty_like(mean)
    wrap(_group_partials_kernel)[(n * tiles,)](x, mean, m2, h * w, C=c, G=groups, BLOCK_P=BLOCK_P, num_warps=8)
    # Chan's merge of equal-sized tiles: the deviations within tiles plus the tiles' means about the whole mean
    whole = mean.mean(1)
    count = BLOCK_P * (c // groups)
    var = (m2.sum(1) + count * (mean - whole[:, None]).square().sum(1)) / (count * tiles)
    return whole, var


def norm_gelu_project(
    x: torch.Tensor,
    groups: int,
    gn_weight: torch.Tensor,
    gn_bias: torch.Tensor,
    eps: float,
    weight: torch.Tensor,
    bias: torch.Tensor,
    wrap: Wrap = _identity,
) -> torch.Tensor:
    """conv1x1(GELU(GroupNorm(x))) with conv1x1's weight (K, C) and bias (K,): x (N, H, W, C) dense NHWC; returns
    (N, K, H, W) fp32. GroupNorm's statistics and everything after them in fp32; GELU exact (erf)."""
    n, h, w, c = x.shape
    k = weight.shape[0]
    if not fusable(c, groups, h * w, k):
        raise ValueError(
            f"norm_gelu_project: {c} channels in {groups} groups, {h}x{w} pixels and {k} classes expected to be "
            f"a power of two, whole groups, whole {BLOCK_P}-pixel tiles, at most {MAX_CLASSES}"
        )
    x = x.contiguous()
    mean, var = group_stats(x, groups, wrap)
    rstd = torch.rsqrt(var + eps).repeat_interleave(c // groups, dim=1)  # (N, C)
    scale = rstd * gn_weight.float()
    shift = gn_bias.float() - mean.repeat_interleave(c // groups, dim=1) * scale
    out = torch.empty((n, k, h, w), dtype=torch.float32, device=x.device)
    tiles = h * w // BLOCK_P
    wrap(_norm_gelu_project_kernel)[(n * tiles,)](
        x, scale, shift, weight.reshape(k, c).contiguous(), bias, out, h * w, C=c, K=k, BLOCK_P=BLOCK_P, num_warps=8
    )  # fmt: skip
    return out
