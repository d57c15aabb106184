"""PeakNet: upstream checkpoint names and shapes, numerics against transformers, loading errors."""

from pathlib import Path

import pytest
import torch

from peaknet_pipeline.config_sources import validate_config
from peaknet_pipeline.inference.models import build_model
from peaknet_pipeline.model.checkpoint import CheckpointError, load_weights
from peaknet_pipeline.model.peaknet import PRESETS, PeakNet, PeakNetArch
from peaknet_pipeline.model.segmenter import InputError, Segmenter

from .conftest import ROOT

DESIGN = ROOT / "tests" / "data"
SMALL = PeakNetArch(
    backbone_hidden_sizes=(32, 32, 64, 64),
    backbone_depths=(1, 1, 2, 1),
    bifpn_num_blocks=2,
    bifpn_num_features=32,
    seg_out_channels=32,
)


def listing(name: str) -> list[tuple[str, str, str]]:
    path = DESIGN / f"peaknet-{name}-state-dict.tsv"
    if not path.is_file():
        pytest.skip(f"{path} not present (the listing is missing from tests/data)")
    return [tuple(line.rstrip("\n").split("\t")) for line in path.read_text().splitlines()]


def randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2 + (1.0 if p.ndim == 1 else 0.0))
    return model


@pytest.mark.parametrize("preset, entries, params", [("base", 296, 33_164_768), ("673m", 532, 673_012_480)])
def test_presets_match_upstream_state_dict_listings(preset, entries, params):
    with torch.device("meta"):  # the 673m preset would take 2.7 GB; names and shapes need no memory
        model = PeakNet(PRESETS[preset])
    state = model.state_dict()
    assert len(state) == entries
    assert sum(p.numel() for p in model.parameters()) == params
    ours = [(k, str(tuple(v.shape)), str(v.dtype)) for k, v in state.items()]
    assert ours == listing(preset)


def test_backbone_matches_transformers_convnextv2():
    transformers = pytest.importorskip("transformers", reason="transformers (the `test` extra) is not installed")
    cfg = transformers.ConvNextV2Config(
        num_channels=1,
        hidden_sizes=list(SMALL.backbone_hidden_sizes),
        depths=list(SMALL.backbone_depths),
        out_features=["stage1", "stage2", "stage3", "stage4"],
        drop_path_rate=0.0,
    )
    theirs = transformers.ConvNextV2Backbone(cfg).eval()
    ours = randomise(PeakNet(SMALL)).backbone.eval()
    theirs.load_state_dict(ours.state_dict(), strict=True)  # same names, copied across by key
    x = torch.randn(2, 1, 64, 96)
    with torch.no_grad():
        expected = theirs(x).feature_maps
        got = ours(x)
    assert len(got) == len(expected) == 4
    for a, b in zip(got, expected):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_round_trip_through_a_saved_state_dict(tmp_path: Path):
    model = randomise(PeakNet(SMALL)).eval()
    path = tmp_path / "ckpt.pt"
    torch.save(model.state_dict(), path)
    fresh = PeakNet(SMALL).eval()
    load_weights(fresh, path)
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), model(x), rtol=0, atol=0)
    assert model(x).shape == (1, 2, 64, 64)


def test_bad_checkpoints_list_every_problem(tmp_path: Path):
    state = PeakNet(SMALL).state_dict()
    del state["head_segmask.bias"]
    state["extra.weight"] = torch.zeros(1)
    state["backbone_to_bifpn.0.weight"] = torch.zeros(3, 3, 1, 1)
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as err:
        load_weights(PeakNet(SMALL), path)
    msg = str(err.value)
    assert "1 missing keys" in msg and "head_segmask.bias" in msg
    assert "1 unexpected keys" in msg and "extra.weight" in msg
    assert "backbone_to_bifpn.0.weight: checkpoint (3, 3, 1, 1), model (32, 32, 1, 1)" in msg


def test_configured_weights_that_do_not_exist_are_an_error(tmp_path: Path):
    cfg = validate_config({"model": {"peaknet": {"weights": str(tmp_path / "missing.pt")}}})
    with pytest.raises(CheckpointError, match="does not exist"):
        build_model(cfg.model)


def test_null_weights_say_so(caplog):
    cfg = validate_config({"model": {"peaknet": {"weights": None, "backbone_depths": [1, 1, 1, 1]}}})
    _, info = build_model(cfg.model)
    assert info["random_weights"] is True and info["weights"] is None
    assert "random weights" in caplog.text


def small_segmenter(pad: str, instance_norm: bool = False) -> Segmenter:
    return Segmenter(randomise(PeakNet(SMALL)).eval(), 1, instance_norm, pad, 32)


@pytest.mark.parametrize("pad", ["bottom_right", "center"])
def test_padding_crops_logits_back_to_the_frame(pad):
    seg = small_segmenter(pad)
    x = torch.randn(2, 3, 50, 70)
    with torch.no_grad():
        out = seg(x)
    assert out.shape == (6, 2, 50, 70)
    # bottom-right padding leaves the top-left corner where it was: same as running the padded frame
    if pad == "bottom_right":
        padded = torch.nn.functional.pad(x.reshape(6, 1, 50, 70), (0, 26, 0, 14))
        with torch.no_grad():
            torch.testing.assert_close(out, seg.model(padded)[..., :50, :70])


def test_panels_are_fed_one_by_one_and_regrouped():
    seg = small_segmenter("none")
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        whole = seg(x).reshape(2, 3, 2, 64, 64)
        single = seg(x[1:2, 2:3])
    torch.testing.assert_close(whole[1, 2], single[0], rtol=1e-4, atol=1e-5)


def test_instance_normalisation_makes_the_output_scale_free():
    seg = small_segmenter("none", instance_norm=True)
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(seg(x), seg(x * 7 + 3), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize(
    "shape, dtype, words",
    [
        ((1, 1, 50, 64), torch.float32, ["multiples of 32", "50x64", "model.preprocess.pad"]),
        ((1, 1, 64, 64), torch.int32, ["float dtype", "torch.int32"]),
    ],
)
def test_bad_input_names_expected_and_actual(shape, dtype, words):
    seg = small_segmenter("none")
    with pytest.raises(InputError) as err:
        seg(torch.zeros(shape, dtype=dtype))
    for word in words:
        assert word in str(err.value)


def test_wrong_channel_count_for_a_multichannel_model():
    seg = Segmenter(PeakNet(PeakNetArch(num_channels=2, backbone_depths=(1, 1, 1, 1))), 2, False, "none", 32)
    with pytest.raises(InputError, match=r"2 channels .* got shape \(1, 3, 64, 64\)"):
        seg.check_input((1, 3, 64, 64), torch.float32)
