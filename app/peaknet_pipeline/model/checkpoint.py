"""Load upstream PeakNet checkpoints (a plain state_dict saved with torch.save) strictly, or say why not."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


class CheckpointError(ValueError):
    pass


BUILTIN = "builtin:"


def weights_path(name: str | Path) -> Path:
    """A path as given, or a checkpoint shipped in the package (builtin:NAME)."""
    text = str(name)
    if text.startswith(BUILTIN):
        return Path(__file__).resolve().parent.parent / "weights" / text[len(BUILTIN) :]
    return Path(text)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    path = weights_path(path)
    if not path.is_file():
        raise CheckpointError(
            f"model.peaknet.weights: checkpoint {path} does not exist; give the path of a state_dict "
            "saved with torch.save, or set weights: null to run with random weights on purpose"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "model_state_dict" in state and isinstance(state["model_state_dict"], dict):
        state = state["model_state_dict"]  # training checkpoints wrap the state dict
    if not isinstance(state, dict):
        raise CheckpointError(
            f"{path}: expected a state_dict (mapping of names to tensors), got {type(state).__name__}"
        )
    return state


def check_state_dict(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Raise with every missing, unexpected and mis-shaped key listed."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshaped = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)}, model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    )
    if missing or unexpected or misshaped:
        parts = []
        for title, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)):
            if items:
                parts.append(f"{len(items)} {title} keys:\n    " + "\n    ".join(items))
        raise CheckpointError(
            "checkpoint does not fit the configured model (check model.peaknet.preset and sizes):\n  "
            + "\n  ".join(parts)
        )


def load_weights(model: nn.Module, path: str | Path) -> None:
    state = read_state_dict(path)
    check_state_dict(model, state)
    model.load_state_dict(state, strict=True)
