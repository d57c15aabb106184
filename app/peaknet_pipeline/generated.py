"""Files a script makes and the repository commits (the chart's schema and values table, k8s/rayjobs/, the
README's numbers): write them, or check that the committed ones are current, so a test fails on drift."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path


def between_markers(text: str, start: str, end: str, body: str) -> str:
    """`text` with what lies between the two marker lines replaced by `body`."""
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{body}\n{end}{tail}"


def stale(files: dict[Path, str]) -> list[Path]:
    """The committed files that differ from what the script makes."""
    return [p for p, text in files.items() if not p.exists() or p.read_text() != text]


def write_or_check(doc: str, make: Callable[[], dict[Path, str]], command: str, argv: list[str] | None = None) -> int:
    """The `main` of such a script: write the files, or with --check exit 1 naming each stale one."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="exit 1 if a committed file differs")
    args = ap.parse_args(argv)
    files = make()
    if args.check:
        for path in stale(files):
            print(f"{path} is stale: run {command}")
        return 1 if stale(files) else 0
    for path, text in files.items():
        path.write_text(text)
        print(f"wrote {path}")
    return 0
