"""The segmentation head's 3x3 convs by the implicit-GEMM kernel (conv3x3_kernel.py), registered as torch ops
so that torch.compile and CUDA graphs take them as they are. HeadConv is nn.Conv2d (same parameters, same
checkpoints) and runs PyTorch's conv (cuDNN's on a GPU) unless switched: to the kernel in the input's dtype
(`enable`, fused-kernel mode all) or in FP8 (`enable_fp8`, precision fp8)."""

from __future__ import annotations

import torch
from torch import nn

try:
    from . import conv3x3_kernel as ck
except ImportError:  # no Triton (CPU-only installs): cuDNN's or PyTorch's conv
    ck = None

KERNEL_MODES = ("all",)  # the fused-kernel modes (fused_ops.MODES) that put the head's convs on the kernel

if ck is not None:
    from torch.library import triton_op, wrap_triton

    @triton_op("peaknet::conv3x3", mutates_args=())
    def conv3x3(rows: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """The 3x3 conv of frames of h x w pixels given as (pixels, C) rows; returns (pixels, C_out) rows."""
        x = rows.view(-1, h, w, rows.shape[1])
        return ck.conv3x3(x, weight, bias, rows.dtype, wrap=wrap_triton).view(rows.shape[0], -1)

    @triton_op("peaknet::conv3x3_fp8", mutates_args=())
    def conv3x3_fp8(
        rows: torch.Tensor, x_scale: torch.Tensor, weight: torch.Tensor, w_scale: torch.Tensor, bias: torch.Tensor,
        h: int, w: int,
    ) -> torch.Tensor:  # fmt: skip
        """conv3x3 with e4m3 weights: the kernel quantises each tile of `rows` by its frame's x_scale."""
        x = rows.view(-1, h, w, rows.shape[1])
        return ck.conv3x3(x, weight, bias, rows.dtype, x_scale, w_scale, wrap=wrap_triton).view(rows.shape[0], -1)


class HeadConv(nn.Conv2d):
    """nn.Conv2d(in, out, 3, padding=1); `kernel` picks who computes it: pytorch (nn.Conv2d's, cuDNN on a GPU),
    triton (the kernel in the input's dtype) or fp8. Frames the kernel does not tile take PyTorch's."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, kernel_size=3, padding=1)
        self.kernel = "pytorch"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        if self.kernel == "pytorch" or not ck.tiles(h * w, c, self.out_channels, self.kernel == "fp8"):
            return super().forward(x)
        rows = x.permute(0, 2, 3, 1).contiguous().view(n * h * w, c)  # free under channels_last
        weight = ck.weights_as_gemm(self.weight)
        if self.kernel == "fp8":
            wq, w_scale = ck.quantize_weights(weight)
            y = conv3x3_fp8(rows, ck.frame_scales(rows.view(n, -1)), wq, w_scale, self.bias, h, w)
        else:
            y = conv3x3(rows, weight.to(x.dtype), self.bias, h, w)
        return y.view(n, h, w, -1).permute(0, 3, 1, 2)


def head_convs(model: nn.Module) -> list[HeadConv]:
    return [m for m in model.modules() if isinstance(m, HeadConv)]


def enable(model: nn.Module, mode: str) -> int:
    """The head's convs on the kernel in bf16 where `mode` (a fused-kernel mode) includes them; returns how many."""
    convs = head_convs(model) if ck is not None and mode in KERNEL_MODES else []
    for conv in convs:
        conv.kernel = "triton"
    return len(convs)


def enable_fp8(model: nn.Module) -> int:
    """The head's convs on the kernel in FP8 (needs Triton and an FP8 GPU, as fp8_ops.supported); returns how
    many."""
    convs = head_convs(model) if ck is not None else []
    for conv in convs:
        conv.kernel = "fp8"
    return len(convs)


def kernel_of(model: nn.Module) -> str:
    """Who computes the head's 3x3 convs: pytorch, triton or fp8 (pytorch for a model without them)."""
    return next((conv.kernel for conv in head_convs(model)), "pytorch")
