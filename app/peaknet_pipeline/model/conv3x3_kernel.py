"""The head's 3x3 convs (padding 1, bias) as an implicit GEMM in Triton on NHWC tensors, in bf16 or FP8.

Output pixels are the GEMM's rows and output channels its columns; K runs over the nine taps times the input
channels. A program's K loop is one flat loop (tap-major), so Triton pipelines its loads across taps: each
step loads BLOCK_M input pixels shifted by the tap, masked where the shift leaves the frame (the zero padding),
and a (BLOCK_K, BLOCK_N) tile of the weights held (C_out, 9 * C_in), K contiguous.

In FP8 the weights come in as e4m3 scaled per output channel (`quantize_weights`) and the input with one scale
per frame (`frame_scales`): either already e4m3 (`quantize_frames`) or in bf16, quantised by the kernel as it
loads each tile; the fp32 sums are divided by both scales in the epilogue. Scaling per frame, not per
batch, keeps a frame's result independent of the frames batched with it; a tile never spans two frames
(H * W a multiple of BLOCK_M), so its frame scale is one number.

Runs under TRITON_INTERPRET=1 on CPU tensors too, which is how CI checks it.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .triton_kernels import Wrap, _identity

FP8_MAX = 448.0  # e4m3's largest finite value
FP8_LIMIT = tl.constexpr(FP8_MAX)  # the same, as Triton kernels may read a global


@triton.jit
def _conv3x3_kernel(
    x_ptr, w_ptr, b_ptr, out_ptr, xs_ptr, ws_ptr, H, W, C: tl.constexpr, N_OUT: tl.constexpr,
    SCALED: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    rows = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    rem = rows % (H * W)
    h = rem // W
    w = rem % W
    ks = tl.arange(0, BLOCK_K)
    k_steps: tl.constexpr = C // BLOCK_K
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    tile_scale = 1.0
    if SCALED:  # the tile's frame's scale: a tile never spans two frames
        tile_scale = tl.load(xs_ptr + (tl.program_id(0).to(tl.int64) * BLOCK_M) // (H * W))
    for step in range(9 * k_steps):
        tap = step // k_steps
        k0 = (step % k_steps) * BLOCK_K
        dy = tap // 3 - 1
        dx = tap % 3 - 1
        ok = (h + dy >= 0) & (h + dy < H) & (w + dx >= 0) & (w + dx < W)
        src = rows + dy * W + dx
        a = tl.load(x_ptr + src[:, None] * C + (k0 + ks)[None, :], mask=ok[:, None], other=0.0)
        if SCALED and x_ptr.dtype.element_ty != tl.float8e4nv:
            a = tl.clamp(a.to(tl.float32) * tile_scale, -FP8_LIMIT, FP8_LIMIT).to(tl.float8e4nv)
        b = tl.load(w_ptr + cols[None, :] * (9 * C) + (tap * C + k0 + ks)[:, None])
        acc = tl.dot(a, b, acc)
    bias = tl.load(b_ptr + cols).to(tl.float32)[None, :]
    if SCALED:
        acc = acc / (tile_scale * tl.load(ws_ptr + cols)[None, :])
    out = out_ptr + rows[:, None] * N_OUT + cols[None, :]
    tl.store(out, (acc + bias).to(out_ptr.dtype.element_ty))


def tiles(hw: int, c: int, n_out: int, fp8: bool) -> bool:
    """Whether the kernel's launch settings tile frames of hw pixels, c -> n_out channels."""
    params = launch_settings(hw, c, n_out, fp8)
    return not (hw % params["BLOCK_M"] or c % params["BLOCK_K"] or n_out % params["BLOCK_N"])


def launch_settings(hw: int, c: int, n_out: int, fp8: bool) -> dict:
    """BLOCK_M, BLOCK_N, BLOCK_K, num_warps and num_stages for frames of hw pixels, c -> n_out channels: the
    best or next to best at every head resolution of a 512x512 frame (bench_head_conv.py)."""
    return {
        "BLOCK_M": 128 if hw % 128 == 0 else 64,
        "BLOCK_N": next((b for b in (256, 128, 64) if n_out % b == 0), 64),
        "BLOCK_K": 128 if fp8 and c % 128 == 0 else 64,
        "num_warps": 8,
        "num_stages": 3,
    }


def weights_as_gemm(weight: torch.Tensor) -> torch.Tensor:
    """nn.Conv2d's (C_out, C_in, 3, 3) weight as (C_out, 9 * C_in), K tap-major as the kernel walks it."""
    return weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1).contiguous()


def quantize_weights(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(C_out, K) weights to e4m3, each output channel scaled so its largest |value| is FP8_MAX; (q, scale)."""
    scale = FP8_MAX / weight.float().abs().amax(dim=1).clamp(min=1e-12)
    return (weight.float() * scale[:, None]).to(torch.float8_e4m3fn), scale


def frame_scales(x: torch.Tensor) -> torch.Tensor:
    """Per frame of (N, ...) activations, the fp32 factor that maps its largest |value| to FP8_MAX."""
    return FP8_MAX / x.abs().amax(dim=tuple(range(1, x.dim()))).float().clamp(min=1e-12)


def quantize_frames(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, H, W, C) activations to e4m3 by their `frame_scales`; (q, scale)."""
    scale = frame_scales(x)
    q = (x.float() * scale[:, None, None, None]).clamp(-FP8_MAX, FP8_MAX)
    return q.to(torch.float8_e4m3fn), scale


def conv3x3(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    out_dtype: torch.dtype,
    x_scale: torch.Tensor | None = None,
    w_scale: torch.Tensor | None = None,
    wrap: Wrap = _identity,
    tune: dict | None = None,
) -> torch.Tensor:
    """3x3 conv, padding 1, plus bias: x (N, H, W, C) dense NHWC, weight (C_out, 9 * C) from `weights_as_gemm`,
    bias (C_out,). In FP8: the weight from `quantize_weights` with its w_scale, and x either e4m3 from
    `quantize_frames` or bf16, with its x_scale from `frame_scales`. Returns (N, H, W, C_out) in out_dtype."""
    n, h, w, c = x.shape
    n_out = weight.shape[0]
    if weight.shape[1] != 9 * c:
        raise ValueError(f"conv3x3: weight (C_out, 9 * {c}) expected, got {tuple(weight.shape)}")
    params = {**launch_settings(h * w, c, n_out, x_scale is not None), **(tune or {})}
    if (h * w) % params["BLOCK_M"] or c % params["BLOCK_K"] or n_out % params["BLOCK_N"]:
        raise ValueError(f"conv3x3: ({h}x{w}, {c} -> {n_out}) does not tile by {params}")
    out = torch.empty(n, h, w, n_out, device=x.device, dtype=out_dtype)
    scaled = x_scale is not None
    grid = (n * h * w // params["BLOCK_M"], n_out // params["BLOCK_N"])
    wrap(_conv3x3_kernel)[grid](
        x.contiguous(), weight, bias, out, x_scale if scaled else bias, w_scale if scaled else bias, h, w, c, n_out,
        scaled, **params,
    )  # fmt: skip
    return out
