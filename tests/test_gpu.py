"""The CUDA engine (streams, pinned buffers, events) against the CPU path. Needs a GPU: CI has none,
so these skip there; they run on the lent H100 (see benchmarks/results/README.md)."""

import time

import numpy as np
import pytest
import torch

from peaknet_pipeline.config import ProducerSection
from peaknet_pipeline.inference.engine import EngineSpec, make_engine
from peaknet_pipeline.inference.threshold import ThresholdSegmenter
from peaknet_pipeline.model.peaknet import PeakNet, PeakNetArch
from peaknet_pipeline.model.segmenter import Segmenter
from peaknet_pipeline.synthetic import FrameSynthesizer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine (CI has none)")


def run(device: str, model, frames: np.ndarray, spec: EngineSpec) -> np.ndarray:
    out = {}
    engine = make_engine(model, spec, device, lambda tag, m: out.__setitem__(tag, m.copy()))
    for start in range(0, len(frames), spec.batch_size):
        engine.submit(frames[start : start + spec.batch_size], start)
    engine.flush()
    return np.concatenate([out[k] for k in sorted(out)])


@pytest.mark.parametrize("buffers", [1, 2, 3])
def test_cuda_engine_gives_the_cpu_masks_in_order_with_a_partial_last_batch(buffers):
    frames = FrameSynthesizer(ProducerSection(), (2, 128, 96), "float32", 0).batch(19).frames
    seg = Segmenter(ThresholdSegmenter(6.0), 1, False, "none", None)
    spec = EngineSpec(4, (2, 128, 96), np.dtype("float32"), num_buffers=buffers, precision="fp32")
    np.testing.assert_array_equal(run("cuda", seg, frames, spec), run("cpu", seg, frames, spec))


def test_peaknet_bf16_on_gpu_agrees_with_fp32_on_cpu():
    torch.manual_seed(0)
    net = PeakNet(PeakNetArch(backbone_depths=(1, 1, 1, 1))).eval()
    seg = Segmenter(net, 1, True, "none", 32)
    frames = np.random.default_rng(0).standard_normal((6, 1, 64, 64)).astype(np.float32)
    cpu = run("cpu", seg, frames, EngineSpec(3, (1, 64, 64), np.dtype("float32")))
    gpu_spec = EngineSpec(3, (1, 64, 64), np.dtype("float32"), precision="bf16", channels_last=True, cast_weights=True)
    gpu = run("cuda", seg, frames, gpu_spec)
    assert (gpu == cpu).mean() > 0.97  # bf16 flips only near-tied pixels


class SlowThreshold(ThresholdSegmenter):
    """The threshold model behind ~0.2 s of GPU time per batch, so the engine's wait for its masks is long."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch.cuda._sleep(int(4e8))  # GPU clock cycles
        return super().forward(x)


@pytest.mark.parametrize("wait", ["spin", "sleep"])
def test_gpu_wait_sleep_frees_the_waiting_thread_and_spin_keeps_it_busy(wait):
    seg = Segmenter(SlowThreshold(6.0), 1, False, "none", None)
    spec = EngineSpec(2, (1, 64, 64), np.dtype("float32"), num_buffers=1, gpu_wait=wait)
    engine = make_engine(seg, spec, "cuda", lambda tag, m: None)
    engine.submit(np.zeros((2, 1, 64, 64), np.float32), 0)
    engine.flush()  # the CUDA context and kernels loaded: the next wait is the GPU's alone
    engine.submit(np.zeros((2, 1, 64, 64), np.float32), 1)
    wall, cpu = time.perf_counter(), time.thread_time()
    engine.flush()
    wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
    assert wall > 0.05, "the GPU work was too short to tell spinning from sleeping"
    if wait == "sleep":
        assert cpu < 0.3 * wall
    else:
        assert cpu > 0.7 * wall  # CUDA's default with one context: the thread polls
