"""precision fp8: the ConvNeXt blocks' GEMMs in FP8 with per-row scales. torch._scaled_mm runs on CPU tensors
too, so the numerics are checked here; the speed and the peak-level accuracy gate are GPU benchmarks."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from peaknet_pipeline.config_sources import load_config
from peaknet_pipeline.inference.engine import ModelRunner, enable_fp8, spec_from_config
from peaknet_pipeline.inference.models import build_model
from peaknet_pipeline.model import fp8_ops, fused_ops
from peaknet_pipeline.model.backbone import ConvNeXtV2Block

from .test_fused_kernels import record_depthwise_calls


def cpu_scaled_mm_takes_row_scales() -> bool:
    """Whether this torch's torch._scaled_mm takes per-row scales on CPU tensors (2.13's does; older ones
    take per-tensor scales only, as on the lent GPU machines' torch 2.11)."""
    a = torch.ones(16, 16).to(fp8_ops.E4M3)
    try:
        torch._scaled_mm(a, a.t(), scale_a=torch.ones(16, 1), scale_b=torch.ones(1, 16), out_dtype=torch.bfloat16)
    except RuntimeError:
        return False
    return True


CPU_ROW_SCALES = pytest.mark.skipif(
    not cpu_scaled_mm_takes_row_scales(),
    reason="this torch's CPU _scaled_mm takes per-tensor scales only (torch 2.13's takes per-row ones): the FP8 "
    "GEMMs' numerics are checked on CPU tensors",
)


def rows_of_many_magnitudes(m: int, k: int) -> torch.Tensor:
    """Rows whose scales span six decades: one scale for the whole tensor would flush the small rows to zero."""
    g = torch.Generator().manual_seed(0)
    return torch.randn(m, k, generator=g) * torch.logspace(-3, 3, m).unsqueeze(1)


def test_quantize_rows_maps_each_rows_largest_value_to_e4m3s_largest_and_keeps_the_rest_to_its_precision():
    x = rows_of_many_magnitudes(64, 96)
    q, scale = fp8_ops.quantize_rows(x)
    assert q.dtype == torch.float8_e4m3fn and scale.shape == (64, 1)
    assert torch.equal(q.float().abs().amax(dim=1), torch.full((64,), fp8_ops.E4M3_MAX))
    back = q.float() * scale
    # e4m3 keeps 3 mantissa bits: within 1/16 of each value, or of the e4m3 subnormal step near zero
    assert torch.all((back - x).abs() <= x.abs() / 16 + scale * 2.0**-9)


@CPU_ROW_SCALES
def test_fp8_linear_is_the_layer_to_fp8_precision_in_every_row():
    layer = torch.nn.Linear(96, 384)
    torch.nn.init.zeros_(layer.bias)  # in bf16 a bias would hide the small rows' products
    x = rows_of_many_magnitudes(64, 96)
    with torch.no_grad():
        want, got = layer(x), fp8_ops.linear(x, layer).float()
    assert got.shape == want.shape
    error = (got - want).norm(dim=1) / want.norm(dim=1)
    assert error.max() < 0.06, error.max()  # per-row: a mixed-up or per-tensor scale fails the small rows


@CPU_ROW_SCALES
def test_fp8_block_is_the_plain_block_to_fp8_precision(monkeypatch):
    torch.manual_seed(0)
    block = ConvNeXtV2Block(32).eval()
    with torch.no_grad():
        block.grn.weight.normal_(0, 0.5)
        block.grn.bias.normal_(0, 0.5)
    x = torch.randn(2, 32, 16, 16)
    with torch.no_grad():
        want = block(x)
        monkeypatch.setattr(fp8_ops, "MIN_CHANNELS", 0)
        assert fp8_ops.enable(block) == 1
        got = block(x)
    assert block.fp8
    residual_free = (got - x).norm() / (want - x).norm()
    assert abs(residual_free - 1) < 0.05
    assert (got - want).norm() / (want - x).norm() < 0.06


def test_precision_fp8_runs_fp32_on_a_cpu_and_is_refused_on_a_device_without_fp8_tensor_cores():
    cfg = load_config(None, ["model.kind=peaknet", "model.peaknet.preset=demo", "inference.precision=fp8",
                             "data.frame_shape=[1,64,64]", "data.batch_size=2"])  # fmt: skip
    model, _ = build_model(cfg.model)
    runner = ModelRunner(model, spec_from_config(cfg, (1, 64, 64)), torch.device("cpu"))
    assert runner.fp8_blocks == 0 and runner.input_dtype == torch.float32
    assert not any(m.fp8 for m in model.modules() if hasattr(m, "fp8"))
    with pytest.raises(ValueError, match=r"inference\.precision=fp8 needs a GPU of compute capability 9\.0"):
        enable_fp8(model, torch.device("cpu"))


def test_precision_fp8_says_so_when_no_block_is_wide_enough_to_gain(monkeypatch):
    cfg = load_config(None, ["model.kind=peaknet", "model.peaknet.preset=demo"])
    model, _ = build_model(cfg.model)
    monkeypatch.setattr(fp8_ops, "supported", lambda device: True)  # a GPU with FP8 tensor cores is not here
    with pytest.warns(UserWarning, match=r"no ConvNeXt block is 1024 channels wide or more; the model runs bf16"):
        assert enable_fp8(model, torch.device("cpu")) == 0
    monkeypatch.setattr(fp8_ops, "MIN_CHANNELS", 32)  # the demo preset's widest stages: 32, 64, 128
    assert enable_fp8(model, torch.device("cpu")) == sum(1 for m in model.modules() if getattr(m, "fp8", False)) > 0


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="needs triton (its CPU interpreter)")
@CPU_ROW_SCALES
def test_fp8_block_in_mode_dwconv_takes_its_depthwise_conv_from_the_kernel(monkeypatch):
    torch.manual_seed(0)
    block = ConvNeXtV2Block(32).eval()
    x = torch.randn(2, 32, 16, 16).to(memory_format=torch.channels_last)
    monkeypatch.setattr(fp8_ops, "MIN_CHANNELS", 0)
    fp8_ops.enable(block)
    calls = record_depthwise_calls(monkeypatch)
    with torch.no_grad():
        want = block(x)
        assert fused_ops.enable(block, "dwconv") == 1
        got = block(x)
    assert calls == [x.shape]  # the kernel ran once, in the second forward only
    assert (got - want).norm() / (want - x).norm() < 0.01
