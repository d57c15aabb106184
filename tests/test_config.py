from pathlib import Path
from typing import Literal, get_args, get_origin

import pytest
import yaml

from peaknet_pipeline.cli import main
from peaknet_pipeline.config import InferenceSection, PeakNetModel, WriterSection
from peaknet_pipeline.config_sources import ConfigError, load_config

from .conftest import ROOT


def test_sources_apply_in_order(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("data: {batch_size: 8}\ninference: {num_actors: 3, num_buffers: 3}\n")
    cfg = load_config(path, ["inference.num_actors=2", "data.frame_shape=[1, 32, 64]"], {"data.batch_size": 16})
    assert cfg.data.batch_size == 16  # shortcut flag wins over YAML
    assert cfg.inference.num_actors == 2  # --set wins over YAML
    assert cfg.inference.num_buffers == 3  # YAML wins over default
    assert cfg.data.frame_shape == (1, 32, 64)
    assert cfg.queues.num_shards == 2  # default


def test_unknown_key_is_named_with_allowed_keys():
    with pytest.raises(ConfigError) as err:
        load_config(None, ["inference.num_bufers=3"])
    msg = str(err.value)
    assert "inference.num_bufers" in msg and "unknown key" in msg and "num_buffers" in msg


def test_unknown_section_is_named(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("inferenc: {num_actors: 1}\n")
    with pytest.raises(ConfigError, match=r"inferenc: unknown key; allowed keys here: .*inference"):
        load_config(path)


def test_invalid_value_lists_allowed_values():
    with pytest.raises(ConfigError) as err:
        load_config(None, ["inference.compile_mode=fast"])
    assert "inference.compile_mode" in str(err.value) and "reduce-overhead" in str(err.value)


def test_missing_config_file_says_so(tmp_path: Path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_bad_set_syntax():
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(None, ["inference.num_actors"])


def test_config_show_prints_effective_yaml(capsys):
    assert main(["config", "show", "--set", "queues.maxsize=7", "--batch-size", "5"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["queues"]["maxsize"] == 7 and shown["data"]["batch_size"] == 5


def test_cli_rejects_bad_key_with_exit_2(capsys):
    assert main(["config", "show", "--set", "nosuch.key=1"]) == 2
    assert "nosuch" in capsys.readouterr().err


@pytest.mark.parametrize("path", sorted((ROOT / "examples" / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_config_parses(path: Path):
    cfg = load_config(path)
    assert cfg.data.batch_size >= 1


def test_progress_off_unquoted_is_off_in_yaml_and_set(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("output: {progress: off}\n")  # YAML 1.1 reads this as false
    assert load_config(path, []).output.progress == "off"
    assert load_config(None, ["output.progress=off"]).output.progress == "off"
    with pytest.raises(ConfigError, match="output.progress"):
        load_config(None, ["output.progress=on"])  # true is still no value of it


def choices(section, field: str) -> set[str]:
    """The names a Literal field (or an optional one) accepts."""
    annotation = section.model_fields[field].annotation
    literal = next(a for a in (annotation, *get_args(annotation)) if get_origin(a) is Literal)
    return set(get_args(literal))


def test_the_configs_choices_are_the_ones_the_code_implements():
    """config.py names each choice without importing torch or h5py; this ties the names to the code."""
    from peaknet_pipeline.inference.engine import AUTOCAST
    from peaknet_pipeline.model.fused_ops import GELU_FORMS, MODES
    from peaknet_pipeline.output.cxi import FILTERS

    assert choices(WriterSection, "compression") == set(FILTERS)
    assert choices(PeakNetModel, "fused_kernels") == set(MODES)
    assert choices(PeakNetModel, "mlp_gelu") == set(GELU_FORMS)
    assert choices(InferenceSection, "precision") == {"fp32", *AUTOCAST}
