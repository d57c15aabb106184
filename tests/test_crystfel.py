"""What CrystFEL needs, checked against what the writer writes: the example geometries point at the
datasets of a real CXI file from the writer, with the writer's panel layout, and peaks-only files get the
event list indexamajig takes (no CrystFEL here: geometries are parsed with cfelpyutils, CrystFEL's own
format in Python)."""

from __future__ import annotations

import re
import shutil
import subprocess

import h5py
import numpy as np
import pytest
import yaml
from cfelpyutils.geometry import load_crystfel_geometry

from peaknet_pipeline.output.crystfel import HEADER, event_list, header_problems
from peaknet_pipeline.output.cxi import FILTERS, CxiChunkWriter, KeptEvent
from peaknet_pipeline.output.geometry import layout_for
from peaknet_pipeline.output.peaks import PeakList

from .conftest import ROOT, cli

GEOMETRY = ROOT / "examples" / "geometry"
CONFIGS = ROOT / "examples" / "configs"


def frame_shapes() -> dict[str, tuple[int, int, int]]:
    """The frame shape of each example config, and the 16-panel one of the multi-panel geometry."""
    shapes = {p.stem: tuple(yaml.safe_load(p.read_text())["data"]["frame_shape"]) for p in CONFIGS.glob("*.yaml")}
    return shapes | {"epix10k2m-16panel": (16, 352, 384)}


def geometry_for(shape: tuple[int, int, int]):
    return GEOMETRY / ("epix10k2m-16panel.geom" if shape[0] > 1 else f"single-panel-{shape[1]}.geom")


def write_cxi(path, shape, geometry, images: bool) -> None:
    layout = layout_for(str(geometry) if shape[0] > 1 else None, shape)
    frames = np.random.default_rng(0).normal(size=(3, *shape)).astype(np.float32)
    peaks = PeakList(np.array([[0, 10.0, 20.0], [shape[0] - 1, 5.0, 7.0]], np.float32), np.ones(2, np.int32),
                     np.ones(2, np.float32))  # fmt: skip
    events = [KeptEvent(f"e{i}", 1.0, 9500.0, peaks) for i in range(3)]
    written = CxiChunkWriter(str(path.parent), "t", "w", layout, 64).write(events, frames if images else None)
    written.rename(path)


@pytest.mark.parametrize("name", sorted(frame_shapes()))
def test_each_example_frame_shape_has_a_geometry_that_fits_the_writers_files(name, tmp_path):
    shape = frame_shapes()[name]
    geom = geometry_for(shape)
    assert header_problems(geom) == []
    geometry = load_crystfel_geometry(str(geom))
    layout = layout_for(str(geom) if shape[0] > 1 else None, shape)
    panels = list(geometry.detector["panels"].values())
    assert [(p["orig_min_ss"], p["orig_max_ss"], p["orig_min_fs"], p["orig_max_fs"]) for p in panels] == [
        (r.min_ss, r.max_ss, r.min_fs, r.max_fs) for r in layout.panels
    ]
    path = tmp_path / "f.cxi"
    write_cxi(path, shape, geom, images=True)
    with h5py.File(path) as f:
        data = f[HEADER["data"]]
        assert data.shape == (3, *layout.shape)  # dim0 = % (events), dim1 = ss, dim2 = fs
        assert f[HEADER["photon_energy"]].shape == (3,)
        assert {"nPeaks", "peakXPosRaw", "peakYPosRaw", "peakTotalIntensity"} <= set(f[HEADER["peak_list"]])
        for panel in panels:
            assert panel["orig_max_ss"] < data.shape[1] and panel["orig_max_fs"] < data.shape[2]


def test_single_panel_geometries_are_what_the_command_prints():
    for name, shape in frame_shapes().items():
        if shape[0] == 1:
            done = subprocess.run(cli("crystfel", "geom", "--config", str(CONFIGS / f"{name}.yaml")),
                                  capture_output=True, text=True, check=True)  # fmt: skip
            assert done.stdout == geometry_for(shape).read_text(), f"{geometry_for(shape)} differs: regenerate it"


def test_a_geometry_without_the_writers_keys_is_named(tmp_path):
    broken = tmp_path / "old.geom"
    text = (GEOMETRY / "single-panel-512.geom").read_text()
    broken.write_text(text.replace("dim1 = ss\n", "").replace("/LCLS/photon_energy_eV", "9500"))
    problems = header_problems(broken)
    assert len(problems) == 2
    assert "dim1 = (missing), the writer needs dim1 = ss" in problems[0] + problems[1]
    assert "photon_energy = 9500" in problems[0] + problems[1]


def test_multi_panel_frames_have_no_single_panel_geometry_and_say_where_to_look():
    done = subprocess.run(cli("crystfel", "geom", "--set", "data.frame_shape=[16,352,384]"), capture_output=True,
                          text=True)  # fmt: skip
    assert done.returncode == 2 and "writer.geometry" in done.stderr


def test_peaks_only_files_get_the_event_list_indexamajig_takes(tmp_path):
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"peaks-{i}.cxi")
        write_cxi(paths[-1], (1, 64, 64), None, images=False)
    with h5py.File(paths[0]) as f:
        assert HEADER["data"] not in f  # nothing for CrystFEL to enumerate events from
    done = subprocess.run(cli("crystfel", "events", *map(str, paths)), capture_output=True, text=True, check=True)
    expected = [f"{p} //{i}" for p in paths for i in range(3)]
    assert done.stdout.splitlines() == expected == list(event_list(paths))


H5DUMP = shutil.which("h5dump")


@pytest.mark.parametrize("compression", ["bitshuffle-lz4", "zstd"])
def test_compressed_images_are_read_by_a_c_hdf5_reader_through_the_plugin_path(compression, tmp_path):
    """CrystFEL reads HDF5 through the C library, which finds hdf5plugin's filters only through
    HDF5_PLUGIN_PATH (what `crystfel plugin-path` prints). h5dump is such a reader, as CrystFEL is not here."""
    if H5DUMP is None:
        pytest.skip("h5dump (Debian's hdf5-tools, which .ci/run installs) is not installed")
    frames = np.random.default_rng(1).poisson(3.0, size=(2, 1, 8, 8)).astype(np.float32)
    none = PeakList(np.zeros((0, 3), np.float32), np.zeros(0, np.int32), np.zeros(0, np.float32))
    events = [KeptEvent(f"e{i}", 1.0, 9500.0, none) for i in range(2)]
    layout = layout_for(None, (1, 8, 8))
    path = CxiChunkWriter(str(tmp_path), "t", "w", layout, 8, compression).write(events, frames)
    with h5py.File(path) as f:
        assert f[HEADER["data"]].id.get_create_plist().get_filter(0)[0] == FILTERS[compression]["compression"]
        assert np.array_equal(f[HEADER["data"]][:], frames[:, 0])
    plugins = subprocess.run(cli("crystfel", "plugin-path"), capture_output=True, text=True, check=True).stdout.strip()
    dump = [H5DUMP, "-d", HEADER["data"], "-w", "0", "-y", str(path)]
    without = subprocess.run(dump, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert "unable to print data" in without.stdout + without.stderr
    shown = subprocess.run(dump, capture_output=True, text=True, check=True,
                           env={"PATH": "/usr/bin:/bin", "HDF5_PLUGIN_PATH": plugins})  # fmt: skip
    values = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", shown.stdout.split("DATA {", 1)[1])]
    assert values == frames.ravel().tolist()
