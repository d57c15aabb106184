"""Producer CPU budget: frames/s on one core for the synthetic producer (fresh frames and cycled batches) and
the file producer (HDF5/CXI reading, file in the page cache). JSON on stdout.

    python3 benchmarks/bench_producers.py [--shape 1 512 512] [--batch 64] [--seconds 5] [--output FILE]

The socket producer's receive + decode rates are bench_ingest.py's; peak finding and writing bench_peaks.py's.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import h5py
import numpy as np

from peaknet_pipeline.bench import emit_json
from peaknet_pipeline.config_sources import validate_config
from peaknet_pipeline.ingest.files import FrameFile
from peaknet_pipeline.output.cxi import DATA, EVENT_ID
from peaknet_pipeline.synthetic import FrameSynthesizer


def rate(make_batch, batch: int, seconds: float) -> float:
    make_batch()  # warm
    frames, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        make_batch()
        frames += batch
    return round(frames / (time.perf_counter() - start), 1)


def synthetic_rate(cfg, batch: int, seconds: float) -> float:
    synth = FrameSynthesizer(cfg.producer, cfg.data.frame_shape, "float32", 0)
    return rate(lambda: synth.batch(batch), batch, seconds)


def file_rate(cfg, batch: int, seconds: float, directory: str) -> float:
    shape = cfg.data.frame_shape
    path = os.path.join(directory, "frames.cxi")
    n = batch * 8
    frames = FrameSynthesizer(cfg.producer, shape, "float32", 0).batch(batch).frames
    with h5py.File(path, "w") as f:
        data = f.create_dataset(DATA, shape=(n, *shape[1:]) if shape[0] == 1 else (n, *shape), dtype=np.float32,
                                chunks=(1, *(shape[1:] if shape[0] == 1 else shape)))  # fmt: skip
        for i in range(8):
            data[i * batch : (i + 1) * batch] = frames[:, 0] if shape[0] == 1 else frames
        f[EVENT_ID] = np.array([f"e{i}" for i in range(n)], dtype=h5py.string_dtype())
    source = FrameFile(path, cfg)
    starts = iter(range(0, 1 << 60, batch))

    def read() -> None:
        start = next(starts) % n
        source.read(start, start + batch)

    try:
        return rate(read, batch, seconds)
    finally:
        source.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", type=int, nargs=3, default=[1, 512, 512])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--output")
    args = ap.parse_args()
    rows = []
    for per_frame in ([10, 30], [150, 250]):
        cfg = validate_config({"data": {"frame_shape": args.shape, "batch_size": args.batch},
                               "producer": {"peaks": {"per_frame": per_frame}}})  # fmt: skip
        rows.append({"producer": "synthetic, fresh frames", "peaks_per_frame": per_frame,
                     "frames_per_s_per_core": synthetic_rate(cfg, args.batch, args.seconds)})  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        rows.append({"producer": "file (CXI, page cache)",
                     "frames_per_s_per_core": file_rate(cfg, args.batch, args.seconds, tmp)})  # fmt: skip
    emit_json({"machine": {"cpus": os.cpu_count()}, "frame_shape": args.shape, "batch": args.batch, "rows": rows},
              args.output)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
