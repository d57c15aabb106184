"""The model's Triton kernels registered as torch ops, so that torch.compile and CUDA graphs take them as they are,
and the switches that choose them (`enable`, by mode): the ConvNeXtV2 block's two GEMMs (triton_kernels.py) and its
depthwise conv (dwconv_kernel.py), the BiFPN step (bifpn_kernel.py), the stem (stem_kernel.py) and the head's
laterals after their conv (head_kernel.py). Compiled on Hopper, the block's forward launches its GEMMs by TMA itself
(tma_inline). Same parameters and numerics (within bf16 rounding) as the plain forwards, which stay the path on
CPU and wherever Triton is missing. With GELU's tanh form, pwconv1 runs on cuBLASLt with bias and GELU in its
epilogue instead of the Triton kernel."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

try:
    from . import bifpn_kernel as bk
    from . import dwconv_kernel as dk
    from . import head_kernel as hk
    from . import stem_kernel as sk
    from . import triton_kernels as tk
except ImportError:  # no Triton (CPU-only installs): the plain forward is used
    bk = dk = hk = sk = tk = None


def available(device: torch.device) -> bool:
    """Whether the pipeline runs the fused block on `device`: Triton and CUDA. (Tests also run it on CPU
    tensors in Triton's interpreter, enabling it by hand.)"""
    return tk is not None and device.type == "cuda"


if tk is not None:
    from torch.library import triton_op, wrap_triton

    @triton_op("peaknet::linear_gelu_sumsq", mutates_args=())
    def linear_gelu_sumsq(
        a: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, hw: int, tanh: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return tk.linear(a, weight, bias, hw, gelu_sumsq=True, wrap=wrap_triton, tanh=tanh)

    @triton_op("peaknet::linear_scaled_residual", mutates_args=())
    def linear_scaled_residual(
        a: torch.Tensor, a_scale: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, residual: torch.Tensor,
        hw: int,
    ) -> torch.Tensor:  # fmt: skip
        return tk.linear(a, weight, bias, hw, residual=residual, a_scale=a_scale, wrap=wrap_triton)[0]

    @triton_op("peaknet::dwconv7", mutates_args=())
    def dwconv7(rows: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """The depthwise 7x7 on frames of h x w pixels given as (pixels, C) rows; returns rows."""
        c = rows.shape[1]
        return dk.dwconv7(rows.view(-1, h, w, c), weight, bias, wrap=wrap_triton).view(-1, c)

    @triton_op("peaknet::bifpn_step", mutates_args=())
    def bifpn_step(
        p: torch.Tensor, m: torch.Tensor | None, other: torch.Tensor, resample: int, coefficients: torch.Tensor,
        weight: torch.Tensor, ln_weight: torch.Tensor, ln_bias: torch.Tensor, eps: float, p_bias: torch.Tensor | None,
    ) -> torch.Tensor:  # fmt: skip
        """One BiFPN step (bifpn_kernel.py) on (N, H, W, C) tensors."""
        return bk.bifpn_step(p, m, other, resample, coefficients, weight, ln_weight, ln_bias, eps, p_bias, wrap_triton)

    @triton_op("peaknet::stem", mutates_args=())
    def stem(
        x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, ln_weight: torch.Tensor, ln_bias: torch.Tensor,
        eps: float,
    ) -> torch.Tensor:  # fmt: skip
        """The patch embedding and its LayerNorm (stem_kernel.py): (N, 1, H, W) frames to (N, H/4, W/4, C)."""
        return sk.stem(x, weight, bias, ln_weight, ln_bias, eps, wrap=wrap_triton)

    @triton_op("peaknet::norm_gelu_project", mutates_args=())
    def norm_gelu_project(
        xs: list[torch.Tensor], conv_biases: list[torch.Tensor], groups: int, gn_weights: list[torch.Tensor],
        gn_biases: list[torch.Tensor], eps: list[float], weight: torch.Tensor, bias: torch.Tensor | None,
    ) -> torch.Tensor:  # fmt: skip
        """Head laterals' conv bias, GroupNorm and GELU, summed, and the class projection with its bias or none
        (head_kernel.py): (N, H, W, C) each to (N, K, H, W) fp32."""
        return hk.norm_gelu_project(xs, conv_biases, groups, gn_weights, gn_biases, eps, weight, bias, wrap=wrap_triton)


def tma_inline(a: torch.Tensor, weight: torch.Tensor, *others: torch.Tensor) -> bool:
    """Whether the GEMM of a (M, K) and weight (N, K) runs by TMA, launched straight from the forward instead of
    through the registered ops: under torch.compile (dynamo captures the tensor descriptors of a kernel launched
    from traced code, which the registered ops' tracing does not), on a GPU with the copy engine, for rows it can
    move (a's, the weight's, the others' and the (M, N) output's)."""
    tensors = (a, weight, *others)
    # Traced with symbolic sizes, inductor writes a symbol into a descriptor's type, which Triton cannot parse
    static = all(isinstance(d, int) for t in tensors for d in t.shape)
    out_rows_fit = (weight.shape[0] * a.element_size()) % 16 == 0
    compiling = torch.compiler.is_compiling() and static
    return compiling and tk.has_tma(a.device) and tk.tma_fits(*tensors) and out_rows_fit


def gelu_sumsq(a: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, hw: int, tanh: bool = False):
    """pwconv1 with GELU (exact, or its tanh form) and GRN's statistic (linear_gelu_sumsq), by TMA where
    tma_inline says."""
    if tma_inline(a, weight):
        return tk.linear(a, weight, bias, hw, gelu_sumsq=True, tma=True, tanh=tanh)
    return linear_gelu_sumsq(a, weight, bias, hw, tanh)


def scaled_residual(
    a: torch.Tensor, a_scale: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, residual: torch.Tensor, hw: int
) -> torch.Tensor:
    """pwconv2 with GRN's scale and the residual (linear_scaled_residual), by TMA where tma_inline says."""
    if tma_inline(a, weight, residual):
        return tk.linear(a, weight, bias, hw, residual=residual, a_scale=a_scale, tma=True)[0]
    return linear_scaled_residual(a, a_scale, weight, bias, residual, hw)


def lt_gelu_tanh_sumsq(a: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, hw: int):
    """linear_gelu_sumsq with GELU's tanh form, the GEMM by cuBLASLt with bias and GELU in its epilogue (on CPU
    tensors, where torch's fused op computes the exact GELU, by the same ops apart); GRN's per-frame column sums
    of squares from the rounded output, one reduction that inductor generates."""
    if a.is_cuda:
        out = torch._addmm_activation(bias, a, weight.t(), use_gelu=True)
    else:
        out = F.gelu(torch.addmm(bias, a, weight.t()), approximate="tanh")
    return out, out.float().square().view(-1, hw, out.shape[1]).sum(1)


MIN_ROW_BLOCK = 64  # narrower row tiles starve the tensor cores: such blocks (1920's last stage) stay plain


def fusable(x: torch.Tensor) -> bool:
    """Whether the GEMM kernels can tile each frame's pixels by MIN_ROW_BLOCK rows or more."""
    return tk is not None and (tk.row_block(x.shape[2] * x.shape[3]) or 0) >= MIN_ROW_BLOCK


# dwconv: the depthwise 7x7 only; blocks: gemm and dwconv; all: blocks and the BiFPN's steps (bifpn_kernel.py)
MODES = ("none", "dwconv", "gemm", "blocks", "all")
GEMM_MODES = ("gemm", "blocks", "all")
DWCONV_MODES = ("dwconv", "blocks", "all")
BIFPN_MODES = ("all",)
BIFPN_BIAS_MODES = ()  # the BiFPN kernel adding the adapters' conv biases: not yet measured on a GPU
# GELU's tanh form in our GEMM kernel's epilogue (tanh.approx), with GRN's sums, instead of cuBLASLt's epilogue and
# a pass for the sums: not yet measured on a GPU (ab_model_variants.py tanh-kernel)
TANH_KERNEL_MODES = ()
STEM_MODES = ("all",)
HEAD_MODES = ("all",)  # the head's laterals after their last conv
# The faster mode per preset, as measured (docs/performance.md): Triton's GEMMs trail cuBLAS once the layers
# are wide and the work is compute-bound, so 673m keeps PyTorch's GEMMs (or FP8's) and takes the depthwise kernel.
PRESET_MODES = {"base": "all", "673m": "dwconv"}


def mode_for(preset: str | None, configured: str | None) -> str:
    """The configured mode, or the measured one for the preset (none for custom sizes)."""
    return configured or PRESET_MODES.get(preset or "", "none")


GELU_FORMS = {"exact": "none", "tanh": "tanh"}  # model.peaknet.mlp_gelu -> F.gelu's approximate
# The form per preset, as measured (docs/performance.md): the tanh form passed the accuracy benchmark's gate
# for base and runs in the GEMM's epilogue; presets not measured keep the exact GELU.
PRESET_GELU = {"base": "tanh"}


def gelu_for(preset: str | None, configured: str | None) -> str:
    """The configured GELU form, or the measured one for the preset (exact for custom sizes)."""
    return configured or PRESET_GELU.get(preset or "", "exact")


def set_gelu(model: nn.Module, form: str) -> int:
    """Set the GELU form (GELU_FORMS) of every ConvNeXtV2 block of `model`; returns how many blocks."""
    if form not in GELU_FORMS:
        raise ValueError(f"GELU form {form!r}: expected one of {', '.join(GELU_FORMS)}")
    blocks = [m for m in model.modules() if hasattr(m, "gelu")]
    for m in blocks:
        m.gelu = GELU_FORMS[form]
    return len(blocks)


def nhwc(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) as a contiguous (N, H, W, C) tensor, free under channels_last."""
    return x.permute(0, 2, 3, 1).contiguous()


def pixel_rows(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) as (pixels, C) rows, free under channels_last."""
    return nhwc(x).view(-1, x.shape[1])


def depthwise(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """conv (the block's depthwise 7x7) of (N, C, H, W) by the Triton kernel, as (N, H, W, C)."""
    n, c, h, w = x.shape
    return dwconv7(pixel_rows(x), conv.weight, conv.bias, h, w).view(n, h, w, c)


def convnext_block(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """ConvNeXtV2Block.forward on (N, C, H, W): pwconv1+GELU+GRN statistic (one kernel, or cuBLASLt's and a
    reduction), and pwconv2 with GRN's per-frame scale on its input plus the residual, one kernel; in mode all
    the depthwise conv too. LayerNorm stays a PyTorch op."""
    n, c, h, w = x.shape
    hw = h * w
    # The residual and, in mode all, the depthwise conv's input take this one view of the block's input, so the
    # compiled graph holds one buffer for them.
    residual = pixel_rows(x)
    pw1, pw2, grn = block.pwconv1, block.pwconv2, block.grn
    if block.fused in DWCONV_MODES:
        y = dwconv7(residual, block.dwconv.weight, block.dwconv.bias, h, w)
    else:
        y = block.depthwise(x)
    rows = block.layernorm(y).contiguous().view(n * hw, c)
    tanh = block.gelu == "tanh"
    if tanh and block.fused not in block.tanh_kernel_modes:
        a, sumsq = lt_gelu_tanh_sumsq(rows, pw1.weight, pw1.bias, hw)
    else:
        a, sumsq = gelu_sumsq(rows, pw1.weight, pw1.bias, hw, tanh)
    scale = grn.scale_from_norm(sumsq.sqrt())  # fp32 (N, 4C), applied to `a` as pwconv2's kernel reads it
    out = scaled_residual(a, scale, pw2.weight, grn.folded_bias(pw2), residual, hw)
    return out.view(n, h, w, c).permute(0, 3, 1, 2)


def enable(model: nn.Module, mode: str) -> int:
    """Switch every ConvNeXtV2 block of `model` to the fused kernels of `mode` (MODES), and every other part with
    a kernel of its own (`by_kernel`: the BiFPN blocks, the BiFPN's adapters' bias, the stem, the head's laterals)
    to it where its `kernel_modes` include the mode; returns how many blocks and parts run a kernel."""
    if mode not in MODES:
        raise ValueError(f"fused kernels mode {mode!r}: expected one of {', '.join(MODES)}")
    blocks = [m for m in model.modules() if hasattr(m, "fused")]
    for m in blocks:
        m.fused = mode
    parts = [m for m in model.modules() if hasattr(m, "by_kernel")]
    for m in parts:
        m.by_kernel = mode in m.kernel_modes
    return 0 if mode == "none" else len(blocks) + sum(m.by_kernel for m in parts)


def runs_kernels(x: torch.Tensor) -> bool:
    """Whether the Triton kernels can take x: on a GPU, or on CPU tensors in Triton's interpreter (tests)."""
    return x.is_cuda or (tk is not None and tk.INTERPRET)


def bifpn_fusable(x: torch.Tensor, channels: int | None = None) -> bool:
    """Whether a BiFPN level (N, C, H, W), or one of `channels` channels made from x by a 1x1 conv, fits the BiFPN
    step's kernel, on a GPU (or in Triton's interpreter)."""
    c = channels or x.shape[1]
    return runs_kernels(x) and bk is not None and bk.fusable(c, x.shape[2] * x.shape[3])


def bifpn_step_args(
    conv: nn.Sequential, p, m, other, resample: int, weights: torch.Tensor, eps: float, p_bias=None
) -> tuple:
    """The BiFPN step kernel's arguments for BiFPNBlock's step `conv(fused) + p` on (N, C, H, W) levels: weights
    (3,) are the fusion weights of p, m (0 where the step has none) and `other`, resampled UP (the coarser level)
    or DOWN (the finer); p_bias (C,) where p comes without its bias."""
    dws, ln = conv[0], conv[1]
    c = p.shape[1]
    coefficients = (weights / (weights.sum() + eps)).float()
    return (nhwc(p), nhwc(m) if m is not None else None, nhwc(other), resample, coefficients,
            dws.folded_weight().view(c, c), ln.weight, ln.bias, ln.eps, p_bias)  # fmt: skip


def fused_bifpn_step(conv: nn.Sequential, p, m, other, resample: int, weights: torch.Tensor, eps: float, p_bias=None):
    """BiFPNBlock's step by the kernel (bifpn_step_args), as (N, C, H, W)."""
    return bifpn_step(*bifpn_step_args(conv, p, m, other, resample, weights, eps, p_bias)).permute(0, 3, 1, 2)


def stem_fusable(x: torch.Tensor, conv: nn.Conv2d) -> bool:
    """Whether the stem's patch embedding `conv` of frames x (N, C, H, W) fits its kernel, on a GPU (or in
    Triton's interpreter)."""
    fits = sk is not None and sk.fusable(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride)
    return runs_kernels(x) and fits and conv.padding == (0, 0) and x.shape[2] % sk.PATCH == 0 == x.shape[3] % sk.PATCH


def fused_stem(conv: nn.Conv2d, layernorm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """layernorm(conv(x)) of the stem by its kernel, as (N, C, H/4, W/4) (channels_last)."""
    out = stem(x, conv.weight, conv.bias, layernorm.weight, layernorm.bias, layernorm.eps)
    return out.permute(0, 3, 1, 2)


def head_fusable(x: torch.Tensor, conv: nn.Conv2d, groups: int, classes: int) -> bool:
    """Whether a head lateral's last conv, a 3x3 'same' conv of x (N, C, H, W), has an output that fits the
    GroupNorm-GELU-projection kernels, on a GPU (or in Triton's interpreter)."""
    same = conv.stride == (1, 1) and conv.padding == (1, 1) and conv.kernel_size == (3, 3) and conv.bias is not None
    fits = hk is not None and hk.fusable(conv.out_channels, groups, x.shape[2] * x.shape[3], classes)
    return runs_kernels(x) and same and fits


def head_conv_outputs(lasts: list[tuple[torch.Tensor, nn.Sequential]]) -> list[torch.Tensor]:
    """The laterals' last 3x3 convs on their inputs, (input, sublayer) in lasts, without their bias, as NHWC: the
    head's kernels add the bias; with it, inductor writes each conv output again to add it."""
    return [nhwc(F.conv2d(x, sub[0].weight, None, sub[0].stride, sub[0].padding)) for x, sub in lasts]


def fused_norm_gelu_project(lasts: list[tuple[torch.Tensor, nn.Sequential]], conv: nn.Conv2d, bias: bool):
    """conv (1x1, with or without its bias) of the sum of the laterals' last sublayers (conv, GroupNorm, GELU) on
    their inputs, (input, sublayer) in lasts, by the kernels, (N, K, H, W) fp32."""
    norms = [sub[1] for _, sub in lasts]
    return norm_gelu_project(
        head_conv_outputs(lasts), [sub[0].bias for _, sub in lasts], norms[0].num_groups, [n.weight for n in norms],
        [n.bias for n in norms], [n.eps for n in norms], conv.weight, conv.bias if bias else None,
    )  # fmt: skip
