"""The README's test command is what CI runs; no example config rots (each is parsed in test_config)."""

import re

from .conftest import ROOT, load_script


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


results_index = load_script("peaknet_results_index", ROOT / "benchmarks" / "results_index.py")


def test_readme_numbers_and_the_results_index_are_generated_from_the_result_files():
    files = results_index.wanted()
    assert results_index.stale(files) == []
    readme = results_index.README
    text = readme.read_text()
    assert "| H200 | base 1x512x512 b64 | random | 2,130 |" in text  # a row comes from its file
    edited = {readme: text.replace("| 2,130 |", "| 2,310 |")}
    assert results_index.stale(edited) == [readme]


def test_every_result_file_is_recognised():
    kinds = {path.name: results_index.classify(path)[0] for path in results_index.result_files()}
    assert [name for name, kind in kinds.items() if kind == "other"] == []


def test_no_history_in_code_comments():
    """Numbers and was/now stories belong in docs/performance.md: comments say why the code is as it is."""
    number = r"\d[\d,.]*\s*(frames/s|ms\b|us\b|TFLOP|x faster|x less)|\d%|\d[\d,.]* -> \d"
    story = re.compile(rf"({number}|h[12]00-\S+\.jsonl?)", re.I)
    offenders = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in (ROOT / "app").rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if ("#" in line or '"""' in line or line.startswith("    ")) and story.search(line)
    ]
    assert offenders == []
