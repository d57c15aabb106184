"""What became of every frame: produced by a source, then settled exactly once with an outcome.

Producers record frames as produced before they enter Q1. The stage that finishes with a frame settles it
with an outcome: written (only once its CXI file is renamed into place), filtered, or failed with a reason.
Apart from that, consumers release frames per owner as soon as they no longer need the owner's objects
(a writer copies the images it keeps), so producers and inference actors know when they may leave. Frames that a
dead member took with it are never settled, so at the end `produced - settled` is what was lost, and no
frame can be counted twice. Files go through intent -> commit, so a writer killed between the rename and
its report is still resolved from what is on disk.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WRITTEN = "written"
# Outcomes that mean frames were lost, as opposed to rejected for a reason the data carries.
LOSS_OUTCOMES = ("owner_died", "object_lost", "write_failed", "abandoned_at_deadline")


@dataclass(slots=True)
class FileIntent:
    """A CXI file a writer is about to rename into place, and how many frames it holds."""

    writer: str
    path: str
    frames: int


@dataclass(slots=True)
class Ledger:
    _produced: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    _settled: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # per owner, for lingering
    _outcomes: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # frames per outcome
    _intents: dict[tuple[str, str], FileIntent] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def produced(self, source: str, frames: int) -> None:
        self._produced[source] += frames

    def settle(self, owners: dict[str, int], frames: int, outcome: str | None) -> None:
        for owner, n in owners.items():
            self._settled[owner] += n
        if outcome is not None and frames:
            self._outcomes[outcome] += frames

    def settled_by(self, owner: str) -> int:
        return self._settled[owner]

    def intend(self, intent: FileIntent) -> None:
        self._intents[(intent.writer, intent.path)] = intent

    def commit(self, writer: str, path: str) -> None:
        intent = self._intents.pop((writer, path), None)
        if intent is not None:
            self.settle({}, intent.frames, WRITTEN)
            self.files.append(path)

    def drop(self, writer: str, path: str, outcome: str) -> None:
        """The file never made it: its frames are settled as lost with `outcome`."""
        intent = self._intents.pop((writer, path), None)
        if intent is not None:
            self.settle({}, intent.frames, outcome)

    def pending(self, writer: str | None = None) -> list[FileIntent]:
        return [i for (w, _), i in self._intents.items() if writer is None or w == writer]

    def summary(self) -> dict[str, Any]:
        produced = sum(self._produced.values())
        settled = sum(self._outcomes.values())
        return {
            "produced": produced,
            "outcomes": dict(self._outcomes),
            "lost_unsettled": max(0, produced - settled),
            "pending_files": len(self._intents),
            "files": len(self.files),
        }


def resolve_on_disk(coordinator, intents: list[FileIntent]) -> int:
    """Commit the intents whose file is in place, drop the others; returns how many were committed.
    Called where the output directory is visible: the writer's next incarnation, or the driver."""
    committed = 0
    for intent in intents:
        path = Path(intent.path)
        if path.exists():
            coordinator.commit.remote(intent.writer, intent.path)
            committed += 1
        else:
            coordinator.drop.remote(intent.writer, intent.path, "write_failed")
            path.with_name(f".{path.name}.tmp").unlink(missing_ok=True)  # the part its writer left
    return committed
