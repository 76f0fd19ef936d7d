"""The README's baseline recipe runs exactly as written; its CI lines are the example workflow's."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

pytestmark = pytest.mark.training  # every test here trains (make test-fast leaves them out)

README = Path(__file__).resolve().parent.parent / "README.md"
WORKFLOW = README.parent / "examples" / "github-actions.yml"


def test_readme_baseline_recipe(cli, tmp_path, monkeypatch):
    block = re.search(r"<!-- recipe:start -->\s*```sh\n(.*?)```", README.read_text(), re.S).group(1)
    commands = [ln for ln in block.splitlines() if ln.strip() and not ln.startswith("#")]
    assert [c.split()[:2] for c in commands] == [["bench", "run"], ["bench", "baseline"]]
    monkeypatch.chdir(tmp_path)  # the recipe's relative paths, as in a fresh checkout
    for command in commands:  # each command line as written (the console script's own path: test_bad_input)
        r = cli(*shlex.split(command)[1:])
        assert r.code == 0, (command, r.out[-2000:], r.err[-2000:])
    baseline = json.loads((tmp_path / "results/baselines/smoke.json").read_text())
    committed = json.loads((README.parent / "results/baselines/smoke.json").read_text())
    # the committed baseline is what the recipe makes: same experiment, seeds, identity and metrics
    assert (baseline["experiment"], baseline["seeds"], baseline["identity"]) == (
        committed["experiment"], committed["seeds"], committed["identity"])
    assert {o: sorted(m) for o, m in baseline["metrics"].items()} == {o: sorted(m) for o, m in committed["metrics"].items()}


def test_readme_ci_lines_are_the_example_workflows():
    import yaml

    text = README.read_text()
    section = text[text.index("Every CI job then trains afresh"):text.index("In GitHub Actions, copy")]
    lines = [ln.strip() for ln in section.splitlines() if ln.startswith("    bench ")]
    steps = next(iter(yaml.safe_load(WORKFLOW.read_text())["jobs"].values()))["steps"]
    runs = [s["run"] for s in steps if "run" in s]
    assert len(lines) == 2
    assert all(any(r.startswith(line) for r in runs) for line in lines), (lines, runs)
