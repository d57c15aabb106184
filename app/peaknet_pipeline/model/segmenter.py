"""Preprocessing around a segmentation model, as upstream feeds PeakNet.

frames (B, C, H, W) float -> logits (B*C, K, H, W) when the model takes one panel at a time
(num_channels 1), or (B, K, H, W) when it takes all C channels at once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

PAD_MULTIPLE = 32


class InputError(ValueError):
    pass


def padding_for(h: int, w: int, mode: str, multiple: int = PAD_MULTIPLE) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) that make H and W multiples of `multiple`."""
    ph, pw = -h % multiple, -w % multiple
    if mode == "center":
        return pw // 2, pw - pw // 2, ph // 2, ph - ph // 2
    return 0, pw, 0, ph


class Segmenter(nn.Module):
    def __init__(self, model: nn.Module, num_channels: int, instance_norm: bool, pad: str, multiple: int | None):
        super().__init__()
        self.model = model
        self.num_channels = num_channels
        self.instance_norm = instance_norm
        self.pad = pad
        self.multiple = multiple  # None: the model takes any H, W (threshold)

    def mask_channels(self, frame_channels: int) -> int:
        return frame_channels if self.num_channels == 1 else 1

    def check_input(self, shape: tuple[int, ...], dtype: torch.dtype) -> None:
        """Fail early, naming what was expected and what came."""
        c, h, w = shape[-3:]
        if not dtype.is_floating_point:
            raise InputError(f"model input must be a float dtype (float32, bfloat16, float16), got {dtype}")
        if self.num_channels > 1 and c != self.num_channels:
            raise InputError(
                f"expected frames with {self.num_channels} channels (model.num_channels), got shape {tuple(shape)}"
            )
        if self.multiple and self.pad == "none" and (h % self.multiple or w % self.multiple):
            raise InputError(
                f"frame H and W must be multiples of {self.multiple}, got {h}x{w} (shape {tuple(shape)}); "
                "set model.preprocess.pad to bottom_right or center"
            )

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x, crop = self.prepare(frames)
        return self.model(x)[crop]

    def prepare(self, frames: torch.Tensor) -> tuple[torch.Tensor, tuple]:
        """The model's input (panels as images, normalised, padded) and the index that crops its output back
        to the frames' size."""
        self.check_input(tuple(frames.shape), frames.dtype)
        b, c, h, w = frames.shape
        x = frames.reshape(b * c, 1, h, w) if self.num_channels == 1 else frames
        if self.instance_norm:
            var, mean = torch.var_mean(x.float(), dim=(1, 2, 3), keepdim=True, correction=0)
            x = ((x - mean) / torch.sqrt(var + 1e-6)).to(x.dtype)
        left, right, top, bottom = padding_for(h, w, self.pad, self.multiple) if self.multiple else (0, 0, 0, 0)
        if right or bottom or left or top:
            x = F.pad(x, (left, right, top, bottom))
        return x, (..., slice(top, top + h), slice(left, left + w))
