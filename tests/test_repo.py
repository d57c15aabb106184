"""The README's test command is what CI runs; no example config rots (each is parsed in test_config)."""

import re

from .conftest import ROOT


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"Tests \(this is what `.ci/run` runs\):\s*```bash\n(.+?)\n```", readme, re.S)
    assert block, "README lost its test command block"
    assert block.group(1).strip() in (ROOT / ".ci" / "run").read_text()


def test_no_whitespace_only_lines_in_sources():
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in list((ROOT / "app").rglob("*.py")) + list((ROOT / "tests").rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if line and not line.strip()
    ]
    assert offenders == []
