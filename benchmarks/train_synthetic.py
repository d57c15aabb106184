"""Train PeakNet briefly on synthetic frames so benchmarks see realistic masks.

Random weights mark most pixels as peaks, which makes peak finding and writing far slower than on real
data. A minute on the GPU teaches the model the synthetic producer's peaks (same background, noise,
width and height), giving masks with a realistic foreground fraction. Not a science model.

    python3 benchmarks/train_synthetic.py --config examples/configs/gpu-512.yaml --seconds 90 \
        --output /tmp/peaknet-synthetic.pt

Writes OUTPUT (the state_dict) and OUTPUT.json: the command, seed, steps and the held-out quality, peak by
peak (the pipeline's own peak finder and matching, quality.py) on frames of the pipeline's synthetic producer.

Frames are made on the GPU: impulses splatted bilinearly at random sub-pixel positions, blurred with the
producer's Gaussian; the target marks pixels above exp(-1.125) of the peak height (within 1.5 sigma).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import torch
import torch.nn.functional as F

from peaknet_pipeline.cli import add_config_args, config_from_args
from peaknet_pipeline.config import PipelineConfig
from peaknet_pipeline.inference.models import build_model
from peaknet_pipeline.quality import PeakTally
from peaknet_pipeline.synthetic import FrameSynthesizer


class GpuFrames:
    def __init__(self, cfg: PipelineConfig, batch: int, device: torch.device, seed: int):
        self.c, self.h, self.w = cfg.data.frame_shape
        self.p = cfg.producer
        self.batch = batch
        self.device = device
        self.gen = torch.Generator(device=device).manual_seed(seed)
        sigma = self.p.peaks.sigma_px
        r = math.ceil(4 * sigma)
        ax = torch.arange(-r, r + 1, device=device, dtype=torch.float32)
        g = torch.exp(-(ax**2) / (2 * sigma**2))
        self.kernel = (g[:, None] * g[None, :])[None, None]
        self.pad = r

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.batch * self.c
        lo, hi = self.p.peaks.per_frame
        impulses = torch.zeros(n, 1, self.h + 1, self.w + 1, device=self.device)
        count = hi * n
        img = torch.randint(0, n, (count,), device=self.device, generator=self.gen)
        keep = torch.rand(count, device=self.device, generator=self.gen) < (lo + hi) / (2 * hi)
        margin = 4 * self.p.peaks.sigma_px + 1
        y = margin + torch.rand(count, device=self.device, generator=self.gen) * (self.h - 1 - 2 * margin)
        x = margin + torch.rand(count, device=self.device, generator=self.gen) * (self.w - 1 - 2 * margin)
        y0, x0 = y.floor().long(), x.floor().long()
        fy, fx = y - y0, x - x0
        flat = impulses.view(n, -1)
        stride = self.w + 1
        for dy, dx, wgt in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
            flat.index_put_((img[keep], ((y0 + dy) * stride + x0 + dx)[keep]), wgt[keep], accumulate=True)
        signal = F.conv2d(impulses[..., : self.h, : self.w], self.kernel, padding=self.pad)
        target = (signal > math.exp(-1.125)).long().view(self.batch, self.c, self.h, self.w)
        noise = torch.randn(signal.shape, device=self.device, generator=self.gen) * self.p.noise_sigma
        frames = (signal * self.p.peaks.amplitude + self.p.background + noise).view(self.batch, self.c, self.h, self.w)
        return frames, target


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(ap, config_required=True)
    ap.add_argument("--seconds", type=float, default=90.0)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--warmup-steps", type=int, default=50, help="linear learning-rate warm-up")
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1, help="training frames and initial weights")
    ap.add_argument("--eval-frames", type=int, default=512, help="held-out synthetic frames for the quality")
    ap.add_argument("--output", required=True, help="state_dict for model.peaknet.weights")
    args = ap.parse_args()
    cfg = config_from_args(args)
    cfg.model.peaknet.weights = None
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(args.seed)
    model, _ = build_model(cfg.model)
    model.to(device).train()
    data = GpuFrames(cfg, args.batch, device, seed=args.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    # At 1e-3 without warm-up the loss spiked in the first 100 steps and training settled on "no peaks".
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / args.warmup_steps))
    class_weight = torch.tensor([1.0, 50.0], device=device)  # peaks are a fraction of a percent of pixels
    t0, step, losses = time.perf_counter(), 0, []
    while time.perf_counter() - t0 < args.seconds:
        frames, target = data.next()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(frames)
        loss = segmentation_loss(logits.float(), target.flatten(0, 1), class_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        schedule.step()
        step += 1
        if step % args.log_every == 0:
            losses.append(round(loss.item(), 4))
    result = {"steps": step, "seconds": round(time.perf_counter() - t0, 1), "loss_every": [args.log_every, losses]}
    result.update(evaluate(model, GpuFrames(cfg, args.batch, device, seed=args.seed + 1)))
    result["peak_quality"] = peak_quality(model, cfg, args.eval_frames, device, seed=1_000_003 + args.seed)
    model.model.float()
    torch.save(model.model.state_dict(), args.output)
    record = {
        "command": "python3 " + " ".join(sys.argv),
        "seed": args.seed,
        "model": cfg.model.peaknet.model_dump(exclude={"weights"}),
        "frame_shape": list(cfg.data.frame_shape),
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        **result,
    }
    with open(f"{args.output}.json", "w") as f:
        json.dump(record, f, indent=2)
    print(json.dumps(record))
    return 0


@torch.inference_mode()
def peak_quality(model: torch.nn.Module, cfg: PipelineConfig, frames: int, device: torch.device, seed: int) -> dict:
    """Found peaks against the planted ones on frames the pipeline's producer makes (not the training ones)."""
    model.eval()
    synth = FrameSynthesizer(cfg.producer, cfg.data.frame_shape, "float32", seed)
    tally = PeakTally()
    for start in range(0, frames, 32):
        batch = synth.batch(min(32, frames - start))
        masks = model(torch.from_numpy(batch.frames).to(device)).argmax(1).view(batch.frames.shape).cpu().numpy()
        tally.add_masks(masks, batch.true_peaks)
    return tally.summary()


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, class_weight: torch.Tensor) -> torch.Tensor:
    """Weighted cross-entropy plus soft Dice on the peak class: with ~0.1% peak pixels, cross-entropy
    alone settles on "no peaks anywhere"."""
    prob = logits.softmax(1)[:, 1]
    fg = (target == 1).float()
    dice = 1 - (2 * (prob * fg).sum() + 1) / (prob.sum() + fg.sum() + 1)
    return F.cross_entropy(logits, target, class_weight) + dice


@torch.inference_mode()
def evaluate(model: torch.nn.Module, data: GpuFrames) -> dict:
    model.eval()
    frames, target = data.next()
    pred = model(frames).argmax(1).view_as(target)
    tp = int(((pred == 1) & (target == 1)).sum())
    return {
        "pixel_precision": round(tp / max(int((pred == 1).sum()), 1), 3),
        "pixel_recall": round(tp / max(int((target == 1).sum()), 1), 3),
        "foreground_fraction": round(float((pred == 1).float().mean()), 5),
    }


if __name__ == "__main__":
    sys.exit(main())
