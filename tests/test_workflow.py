"""The example GitHub Actions workflow: every `run:` line passes in a temporary checkout, as on a runner.

The install line runs for real, in a throwaway virtual environment that sees this one's packages (a .pth
file) and no package index, so it installs bench from the checkout and nothing else. GitHub's own actions
(checkout, setup-python, upload-artifact) are checked for what they need: the paths uploaded exist.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = pytest.mark.training  # every test here trains (make test-fast leaves them out)

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / "examples" / "github-actions.yml"
SKIP = {".venv", ".git", "results", "reports", ".pytest_cache", ".benchmarks", "__pycache__", ".ci-results",
        "tests", "benchmarks", "build", "bench.egg-info"}


def _steps() -> list[dict]:
    import yaml

    doc = yaml.safe_load(WORKFLOW.read_text())
    jobs = list(doc["jobs"].values())
    assert len(jobs) == 1
    return jobs[0]["steps"]


def _checkout(dest: Path) -> Path:
    """What actions/checkout gives: the project's files (with the committed baseline), no build outputs."""
    shutil.copytree(ROOT, dest, ignore=lambda d, names: [n for n in names if n in SKIP])
    (dest / "results" / "baselines").mkdir(parents=True)
    shutil.copy(ROOT / "results" / "baselines" / "smoke.json", dest / "results" / "baselines")
    return dest


def _venv(dest: Path) -> Path:
    """A fresh venv (what setup-python gives) that finds this environment's packages (pip among them) and no
    index."""
    subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", "--without-pip", str(dest)],
                   check=True, timeout=120)
    purelib = Path(subprocess.run([str(dest / "bin" / "python"), "-c", "import sysconfig; "
                                   "print(sysconfig.get_paths()['purelib'])"], check=True, capture_output=True,
                                  text=True).stdout.strip())
    (purelib / "outer.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return dest / "bin"


@pytest.mark.slow
def test_the_example_workflow_runs_and_passes(tmp_path):
    from junitparser import JUnitXml

    steps = _steps()
    runs = [s["run"] for s in steps if "run" in s]
    uses = [s["uses"].split("@")[0] for s in steps if "uses" in s]
    assert uses == ["actions/checkout", "actions/setup-python", "actions/upload-artifact"]
    assert any("pip install" in r for r in runs) and any("bench check" in r for r in runs)
    checkout = _checkout(tmp_path / "repo")
    bin_dir = _venv(tmp_path / "venv")
    summary = tmp_path / "step-summary.md"
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "GITHUB_ACTIONS": "true",
           "GITHUB_STEP_SUMMARY": str(summary), "PIP_NO_INDEX": "1",
           "PIP_NO_BUILD_ISOLATION": "0",  # (sic: pip reads this variable inverted) build with what is installed
           "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    for line in runs:
        r = subprocess.run(["bash", "-eo", "pipefail", "-c", line], cwd=checkout, env=env, capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 0, (line, r.stdout[-3000:], r.stderr[-3000:])
    # the bench that ran is the checkout's, installed by the workflow's own line
    where = subprocess.run([str(bin_dir / "python"), "-c", "import bench; print(bench.__file__)"], env=env,
                           cwd=tmp_path, capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).is_relative_to(checkout)
    # the uploaded paths exist; the JUnit file reads in a third-party consumer; the summary says it passed
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact"))
    for path in upload["with"]["path"].split():
        assert (checkout / path).exists(), path
    assert list((checkout / "ci-reports" / "smoke").glob("*/index.html"))
    xml = JUnitXml.fromfile(str(checkout / "ci-results" / "bench-check.xml"))
    cases = [case for suite in xml for case in suite]
    assert len(cases) > 20 and all(case.is_passed for case in cases)
    text = summary.read_text()
    assert text.startswith("### bench check") and f"passed: {len(cases)} of {len(cases)} trend metrics" in text


@pytest.fixture(scope="module")
def regressed(tmp_path_factory, golden):
    """The golden ``fast`` run (adam at 10x its learning rate) checked against a baseline of ``base``."""
    from bench.cli import main

    root = tmp_path_factory.mktemp("gha")
    assert main(["baseline", str(golden["base"]), "-o", str(root / "baseline.json")]) == 0
    return root


def test_regressions_become_annotations_a_markdown_summary_and_junit_failures(cli, golden, regressed,
                                                                                 monkeypatch):
    from junitparser import Failure, JUnitXml

    summary = regressed / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    r = cli("check", golden["fast"], "--baseline", regressed / "baseline.json", "--markdown", summary,
            "--junit", regressed / "check.xml", "--json", regressed / "check.json")
    assert r.code == 1
    import json

    failed = [row for row in json.loads((regressed / "check.json").read_text())["rows"]
              if row["verdict"] not in ("ok", "skipped")]
    assert failed
    errors = [ln for ln in r.out.splitlines() if ln.startswith("::error ")]
    assert len(errors) == len(failed)
    for line, row in zip(errors, failed, strict=True):
        assert line.startswith(f"::error title=bench check%3A {row['optimizer']} {row['metric']}::")
    text = summary.read_text()
    assert text.startswith("earlier step\n### bench check")  # appended: the job summary keeps earlier steps
    table = [ln for ln in text.splitlines() if ln.startswith("| ") and "---" not in ln][1:]
    assert [ln.split(" | ")[1] for ln in table] == [row["metric"] for row in failed]  # the regressions, first
    assert text.rstrip().splitlines()[-2 if text.rstrip().splitlines()[-1].startswith(">") else -1].startswith(
        "within band: ")
    xml = JUnitXml.fromfile(str(regressed / "check.xml"))
    failures = [c for suite in xml for c in suite if any(isinstance(x, Failure) for x in c.result)]
    assert sorted(c.name for c in failures) == sorted(row["metric"] for row in failed)
    # outside GitHub Actions: no annotations; a --markdown file of one's own is written whole
    monkeypatch.delenv("GITHUB_ACTIONS")
    own = regressed / "comment.md"
    r = cli("check", golden["fast"], "--baseline", regressed / "baseline.json", "--markdown", own)
    assert r.code == 1 and "::error" not in r.out and own.read_text().startswith("### bench check")
    # a summary file that cannot be written (its folder is gone): one line, exit 2
    gone = regressed / "gone" / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(gone))
    r = cli("check", golden["fast"], "--baseline", regressed / "baseline.json", "--markdown", gone)
    assert r.code == 2 and r.err.count("\n") == 1 and f"cannot write {gone}" in r.err, r.err
