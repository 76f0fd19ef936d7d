"""The README's CI recipe runs exactly as written, and its CI run passes the committed smoke baseline."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_ci_recipe(cli, tmp_path, monkeypatch):
    block = re.search(r"<!-- recipe:start -->\s*```sh\n(.*?)```", README.read_text(), re.S).group(1)
    commands = [ln for ln in block.splitlines() if ln.strip() and not ln.startswith("#")]
    assert [c.split()[:2] for c in commands] == [["bench", "run"], ["bench", "baseline"], ["bench", "run"], ["bench", "check"]]
    monkeypatch.chdir(tmp_path)  # the recipe's relative paths, as in a fresh checkout's CI job
    for command in commands:  # each command line as written (the console script's own path: test_bad_input)
        r = cli(*shlex.split(command)[1:])
        assert r.code == 0, (command, r.out[-2000:], r.err[-2000:])
    assert (tmp_path / "results/baselines/smoke.json").exists()
    assert "<testsuites" in (tmp_path / "ci-results/bench-check.xml").read_text()
    # The project's own trend guard: the same fresh CI run, checked against the committed baseline
    # (results/baselines/smoke.json); a change that bends the smoke experiment's trends fails here.
    committed = README.parent / "results" / "baselines" / "smoke.json"
    r = cli("check", "ci-results/smoke", "--baseline", committed, "--failures-only", "--junit",
            "ci-results/committed-check.xml")
    assert r.code == 0, r.out[-3000:] + r.err[-2000:]
    assert "passed: all" in r.out
    assert os.path.samefile(Path.cwd(), tmp_path)
