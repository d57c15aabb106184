"""Socket ingest over real sockets on 127.0.0.1: both transports, both payload flavours, malformed input."""

from __future__ import annotations

import socket
import threading
import time

import h5py
import numpy as np
import pytest

from peaknet_pipeline.driver import StageDriver
from peaknet_pipeline.ingest.decode import (
    DatasetNames,
    MalformedMessage,
    decode_message,
    encode_hdf5,
    encode_npz,
)
from peaknet_pipeline.ingest.sockets import PushSocket

NAMES = DatasetNames()
F32 = np.dtype("float32")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("encode", [encode_npz, encode_hdf5])
@pytest.mark.parametrize("shape", [(4, 32, 48), (4, 2, 32, 48)])
def test_both_flavours_decode_every_accepted_layout(encode, shape):
    frames = np.random.default_rng(0).random(shape)  # float64, as lclstreamer often sends
    batch = decode_message(encode(frames, np.arange(4.0), np.full(4, 1.0)), NAMES, F32)
    assert batch.frames.dtype == F32 and batch.frames.shape == (4, *([1] if len(shape) == 3 else [2]), 32, 48)
    np.testing.assert_array_equal(batch.frames.reshape(frames.shape), frames.astype(F32))
    np.testing.assert_allclose(batch.photon_energy_eV, 12398.42)


def test_merged_batch_and_channels_with_original_shape_and_packed_timestamps():
    import io

    frames = np.arange(3 * 2 * 8 * 8, dtype=np.float32).reshape(6, 1, 8, 8)
    stamps = (np.arange(3, dtype=np.uint64) + np.uint64(100)) << np.uint64(32) | np.uint64(500_000_000)
    buf = io.BytesIO()
    np.savez(buf, detector_data=frames, timestamp=stamps, detector_data_original_shape=np.array([3, 2, 8, 6], np.int32))
    batch = decode_message(buf.getvalue(), NAMES, F32)
    assert batch.frames.shape == (3, 2, 8, 6)
    np.testing.assert_array_equal(batch.frames, frames.reshape(3, 2, 8, 8)[..., :6])
    np.testing.assert_allclose(batch.timestamps, [100.5, 101.5, 102.5])


@pytest.mark.parametrize(
    "payload, reason",
    [
        (b"\x00random bytes", "unknown_format"),
        (encode_hdf5(np.zeros((2, 8, 8)), np.zeros(2), np.ones(2))[:300], "bad_hdf5"),
        (encode_npz(np.zeros((2, 8, 8)), np.zeros(2), np.ones(2))[:40], "bad_npz"),
        (encode_npz(np.zeros((2, 8)), np.zeros(2), np.ones(2)), "rank"),
        (encode_npz(np.zeros((2, 8, 8)), np.zeros(3), np.ones(2)), "meta_mismatch"),
    ],
)
def test_malformed_messages_get_a_reason(payload, reason):
    with pytest.raises(MalformedMessage) as err:
        decode_message(payload, NAMES, F32)
    assert err.value.reason == reason


def run_while_sending(cfg, *senders):
    """Run the whole pipeline in this driver while each sender pushes from its own thread."""
    threads = [threading.Thread(target=send, daemon=True) for send in senders]
    for t in threads:
        t.start()
    report = StageDriver(cfg, ("produce", "infer", "write"), "run", whole_pipeline=True).execute()
    for t in threads:
        t.join(timeout=10)
    return report


def wait_until_receiver_runs(namespace: str, timeout: float = 60) -> None:
    import ray

    from peaknet_pipeline.coordinator import attach_coordinator

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            members = ray.get(attach_coordinator(namespace).snapshot.remote())["members"]
        except LookupError:
            members = []
        if any(m.stage == "produce" and m.state == "running" for m in members):
            return
        time.sleep(0.1)


def npz_without_detector() -> bytes:
    import io

    buf = io.BytesIO()
    np.savez(buf, timestamp=np.zeros(2))
    return buf.getvalue()


@pytest.mark.parametrize(
    "transport, encode, receiver_role",
    [
        ("zmq", encode_hdf5, "listen"),
        ("nng", encode_npz, "dial"),
        ("nng", encode_hdf5, "listen"),
        ("zmq", encode_npz, "dial"),
    ],
)
def test_every_frame_arrives_and_every_bad_message_is_counted(
    ray_session, cpu_config, tmp_path, transport, encode, receiver_role
):
    url = f"tcp://127.0.0.1:{free_port()}"
    cfg = cpu_config.model_copy(deep=True)
    cfg.producer.kind = "socket"
    cfg.producer.socket = cfg.producer.socket.model_validate(
        {"transport": transport, "addresses": [{"url": url, "role": receiver_role}], "max_messages": 14}
    )
    cfg.data.frame_shape = (1, 32, 32)
    cfg.writer.kind, cfg.writer.output_dir, cfg.writer.min_num_peak = "cxi", str(tmp_path), 0
    cfg.peaks.task_cpus = 0.25
    rng = np.random.default_rng(1)
    sent = [rng.random((b, 1, 32, 32)).astype(np.float32) * 100 for b in (4, 4, 3, 4, 1, 4, 4, 2, 4, 4)]
    bad = [b"garbage", npz_without_detector(), encode_npz(np.zeros((2, 1, 16, 16)), np.zeros(2), np.ones(2)), b"PK.."]

    def sender():
        if receiver_role == "dial":  # the receiver starts first and must keep redialling until we appear
            wait_until_receiver_runs(cfg.ray.namespace)
            time.sleep(1.0)
        push = PushSocket(transport, url, "dial" if receiver_role == "listen" else "listen")
        time.sleep(0.5)
        for i, frames in enumerate(sent):
            push.send(encode(frames, np.full(len(frames), float(i)), np.full(len(frames), 1.3)))
            if i < len(bad):
                push.send(bad[i])
        time.sleep(2)
        push.close()

    report = run_while_sending(cfg, sender)
    produce = report.stages["produce"]
    assert produce.frames_out == sum(len(f) for f in sent) == report.stages["write"].frames_out
    info = next(iter(produce.info.values()))
    assert info["malformed"] == len(bad) and produce.failed == {}
    assert info["malformed_by_reason"] == {"unknown_format": 1, "no_detector_data": 1, "shape": 1, "bad_npz": 1}
    received = {}
    for path in tmp_path.glob("*.cxi"):
        with h5py.File(path) as f:
            for event_id, image in zip(f["/entry_1/event_id"][:], f["/entry_1/data_1/data"][:]):
                received[int(event_id.decode().rsplit(":", 1)[1])] = image
    expected = np.concatenate(sent)
    assert sorted(received) == list(range(len(expected)))
    got = np.stack([received[i] for i in range(len(expected))])
    np.testing.assert_array_equal(got, expected[:, 0])  # same content, in the order sent


