"""Peak finding and CXI files: real HDF5 files, real geometry parsing, a real local Ray."""

from __future__ import annotations

import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from peaknet_pipeline.config import ProducerSection, SyntheticPeaks
from peaknet_pipeline.driver import StageDriver
from peaknet_pipeline.output.cxi import CxiChunkWriter, KeptEvent
from peaknet_pipeline.output.geometry import layout_for
from peaknet_pipeline.output.peaks import find_peaks
from peaknet_pipeline.stages.produce import split_frames
from peaknet_pipeline.synthetic import FrameSynthesizer

from .conftest import ROOT

GEOM = ROOT / "examples" / "geometry" / "epix10k2m-16panel.geom"


def threshold_mask(frames: np.ndarray, k: float = 6.0) -> np.ndarray:
    mean = frames.mean(axis=(-2, -1), keepdims=True)
    std = frames.std(axis=(-2, -1), keepdims=True)
    return (frames > mean + k * std).astype(np.uint8)


def match(found: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Distance from each true peak to the nearest found peak on the same panel."""
    d = [np.min(np.hypot(*(found[found[:, 0] == p][:, 1:] - [y, x]).T), initial=np.inf) for p, y, x in truth]
    return np.array(d)


def test_peaks_found_within_half_a_pixel_of_the_truth():
    synth = FrameSynthesizer(ProducerSection(peaks=SyntheticPeaks(per_frame=(20, 60))), (2, 128, 160), "float32", 5)
    batch = synth.batch(6)
    for frame, truth, mask in zip(batch.frames, batch.true_peaks, threshold_mask(batch.frames)):
        peaks = find_peaks(mask, frame)
        assert len(peaks) == len(truth)
        assert match(peaks.positions, truth).max() < 0.5
        assert (peaks.pixels > 0).all() and (peaks.intensity > 0).all()


def test_components_touching_diagonally_are_one_peak_and_panels_never_join():
    mask = np.zeros((2, 8, 8), np.uint8)
    mask[0, 2, 2] = mask[0, 3, 3] = 1  # diagonal neighbours: 8-connected
    mask[0, 6, 6] = 1
    mask[1, 2, 2] = 1  # same place, other panel
    peaks = find_peaks(mask)
    assert sorted(map(tuple, peaks.positions.tolist())) == [(0, 2.5, 2.5), (0, 6, 6), (1, 2, 2)]


@pytest.mark.parametrize("density", [0.003, 0.05, 0.4])
def test_the_sparse_and_the_whole_frame_labelling_find_the_same_peaks(monkeypatch, density):
    from peaknet_pipeline.output import peaks

    rng = np.random.default_rng(7)
    mask = (rng.random((3, 48, 40)) < density).astype(np.uint8)
    frame = rng.random((3, 48, 40)).astype(np.float32)
    found = {}
    for share in (0.0, 1.1):  # every mask labelled whole / every mask as a graph of its pixels
        monkeypatch.setattr(peaks, "DENSE_SHARE", share)
        found[share] = find_peaks(mask, frame)
    whole, graph = found[0.0], found[1.1]
    assert len(whole) > 3 and len(whole) == len(graph)
    assert np.allclose(whole.positions, graph.positions) and (whole.pixels == graph.pixels).all()
    assert np.allclose(whole.intensity, graph.intensity)


def test_geometry_places_panels_and_peaks_in_the_slab(tmp_path: Path):
    layout = layout_for(str(GEOM), (16, 352, 384))
    assert layout.shape == (8 * 352, 2 * 384)
    frame = np.zeros((16, 352, 384), np.float32)
    frame[5, 10, 20] = 7.0  # panel 5: row 2, column 1 of the slab
    peaks = find_peaks((frame > 0).astype(np.uint8), frame)
    writer = CxiChunkWriter(str(tmp_path), "t", "w0", layout, max_num_peak=4)
    path = writer.write([KeptEvent("e0", 1.0, 9500.0, peaks)], frame[None])
    with h5py.File(path) as f:
        data = f["/entry_1/data_1/data"][:]
        assert data.shape == (1, 2816, 768) and data[0, 2 * 352 + 10, 384 + 20] == 7.0
        assert f["/entry_1/result_1/nPeaks"][:].tolist() == [1]
        assert f["/entry_1/result_1/peakXPosRaw"][0].tolist() == [384 + 20]  # as wide as the fullest event
        assert f["/entry_1/result_1/peakYPosRaw"][0, 0] == 2 * 352 + 10
        assert f["/entry_1/result_1/peakSegPosRaw"][0, 0] == 5
        assert f["/LCLS/photon_energy_eV"][:].tolist() == [9500.0]
    frame[7, 100:106:2, 50] = 3.0  # three more separate peaks in another event
    more = find_peaks((frame > 0).astype(np.uint8), frame)
    path = writer.write([KeptEvent("e0", 1.0, 9500.0, peaks), KeptEvent("e1", 2.0, 9500.0, more)])
    with h5py.File(path) as f:
        assert f["/entry_1/result_1/nPeaks"][:].tolist() == [1, 4]
        x = f["/entry_1/result_1/peakXPosRaw"][:]
        assert x.shape == (2, 4) and x[0, 1:].tolist() == [-1, -1, -1]


def test_a_file_takes_each_image_as_it_is_kept_in_the_detectors_dtype(tmp_path: Path):
    layout = layout_for(None, (1, 32, 16))
    frames = np.arange(3 * 32 * 16, dtype=np.uint16).reshape(3, 1, 32, 16)
    peaks = find_peaks((frames[0] == 5).astype(np.uint8), frames[0])
    out = CxiChunkWriter(str(tmp_path), "t", "w0", layout, max_num_peak=4).open(capacity=8, images=frames.dtype)
    for i in range(2):
        out.add(KeptEvent(f"e{i}", float(i), 9500.0, peaks), frames[i])
    tmp = tmp_path / f".{out.path.name}.tmp"
    assert tmp.stat().st_size >= frames[:2].nbytes and not out.path.exists()  # on disk before the close
    path = out.close()
    assert not tmp.exists()
    with h5py.File(path) as f:
        data = f["/entry_1/data_1/data"]
        assert data.dtype == np.uint16 and data.shape == (2, 32, 16)  # trimmed to what was added
        assert (data[:] == frames[:2, 0]).all()
        assert f["/entry_1/event_id"][:].tolist() == [b"e0", b"e1"]
    given_up = CxiChunkWriter(str(tmp_path), "u", "w0", layout, 4).open(capacity=8, images=np.dtype(np.float32))
    given_up.add(KeptEvent("e9", 0.0, 9500.0, peaks), frames[2].astype(np.float32))
    given_up.discard()
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_multi_panel_frames_without_geometry_say_what_to_pass():
    with pytest.raises(ValueError, match="set writer.geometry"):
        layout_for(None, (16, 352, 384))
    assert layout_for(None, (1, 64, 32)).shape == (64, 32)


def truth_by_frame_id(cfg, tag_of: dict[str, str]) -> dict[str, np.ndarray]:
    """Regenerate the seeded synthetic stream to know every frame's planted peaks."""
    truth = {}
    for i, frames in enumerate(split_frames(cfg.producer.total_frames, cfg.producer.num_producers)):
        synth = FrameSynthesizer(cfg.producer, cfg.data.frame_shape, cfg.data.dtype, cfg.producer.seed * 1_000_003 + i)
        seq = 0
        while seq < frames:
            size = min(cfg.data.batch_size, frames - seq)
            for j, t in enumerate(synth.batch(size).true_peaks):
                truth[f"{tag_of[str(i)]}:{seq + j}"] = t
            seq += size
    return truth


def test_pipeline_writes_cxi_with_true_peaks_and_accounts_by_frame_id(ray_session, cpu_config, tmp_path):
    cfg = cpu_config.model_copy(deep=True)
    cfg.writer.kind = "cxi"
    cfg.writer.output_dir = str(tmp_path)
    cfg.writer.buffer_size = 20
    cfg.writer.min_num_peak = 4  # planted 2..5 per frame: some frames are filtered
    cfg.peaks.task_cpus = 0.25
    report = StageDriver(cfg, ("produce", "infer", "write"), "run", whole_pipeline=True).execute()
    files = sorted(tmp_path.glob("*.cxi"))
    assert files and not list(tmp_path.glob("*.tmp"))
    written: dict[str, tuple[np.ndarray, np.ndarray, int]] = {}
    for path in files:
        with h5py.File(path) as f:
            ids = [x.decode() for x in f["/entry_1/event_id"][:]]
            for k, event_id in enumerate(ids):
                n = int(f["/entry_1/result_1/nPeaks"][k])
                xy = np.stack([f["/entry_1/result_1/peakYPosRaw"][k, :n], f["/entry_1/result_1/peakXPosRaw"][k, :n]])
                written[event_id] = (xy.T, f["/entry_1/data_1/data"][k], n)
    tag_of = {name.rsplit("-", 1)[1]: name for name in {i.split(":")[0] for i in written}}
    truth = truth_by_frame_id(cfg, tag_of)
    expected_kept = {fid for fid, t in truth.items() if len(t) >= 4}
    assert set(written) == expected_kept  # every frame written or filtered, by frame id
    write = report.stages["write"]
    assert write.frames_in == 64 and write.frames_out == len(expected_kept)
    assert write.failed == {"filtered_min_num_peak": 64 - len(expected_kept)}
    for fid, (found, image, n) in written.items():
        assert n == len(truth[fid])
        panels_found = np.concatenate([np.zeros((n, 1)), found], axis=1)
        assert match(panels_found, truth[fid]).max() < 0.5
        assert image.shape == (64, 64)
        # The stored image is this event's frame: bright at each of its own true peaks.
        ys, xs = np.round(truth[fid][:, 1]).astype(int), np.round(truth[fid][:, 2]).astype(int)
        assert (image[ys, xs] > cfg.producer.background + cfg.producer.peaks.amplitude / 3).all()
    assert report.accounted is True
    # Every frame's peaks were matched against its planted ones, filtered frames too.
    assert report.peak_quality["frames"] == 64 and report.peak_quality["recall"] == 1.0


def test_killed_writer_leaves_only_complete_files(ray_session, cpu_config, tmp_path):
    cfg = cpu_config.model_copy(deep=True)
    cfg.writer.kind, cfg.writer.output_dir, cfg.writer.buffer_size, cfg.writer.min_num_peak = "cxi", str(tmp_path), 4, 0
    cfg.producer.total_frames, cfg.producer.num_producers, cfg.producer.push_interval_s = None, 1, 0.01
    cfg.peaks.task_cpus = 0.25
    from peaknet_pipeline.stages.launch import start_inference, start_producers, start_writers
    from peaknet_pipeline.stages.wiring import ensure_shared_actors, remove_shared_actors

    coordinator = ensure_shared_actors(cfg)
    members = [m for start in (start_producers, start_inference, start_writers) for m in start(cfg, coordinator, "k")]
    for m in members:
        m.handle.run.remote()
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("*.cxi"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    ray_session.kill(members[-1].handle)  # the writer, wherever it is in its chunk
    for m in members[:-1]:
        ray_session.kill(m.handle)
    files = list(tmp_path.glob("*.cxi"))
    assert len(files) >= 3
    for path in files:
        with h5py.File(path) as f:
            n = f["/entry_1/result_1/nPeaks"].shape[0]
            assert n == 4 and f["/entry_1/data_1/data"].shape[0] == n and len(f["/entry_1/event_id"]) == n
    remove_shared_actors(cfg)
