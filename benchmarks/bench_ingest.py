"""Socket ingest: receive + decode frames/s and MB/s per frame shape, payload flavour and transport.

    python3 benchmarks/bench_ingest.py --messages 40 --output ingest.json

A sender process pushes one pre-encoded lclstreamer message over and over (so the sender is never the
limit); this process receives and decodes each one to (B, C, H, W) float32, as one socket producer actor
does. "actors_per_h100" divides the model's measured rate (benchmarks/results) by one receiver's rate.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import socket
import sys
import time
from pathlib import Path

import numpy as np

from peaknet_pipeline.config import DatasetNames
from peaknet_pipeline.ingest.decode import decode_message, encode_message
from peaknet_pipeline.ingest.sockets import PullSocket, PushSocket

# (batch, C, H, W) and the H100 model-only rate for that frame (benchmarks/results), where there is one.
CASES = {
    "1x512x512": ((32, 1, 512, 512), 1182.4),
    "1x1920x1920": ((4, 1, 1920, 1920), 66.2),
    "16x352x384": ((4, 16, 352, 384), None),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sender(transport: str, url: str, payload: bytes, count: int) -> None:
    sock = PushSocket(transport, url, "dial")
    for _ in range(count):
        sock.send(payload)
    time.sleep(2.0)  # sockets drop queued messages on close
    sock.close()


def measure(transport: str, flavour: str, shape: tuple, messages: int) -> dict:
    frames = np.random.default_rng(0).random(shape, dtype=np.float32)
    payload = encode_message(flavour, frames, np.full(len(frames), time.time()), np.full(len(frames), 1.3))
    url = f"tcp://127.0.0.1:{free_port()}"
    pull = PullSocket(transport, url, "listen", recv_timeout_ms=10_000)
    proc = mp.get_context("spawn").Process(target=sender, args=(transport, url, payload, messages + 1))
    proc.start()
    decode_message(pull.recv(), DatasetNames(), np.dtype(np.float32))  # first message: connection set up
    t0 = time.perf_counter()
    for _ in range(messages):
        batch = decode_message(pull.recv(), DatasetNames(), np.dtype(np.float32))
    seconds = time.perf_counter() - t0
    proc.join()
    pull.close()
    assert batch.frames.shape == shape
    n = messages * shape[0]
    return {
        "frames_per_s": round(n / seconds, 1),
        "MB_per_s": round(n * frames[0].nbytes / seconds / 1e6, 1),
        "message_MB": round(len(payload) / 1e6, 2),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=40)
    ap.add_argument("--output")
    args = ap.parse_args()
    rows = []
    for case, (shape, model_fps) in CASES.items():
        for flavour in ("hdf5", "npz"):
            for transport in ("nng", "zmq"):
                row = {"frame": case, "batch": shape[0], "flavour": flavour, "transport": transport}
                row.update(measure(transport, flavour, shape, args.messages))
                row["actors_per_h100"] = round(model_fps / row["frames_per_s"], 2) if model_fps else None
                rows.append(row)
                print(json.dumps(row), flush=True)
    result = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()}, "rows": rows}
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
