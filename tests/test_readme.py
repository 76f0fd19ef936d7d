"""The README's CI recipe runs exactly as written, and its CI run passes the committed smoke baseline."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_ci_recipe(tmp_path):
    block = re.search(r"<!-- recipe:start -->\s*```sh\n(.*?)```", README.read_text(), re.S).group(1)
    commands = [ln for ln in block.splitlines() if ln.strip() and not ln.startswith("#")]
    assert [c.split()[:2] for c in commands] == [["bench", "run"], ["bench", "baseline"], ["bench", "run"], ["bench", "check"]]
    exe = Path(sys.executable).with_name("bench")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    for command in commands:
        argv = shlex.split(command)
        r = subprocess.run([str(exe), *argv[1:]], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600)
        assert r.returncode == 0, (command, r.stdout[-2000:], r.stderr[-2000:])
    assert (tmp_path / "results/baselines/smoke.json").exists()
    assert "<testsuites" in (tmp_path / "ci-results/bench-check.xml").read_text()
    # The project's own trend guard: the same fresh CI run, checked against the committed baseline
    # (results/baselines/smoke.json); a change that bends the smoke experiment's trends fails here.
    committed = README.parent / "results" / "baselines" / "smoke.json"
    r = subprocess.run([str(exe), "check", "ci-results/smoke", "--baseline", str(committed), "--failures-only",
                        "--junit", "ci-results/committed-check.xml"], cwd=tmp_path, capture_output=True, text=True,
                       env=env, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "passed: all" in r.stdout
