"""Build a PipelineConfig from its sources, later wins: defaults, YAML, --set, shortcut flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from .config import PipelineConfig


class ConfigError(ValueError):
    """A configuration problem, worded for the person who wrote the config."""


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    shortcuts: dict[str, Any] | None = None,
) -> PipelineConfig:
    data: dict[str, Any] = {}
    if path is not None:
        data = read_yaml(Path(path))
    for item in overrides or []:
        key, value = parse_override(item)
        set_dotted(data, key, value)
    for key, value in (shortcuts or {}).items():
        if value is not None:
            set_dotted(data, key, value)
    return validate_config(data)


def read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; pass --config with the path of a YAML file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections, got {type(data).__name__}")
    return data


def parse_override(item: str) -> tuple[str, Any]:
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {item!r}: expected section.key=value, e.g. --set inference.num_buffers=3")
    # YAML parsing gives numbers, booleans, null and lists the same meaning as in a config file.
    return key.strip(), yaml.safe_load(raw) if raw.strip() else ""


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"cannot set {key}: {part} is a value, not a section")
        node = child
    node[parts[-1]] = value


def validate_config(data: dict[str, Any]) -> PipelineConfig:
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc)) from None


def describe_errors(exc: ValidationError) -> str:
    lines = ["invalid configuration:"]
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        key = ".".join(loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            allowed = ", ".join(allowed_keys(loc[:-1]))
            lines.append(f"  {key}: unknown key; allowed keys here: {allowed}")
        else:
            lines.append(f"  {key}: {err['msg']} (got {err.get('input')!r})")
    return "\n".join(lines)


def allowed_keys(section_path: list[str]) -> list[str]:
    model: type[BaseModel] = PipelineConfig
    for name in section_path:
        field = model.model_fields.get(name)
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return sorted(model.model_fields)


def config_to_yaml(config: PipelineConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
