"""One log format, at output.log_level, for the CLI's process and every stage actor's.

Ray starts each actor in a process of its own whose root logger is unconfigured: there its warnings come out
bare (no time, no logger name) and its INFO lines not at all, so each stage actor configures logging first."""

from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(level: str) -> None:
    logging.basicConfig(level=level, format=FORMAT)
