"""Peak finding frames/s per CPU core on realistic sparse masks, and CXI writer MB/s. JSON on stdout.

    python3 benchmarks/bench_peaks.py [--where DIR] [--output FILE]

Compares our route (components of the graph of foreground pixels, per-component sums with bincount) with
the same sums after labelling the whole stack once (what we do for dense masks, peaks.DENSE_SHARE) and
with the seeds' route (scipy.ndimage.label + center_of_mass per panel). Then the writer with each
writer.compression: MB/s, CPU per frame and bytes on disk.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
from scipy import ndimage

from peaknet_pipeline.bench import emit_json
from peaknet_pipeline.config import ProducerSection, SyntheticPeaks
from peaknet_pipeline.output import peaks
from peaknet_pipeline.output.cxi import FILTERS, CxiChunkWriter, KeptEvent
from peaknet_pipeline.output.geometry import SlabLayout
from peaknet_pipeline.output.peaks import find_peaks
from peaknet_pipeline.synthetic import FrameSynthesizer

CASES = [((1, 512, 512), (20, 50)), ((1, 512, 512), (150, 250)), ((16, 352, 384), (100, 300))]


def frames_and_masks(shape, per_frame, n=16):
    synth = FrameSynthesizer(ProducerSection(peaks=SyntheticPeaks(per_frame=per_frame)), shape, "float32", 1)
    frames = synth.batch(n).frames
    mean = frames.mean(axis=(-2, -1), keepdims=True)
    std = frames.std(axis=(-2, -1), keepdims=True)
    return frames, (frames > mean + 6 * std).astype(np.uint8)


def whole_frame_route(mask, frame):
    saved, peaks.DENSE_SHARE = peaks.DENSE_SHARE, 0.0
    try:
        return find_peaks(mask, frame)
    finally:
        peaks.DENSE_SHARE = saved


def seeds_route(mask, frame):
    out = []
    for p in range(mask.shape[0]):
        labels, n = ndimage.label(mask[p], structure=np.ones((3, 3)))
        if n:
            out.append(ndimage.center_of_mass(frame[p], labels, range(1, n + 1)))
    return out


def rate(fn, frames, masks, seconds=2.0):
    count, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for f, m in zip(frames, masks):
            fn(m, f)
            count += 1
    return count / (time.perf_counter() - t0)


def writer_rate(shape, frames, masks, compression="none", where=None, seconds=1.5):
    """(MB/s of frames from the object store into CXI files, CPU ms per frame, of which in the kernel, bytes on
    disk per byte of frames), as the writer actor does it: each kept frame written into the open file as it is
    kept (through a slab scratch where panels are tiled), compressed by the filter writer.compression names."""
    layout = SlabLayout.single_panel(*shape[1:]) if shape[0] == 1 else tiled_layout(shape)
    events = [KeptEvent(f"e{i}", 0.0, 9500.0, find_peaks(m, f)) for i, (f, m) in enumerate(zip(frames, masks))]
    with tempfile.TemporaryDirectory(dir=where) as d:
        w = CxiChunkWriter(d, "bench", "w0", layout, 2048, compression)
        t0, c0, paths = time.perf_counter(), os.times(), []
        while len(paths) < 3 or time.perf_counter() - t0 < seconds:  # CPU times tick in 10 ms: seconds of work
            paths.append(w.write(events, frames))
        dt, c1 = time.perf_counter() - t0, os.times()
        on_disk = sum(p.stat().st_size for p in paths)
    payload, per_frame_ms = len(paths) * sum(f.nbytes for f in frames), 1e3 / (len(paths) * len(frames))
    user, system = (c1.user - c0.user) * per_frame_ms, (c1.system - c0.system) * per_frame_ms
    return payload / dt / 1e6, user + system, system, on_disk / payload


def compression_rows(where):
    """Each writer.compression on base 512 frames as synthesised (float noise around the peaks), rounded to
    whole numbers (what photon-counting detectors give), and those as uint16 (data.dtype: uint16)."""
    shape, per_frame = CASES[0]
    frames, masks = frames_and_masks(shape, per_frame)
    counts = np.round(frames)
    contents = {"synthetic float": frames, "integer-valued": counts, "integer-valued uint16": counts.astype(np.uint16)}
    rows = []
    for content, data in contents.items():
        for compression in FILTERS:
            mb_s, cpu_ms, kernel_ms, ratio = writer_rate(shape, data, masks, compression, where)
            rows.append({"frames": content, "compression": compression, "writer_MB_per_s": round(mb_s, 1),
                         "cpu_ms_per_frame": round(cpu_ms, 2), "kernel_ms_per_frame": round(kernel_ms, 2),
                         "bytes_on_disk_per_byte": round(ratio, 3)})  # fmt: skip
    return rows


def tiled_layout(shape):
    from peaknet_pipeline.output.geometry import PanelRect

    c, h, w = shape
    return SlabLayout(
        [PanelRect(f"p{i}", (i // 2) * h, (i // 2) * h + h - 1, (i % 2) * w, (i % 2) * w + w - 1) for i in range(c)]
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--output")
    ap.add_argument("--where", help="directory the writer's files go to (default: the system's temporary one)")
    args = ap.parse_args()
    rows = []
    for shape, per_frame in CASES:
        frames, masks = frames_and_masks(shape, per_frame)
        rows.append(
            {
                "frame_shape": shape,
                "peaks_per_frame": per_frame,
                "ours_frames_per_s_per_core": round(rate(find_peaks, frames, masks), 1),
                "whole_frame_labelling_frames_per_s_per_core": round(rate(whole_frame_route, frames, masks), 1),
                "seeds_route_frames_per_s_per_core": round(rate(seeds_route, frames, masks), 1),
                "writer_MB_per_s": round(writer_rate(shape, frames, masks)[0], 1),
            }
        )
    result = {"cpus": os.cpu_count(), "cases": rows, "writer_compression": compression_rows(args.where)}
    emit_json(result, args.output)


if __name__ == "__main__":
    main()
