"""producer.kind: file: HDF5/CXI files replayed through the pipeline, on a real local Ray with real files,
including the pipeline's own CXI output read back (same pixels, same event ids)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from peaknet_pipeline.config_sources import ConfigError
from peaknet_pipeline.driver import StageDriver
from peaknet_pipeline.ingest.files import FrameFile, resolve_paths
from peaknet_pipeline.output.geometry import layout_for
from peaknet_pipeline.report import EXIT_OK, EXIT_STAGE_FAILED
from peaknet_pipeline.stages.launch import cpus_needed
from peaknet_pipeline.synthetic import FrameSynthesizer

from .conftest import ROOT

ALL = ("produce", "infer", "write")
GEOM = ROOT / "examples" / "geometry" / "epix10k2m-16panel.geom"


def cxi_events(directory: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """event id -> (image, peaks (n, 2) y/x) over every CXI file in a directory."""
    out = {}
    for path in sorted(directory.glob("*.cxi")):
        with h5py.File(path) as f:
            r = f["/entry_1/result_1"]
            for k, event_id in enumerate(x.decode() for x in f["/entry_1/event_id"][:]):
                n = int(r["nPeaks"][k])
                peaks = np.stack([r["peakYPosRaw"][k, :n], r["peakXPosRaw"][k, :n]], axis=1)
                assert event_id not in out, f"{event_id} written twice"
                out[event_id] = (f["/entry_1/data_1/data"][k], peaks)
    return out


def file_config(cfg, paths: list[str], output_dir: Path | None):
    cfg = cfg.model_copy(deep=True)
    cfg.producer.kind = "file"
    cfg.producer.file.paths = paths
    if output_dir is not None:
        cfg.writer.kind, cfg.writer.output_dir, cfg.writer.min_num_peak = "cxi", str(output_dir), 0
        cfg.peaks.task_cpus = 0.25
    return cfg


def test_the_pipelines_own_cxi_replays_to_the_same_pixels_event_ids_and_peaks(ray_session, cpu_config, tmp_path):
    first = cpu_config.model_copy(deep=True)
    first.writer.kind, first.writer.output_dir, first.writer.min_num_peak = "cxi", str(tmp_path / "a"), 0
    first.writer.buffer_size = 24  # several files, so the replay crosses file boundaries
    first.peaks.task_cpus = 0.25
    assert StageDriver(first, ALL, "run", whole_pipeline=True).execute().exit_code == EXIT_OK
    original = cxi_events(tmp_path / "a")
    assert len(original) == 64 and len(list((tmp_path / "a").glob("*.cxi"))) >= 3

    replay = file_config(cpu_config, [str(tmp_path / "a" / "*.cxi")], tmp_path / "b")
    replay.producer.num_producers, replay.producer.file.loops = 2, 2
    report = StageDriver(replay, ALL, "run", whole_pipeline=True).execute()
    assert report.exit_code == EXIT_OK and report.accounted
    assert report.stages["produce"].frames_out == 128
    again = cxi_events(tmp_path / "b")
    assert set(again) == set(original) | {f"{event_id}#1" for event_id in original}  # a second pass, ids apart
    for event_id, (image, peaks) in original.items():
        for replayed in (event_id, f"{event_id}#1"):
            np.testing.assert_array_equal(again[replayed][0], image)
            np.testing.assert_array_equal(again[replayed][1], peaks)


def test_a_wrong_dataset_ends_the_run_at_start_naming_the_setting(ray_session, cpu_config, tmp_path):
    path = tmp_path / "frames.h5"
    with h5py.File(path, "w") as f:
        f["/entry_1/data_1/data"] = np.zeros((4, 64, 64), np.float32)
    cfg = file_config(cpu_config, [str(path)], None)
    cfg.producer.file.dataset = "/entry_1/data_1/dta"
    report = StageDriver(cfg, ALL, "run", whole_pipeline=True).execute()
    assert report.exit_code == EXIT_STAGE_FAILED
    assert "producer.file.dataset '/entry_1/data_1/dta'" in report.error and "/entry_1/data_1/data" in report.error


def test_plain_frames_without_ids_and_a_shape_the_config_does_not_name(cpu_config, tmp_path):
    frames = FrameSynthesizer(cpu_config.producer, (1, 64, 64), "float32", 7).batch(3).frames
    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as f:
        f["/data/data"] = frames[:, 0]  # (B, H, W), no event ids, no /LCLS
    cfg = file_config(cpu_config, [str(path)], None)
    cfg.producer.file.dataset = "/data/data"
    source = FrameFile(str(path), cfg)
    batch = source.read(1, 3)
    source.close()
    np.testing.assert_array_equal(batch.frames, frames[1:3])
    assert batch.event_ids == ["plain.h5:1", "plain.h5:2"]
    assert (batch.photon_energy_eV == cfg.producer.photon_energy_eV).all()
    cfg.data.frame_shape = (1, 32, 32)
    with pytest.raises(ValueError, match=r"data.frame_shape is \(1, 32, 32\) but .* frames of \(1, 64, 64\)"):
        FrameFile(str(path), cfg)


def test_missing_files_are_a_config_error_before_anything_starts(cpu_config, tmp_path):
    cfg = file_config(cpu_config, [str(tmp_path / "*.cxi")], None)
    with pytest.raises(ConfigError, match=r"producer.file.paths: .*\*\.cxi' matches no file"):
        cpus_needed(cfg, ALL)
    cfg.producer.file.paths = []
    with pytest.raises(ConfigError, match="needs producer.file.paths"):
        resolve_paths(cfg.producer.file.paths)


def test_files_are_dealt_over_producers_in_order(cpu_config, tmp_path):
    for name in ("r2.h5", "r0.h5", "r1.h5"):
        (tmp_path / name).touch()
    cfg = file_config(cpu_config, [str(tmp_path / "r*.h5")], None)
    cfg.producer.num_producers = 4  # more producers than files: one per file
    from peaknet_pipeline.stages.replay import plan

    assert [[Path(p).name for p in paths] for (paths,) in plan(cfg)] == [["r0.h5"], ["r1.h5"], ["r2.h5"]]
    assert cpus_needed(cfg, ("produce",)) == 3 * cfg.producer.num_cpus


def test_multi_panel_frames_from_4d_data_and_from_slabs_through_the_writers_geometry(cpu_config, tmp_path):
    shape = (16, 352, 384)
    frames = np.random.default_rng(0).normal(size=(2, *shape)).astype(np.float32)
    layout = layout_for(str(GEOM), shape)
    slabs = np.zeros((2, *layout.shape), np.float32)
    layout.place(slabs, frames)
    with h5py.File(tmp_path / "stacked.h5", "w") as f:
        f["/entry_1/data_1/data"] = frames
    with h5py.File(tmp_path / "slabs.cxi", "w") as f:
        f["/entry_1/data_1/data"] = slabs
        f["/entry_1/event_id"] = np.array([b"e0", b"e1"], dtype=h5py.string_dtype())
    cfg = cpu_config.model_copy(deep=True)
    cfg.data.frame_shape = shape
    cfg.writer.geometry = str(GEOM)
    for name in ("stacked.h5", "slabs.cxi"):
        source = FrameFile(str(tmp_path / name), cfg)
        batch = source.read(0, 2)
        np.testing.assert_array_equal(batch.frames, frames)
        source.close()
    assert batch.event_ids == ["e0", "e1"]
    cfg.writer.geometry = None
    with pytest.raises(ValueError, match="set writer.geometry"):
        FrameFile(str(tmp_path / "slabs.cxi"), cfg)


def test_pacing_keeps_the_average_rate_and_lets_a_late_producer_catch_up():
    from peaknet_pipeline.stages.replay import pacing_delay

    assert pacing_delay(None, 0.0, 640, 0.0) == 0.0
    assert pacing_delay(100.0, 10.0, 64, 10.2) == pytest.approx(0.44)  # 64 frames at 100/s end at 10.64
    assert pacing_delay(100.0, 10.0, 64, 11.0) == 0.0  # behind: no wait