def test_push_to_run_over_a_socket_writes_cxi(ray_session, namespace, tmp_path):
    """The two commands a user types: `run` with a socket producer, then `push` (lclstreamer's wire format)."""
    import json
    import subprocess

    from .conftest import ROOT, SMALL_ACTORS, cli

    url = f"tcp://127.0.0.1:{free_port()}"
    common = [
        "--config",
        str(ROOT / "examples/configs/socket-cpu.yaml"),  # the socket CPU example must keep running
        "--set",
        "data.frame_shape=[1,64,64]",
        "--set",
        "data.batch_size=4",
    ]
    run = subprocess.Popen(
        cli(
            "run",
            *common,
            "--set",
            f"ray.address={ray_session.get_runtime_context().gcs_address}",
            "--set",
            f"ray.namespace={namespace}",
            "--set",
            "producer.kind=socket",
            "--set",
            f"producer.socket.addresses=[{{url: '{url}', role: listen}}]",
            "--set",
            "producer.socket.max_messages=6",
            *SMALL_ACTORS,
            "--set",
            "writer.min_num_peak=0",
            "--set",
            f"writer.output_dir={tmp_path}",
            "--report",
            str(tmp_path / "report.json"),
        ),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until_receiver_runs(namespace)
        pushed = subprocess.run(
            cli("push", *common, "--url", url, "--flavour", "npz", "--compress", "--batches", "6"),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert pushed.returncode == 0, pushed.stderr
        out, _ = run.communicate(timeout=120)
    finally:
        run.kill()
    assert run.returncode == 0, out
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["accounted"] is True and report["stages"]["write"]["frames_out"] == 24
    ids = []
    for path in tmp_path.glob("*.cxi"):
        with h5py.File(path) as f:
            ids += list(f["/entry_1/event_id"][:])
    assert len(set(ids)) == 24


def test_a_fast_sender_with_1000_malformed_messages_loses_nothing_and_memory_stays_bounded(ray_session, cpu_config):
    url = f"tcp://127.0.0.1:{free_port()}"
    cfg = cpu_config.model_copy(deep=True)
    cfg.producer.kind = "socket"
    cfg.producer.socket = cfg.producer.socket.model_validate(
        {"transport": "zmq", "addresses": [{"url": url}], "max_messages": 1050, "buffer_batches": 4}
    )
    cfg.data.frame_shape = (1, 32, 32)
    cfg.queues.maxsize = 1  # a slow pipeline behind a sender that never waits
    good = encode_npz(np.ones((2, 1, 32, 32), np.float32), np.zeros(2), np.ones(2))

    def sender():
        push = PushSocket("zmq", url, "dial")
        for i in range(1050):
            push.send(good if i % 21 == 0 else b"\x00not a message %d" % i)
        time.sleep(2)
        push.close()

    report = run_while_sending(cfg, sender)
    info = next(iter(report.stages["produce"].info.values()))
    assert info["malformed"] == 1000 and info["malformed_by_reason"] == {"unknown_format": 1000}
    assert report.stages["produce"].frames_out == 100 == report.stages["write"].frames_in
    assert info["buffer_high_water"] <= 4  # bounded: the sender was held back, not buffered without limit
    assert report.accounted is True


def test_several_addresses_feed_several_producer_actors_placed_by_custom_resource(ray_session, cpu_config):
    urls = [f"tcp://127.0.0.1:{free_port()}" for _ in range(2)]
    cfg = cpu_config.model_copy(deep=True)
    cfg.producer.kind = "socket"
    cfg.producer.resources = {"ingest_test": 1}  # only placeable where that resource exists
    cfg.producer.socket = cfg.producer.socket.model_validate(
        {"transport": "nng", "addresses": [{"url": u} for u in urls], "max_messages": 3}
    )
    cfg.data.frame_shape = (1, 32, 32)

    def sender(url: str, tag: int):
        push = PushSocket("nng", url, "dial")
        for i in range(3):
            push.send(encode_npz(np.full((2, 1, 32, 32), tag * 10 + i, np.float32), np.zeros(2), np.ones(2)))
        time.sleep(2)
        push.close()

    report = run_while_sending(cfg, *(lambda u=u, k=k: sender(u, k) for k, u in enumerate(urls)))
    produce = report.stages["produce"]
    assert produce.members == 2 and produce.frames_out == 12 == report.stages["write"].frames_in
    assert sorted(i["url"] for i in produce.info.values()) == sorted(urls)
    assert all(i["messages"] == 3 for i in produce.info.values())
