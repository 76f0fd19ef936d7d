"""Hostile-but-realistic states: traversal, torn and corrupt files, foreign checkpoints, temp files,
colliding run ids, diverged baselines, internal errors. Each ends in identical values, or exit 2 naming
the file, or a clearly marked state; never an internal error, a silent gap or a write outside the folders."""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import only_run_dir, read_values
from fakeruns import make_run

from bench.core.errors import BenchError

TINY = ["run", "smoke", "--optimizers", "adam", "--seeds", "0", "--steps", "12", "--set", "train.checkpoint_every=4",
        "--set", "train.sample_every=4", "--no-report", "--quiet"]


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """The same pair without quality scores: what the byte-by-byte sweep resumes hundreds of times."""
    from bench.cli import main

    out = tmp_path_factory.mktemp("plain")
    assert main([*TINY, "--no-eval", "--no-tensorboard", "--out", str(out)]) == 0  # (neither is under test)
    return only_run_dir(out, "smoke")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One finished 12-iteration pair with quality scores, checkpoints at 4, 8 and 12 (the newest two kept)."""
    from bench.cli import main

    out = tmp_path_factory.mktemp("reference")
    assert main([*TINY, "--out", str(out)]) == 0
    return only_run_dir(out, "smoke")


def _copy(reference: Path, dest: Path) -> Path:
    shutil.copytree(reference, dest)
    return dest


def _same_values(a: Path, b: Path) -> None:
    pair = "runs/adam-seed0"
    pd.testing.assert_frame_equal(read_values(a / pair / "metrics.csv"), read_values(b / pair / "metrics.csv"),
                                  check_exact=True)
    if (a / pair / "quality.csv").exists():
        qa, qb = (pd.read_csv(d / pair / "quality.csv").drop(columns="eval_seconds") for d in (a, b))
        pd.testing.assert_frame_equal(qa, qb, check_exact=True)


# ------------------------------------------------------------------ names that would become paths


@pytest.mark.parametrize("name", ["../../../escaped", "ABS", "a/b", ".."])
def test_a_traversal_attempt_writes_nothing_anywhere(cli, tmp_path, name):
    out = tmp_path / "l1" / "l2" / "l3" / "l4" / "out"  # ../../../x from out/ still lands inside tmp_path
    reports = tmp_path / "l1" / "reports"
    out.mkdir(parents=True)
    absolute = tmp_path / "abs-target"
    name = str(absolute) if name == "ABS" else name
    before = _tree(tmp_path)
    r = cli("run", "smoke", "--set", f"name={name}", "--steps", "2", "--quiet", "--out", out, "--reports", reports)
    assert r.code == 2 and "plain name" in r.err and len(r.err.strip().splitlines()) == 1
    assert _tree(tmp_path) == before and not absolute.exists()


# ------------------------------------------------------------------ torn and corrupt files


@pytest.mark.training
def test_torn_metrics_at_every_byte_of_the_last_row_is_recomputed_exactly(plain, tmp_path, capsys):
    """Truncated anywhere in its last row (every field and separator), a finished pair's log is found damaged
    and recomputed from the checkpoint before the damage: every resume gives the uninterrupted values, nothing
    else. (Rows further back, and the checkpoint's own row, are damaged by the CLI tests below.)"""
    from bench.core.config import experiment_from_dict
    from bench.data import load
    from bench.execute.pair import PairRun
    from bench.model.runtime import configure_runtime
    from bench.quality.scorer import make_evaluator

    reference = plain
    work = _copy(reference, tmp_path / "work")
    csv = work / "runs/adam-seed0/metrics.csv"
    whole = csv.read_bytes()
    start = len(whole) - sum(len(line) + 1 for line in whole.split(b"\n")[-2:-1])
    exp = experiment_from_dict(json.loads((work / "manifest.json").read_text())["config"], "manifest")
    configure_runtime(exp.train.threads)
    images = load(exp.data).images
    evaluator = make_evaluator(exp, images)
    outcomes = set()
    for offset in range(start, len(whole)):
        csv.write_bytes(whole[:offset])
        record = PairRun(exp, "adam", 0, images, work, evaluator).run()
        assert record["status"] == "finished" and record["resumed_from"] in (4, 8), offset
        assert read_values(csv).equals(read_values(reference / "runs/adam-seed0/metrics.csv")), offset
        outcomes.add(record["resumed_from"])
    _same_values(reference, work)
    assert outcomes == {8}  # row 12 damaged: the checkpoint at 8 (4 was pruned) is before the damage
    err = capsys.readouterr().err
    assert err.count("recomputing from checkpoint-000000008.npz") == len(whole) - start


@pytest.mark.training
@pytest.mark.parametrize("where", ["torn row at the checkpoint", "NUL bytes before it", "missing rows", "quality torn"])
def test_damaged_logs_through_the_cli_are_repaired_and_said(cli, reference, tmp_path, where):
    work = _copy(reference, tmp_path / "w")
    pair = work / "runs/adam-seed0"
    lines = (pair / "metrics.csv").read_bytes().split(b"\n")
    if where == "torn row at the checkpoint":  # power loss: the row of iteration 8, the checkpoint's, cut short
        (pair / "metrics.csv").write_bytes(b"\n".join(lines[:8]) + b"\n" + lines[8][:40])
    elif where == "NUL bytes before it":  # a filesystem's zero-filled block inside the file
        lines[5] = b"\x00" * len(lines[5])
        (pair / "metrics.csv").write_bytes(b"\n".join(lines))
    elif where == "missing rows":
        (pair / "metrics.csv").write_bytes(b"\n".join(lines[:7] + [b""]))
    else:
        q = (pair / "quality.csv").read_bytes()
        (pair / "quality.csv").write_bytes(q[: len(q) // 2])
    r = cli("run", "--resume", work, "--quiet", "--no-report")
    assert r.code == 0, r.err
    said = [ln for ln in r.err.splitlines() if ln.startswith("! adam seed 0:")]
    assert len(said) == 1 and "recomputing from" in said[0], r.err
    _same_values(reference, work)


@pytest.mark.training
def test_a_truncated_newest_checkpoint_falls_back_to_the_previous_one(cli, reference, tmp_path):
    """An interrupted pair (checkpoints at 4 and 8, rows up to 10) whose newest checkpoint was cut short at
    ~20 offsets: each resume says so in one line, continues from the previous checkpoint, and gives the
    uninterrupted values."""
    base = _copy(reference, tmp_path / "base")
    pair = base / "runs/adam-seed0"
    (pair / "checkpoint-000000012.npz").unlink()
    shutil.copy(pair / "checkpoint-000000008.npz", pair / "checkpoint-000000008.npz.bak")
    lines = (pair / "metrics.csv").read_bytes().split(b"\n")
    (pair / "metrics.csv").write_bytes(b"\n".join(lines[:11]) + b"\n")  # killed after iteration 10
    status = json.loads((pair / "status.json").read_text())
    (pair / "status.json").write_text(json.dumps({**status, "status": "running", "steps_done": 8}))
    # the interrupted pair needs its checkpoint at 4 too: recompute it from a fresh run of 4 iterations
    from bench.cli import main

    assert main([*TINY[:-6], "--steps", "4", "--set", "train.checkpoint_every=4", "--set", "train.sample_every=4",
                 "--no-report", "--quiet", "--out", str(tmp_path / "four")]) == 0
    four = only_run_dir(tmp_path / "four", "smoke") / "runs/adam-seed0/checkpoint-000000004.npz"
    shutil.copy(four, pair / "checkpoint-000000004.npz")
    size = (pair / "checkpoint-000000008.npz").stat().st_size
    for i, cut in enumerate(sorted({int(size * k / 20) for k in range(20)})):
        work = _copy(base, tmp_path / f"c{i}")
        newest = work / "runs/adam-seed0/checkpoint-000000008.npz"
        newest.write_bytes(newest.read_bytes()[:cut])
        r = cli("run", "--resume", work, "--quiet", "--no-report")
        assert r.code == 0, (cut, r.err)
        said = [ln for ln in r.err.splitlines() if ln.startswith("! adam seed 0:")]
        assert len(said) == 1 and "checkpoint-000000008.npz is unreadable" in said[0], r.err
        assert "checkpoint-000000004.npz" in said[0]
        _same_values(reference, work)


@pytest.mark.training
def test_a_checkpoint_of_another_optimizer_or_experiment_is_refused(cli, reference, tmp_path):
    work = _copy(reference, tmp_path / "w")
    m = json.loads((work / "manifest.json").read_text())
    pair = work / "runs/adam-seed0"
    status = json.loads((pair / "status.json").read_text())
    (pair / "status.json").write_text(json.dumps({**status, "status": "running"}))
    # the same files under another optimizer's name: its checkpoints say adam
    other = work / "runs/sgd-seed0"
    shutil.copytree(pair, other)
    m["config"]["optimizers"] = {"sgd": {"type": "sgd", "learning_rate": 0.01, "momentum": 0.5}}
    (work / "manifest.json").write_text(json.dumps(m))
    shutil.rmtree(pair)
    before = {p: p.read_bytes() for p in other.rglob("*") if p.is_file()}
    r = cli("run", "--resume", work, "--quiet", "--no-report")
    assert r.code == 2, r.err
    assert "checkpoint-000000012.npz: a checkpoint of optimizer 'adam', but this pair is optimizer 'sgd'" in r.err
    assert len(r.err.strip().splitlines()) == 1
    assert {p: p.read_bytes() for p in other.rglob("*") if p.is_file() and p.name != "status.json"} == \
        {p: b for p, b in before.items() if p.name != "status.json"}


@pytest.mark.training
def test_temp_files_of_killed_writers_are_removed_and_a_full_disk_leaves_none(cli, reference, tmp_path):
    from bench.store.files import atomic_write

    work = _copy(reference, tmp_path / "w")
    stale = [work / "runs/adam-seed0/.checkpoint-000000012.npz.99999.tmp", work / ".manifest.json.12345.tmp",
             work / "runs/adam-seed0/samples/.step_000012.png.4242.tmp"]
    for p in stale:
        p.write_bytes(b"x" * 1000)
    r = cli("run", "--resume", work, "--quiet", "--no-report")
    assert r.code == 0 and not any(p.exists() for p in stale)
    assert not [p for p in work.rglob("*.tmp")]

    def fill(f):
        f.write(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    target = tmp_path / "checkpoint.npz"
    with pytest.raises(BenchError, match="disk full while writing"):
        atomic_write(target, fill)
    assert list(tmp_path.glob(".*tmp")) == [] and not target.exists()


@pytest.mark.training
def test_runs_started_in_the_same_second_keep_both_reports(cli, tmp_path, monkeypatch):
    import time as time_module

    from bench.store import layout

    frozen = type("Clock", (), {"strftime": staticmethod(lambda fmt: time_module.strftime(fmt, (2026, 1, 2, 3, 4, 5,
                                                                                                 0, 0, 0)))})
    monkeypatch.setattr(layout, "time", frozen)  # both runs start in the same second
    args = ["run", "smoke", "--optimizers", "adam", "--seeds", "0", "--steps", "2", "--no-eval", "--quiet",
            "--reports", tmp_path / "reports"]
    assert cli(*args, "--out", tmp_path / "a").code == 0
    assert cli(*args, "--out", tmp_path / "b").code == 0
    ids = sorted(p.name for p in (tmp_path / "reports" / "smoke").iterdir())
    assert ids == ["20260102-030405", "20260102-030405-1"]
    assert only_run_dir(tmp_path / "b", "smoke").name == "20260102-030405-1"
    index = (tmp_path / "reports/index.html").read_text()
    assert index.count('href="smoke/20260102-030405') == 2
    # a report of another results folder's run with the same id (made with --no-report) does not collide
    from bench.report.run import build_report

    other = make_run(tmp_path / "c", experiment="smoke", run_id="20260102-030405")
    page = build_report(other, tmp_path / "reports")
    assert page.parent.name == "20260102-030405-2"
    assert (tmp_path / "reports/smoke/20260102-030405/index.html").exists()


@pytest.mark.training
def test_a_baseline_of_diverged_seeds_is_strict_json_and_its_gaps_are_listed(cli, tmp_path):
    run = make_run(tmp_path / "r", optimizers=("sgd", "adam"), seeds=(0, 1), diverge={("sgd", 0): 3, ("sgd", 1): 2},
                   state="finished-with-divergence")
    assert cli("baseline", run, "-o", tmp_path / "b.json").code == 0
    text = (tmp_path / "b.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert json.loads(text)["metrics"]["sgd"]["diverged"] == {"count": 2, "of": 2}
    r = cli("check", run, "--baseline", tmp_path / "b.json", "--json", tmp_path / "r.json", "--junit", tmp_path / "r.xml")
    assert "passed: all" not in r.out
    skipped = [row for row in json.loads((tmp_path / "r.json").read_text())["rows"] if row["verdict"] == "skipped"]
    assert skipped and {row["optimizer"] for row in skipped} == {"sgd"}
    assert f"skipped: {len(skipped)} trend metrics have no baseline value" in r.out
    assert r.code == 0 and f"({len(skipped)} skipped)" in r.out
    import xml.etree.ElementTree as ET

    assert len(ET.parse(tmp_path / "r.xml").getroot().findall(".//testcase/skipped")) == len(skipped)


@pytest.mark.training
def test_an_exception_in_a_pair_fails_that_pair_and_the_others_go_on(cli, tmp_path, monkeypatch):
    """Whatever ends a pair (a user's update step, a bug in bench's own per-pair code) is that pair's failure,
    recorded with the error; the other pairs train; the command says how to retry (exit 1)."""
    from bench.execute.pair import PairRun

    real = PairRun.on_sample

    def broken(self, step):
        if self.label == "adam":
            raise ZeroDivisionError("a bug")
        return real(self, step)

    monkeypatch.setattr(PairRun, "on_sample", broken)
    r = cli("run", "smoke", "--optimizers", "adam,sgd", "--seeds", "0", "--steps", "3", "--quiet", "--no-report",
            "--out", tmp_path)
    assert r.code == 1
    run_dir = only_run_dir(tmp_path, "smoke")
    assert r.err.strip().splitlines() == [
        "! adam seed 0 failed: ZeroDivisionError: a bug; the other runs go on",
        f"bench: error: 1 run(s) failed: adam-seed0 (ZeroDivisionError: a bug); retry them with: bench run --resume {run_dir}"]
    m = json.loads((run_dir / "manifest.json").read_text())
    assert m["status"] == "finished-with-failures" and m["runs"]["sgd-seed0"]["status"] == "finished"
    st = json.loads((run_dir / "runs/adam-seed0/status.json").read_text())
    assert st["status"] == "failed" and st["error"] == "ZeroDivisionError: a bug"


@pytest.mark.training
def test_an_internal_error_is_one_line_and_marks_the_folder_failed(cli, tmp_path, monkeypatch):
    from bench.orchestrate import run as R

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(R, "_dispatch", broken)  # bench's own code between the pairs
    r = cli("run", "smoke", "--optimizers", "adam", "--seeds", "0", "--steps", "3", "--quiet", "--no-report",
            "--out", tmp_path)
    assert r.code == 1
    assert r.err.strip().splitlines() == ["bench: internal error: ZeroDivisionError: a bug "
                                          "(rerun with --debug for the traceback)"]
    m = json.loads((only_run_dir(tmp_path, "smoke") / "manifest.json").read_text())
    assert m["status"] == "failed" and m["error"] == "ZeroDivisionError: a bug"


@pytest.mark.training
def test_sigterm_finishes_the_block_checkpoints_and_says_how_to_resume(cli, tmp_path):
    """What SLURM, Kubernetes and `timeout` send: handled like Ctrl-C, exit 143; a billion iterations are
    accepted, with their estimated duration said up front."""
    out = tmp_path / "out"
    before = signal.getsignal(signal.SIGTERM)  # another library in this process (Ray) may have set one

    def terminate_when_running():
        deadline = time.time() + 120
        while time.time() < deadline:
            csv = list(out.glob("smoke/*/runs/adam-seed0/metrics.csv"))
            if csv and csv[0].stat().st_size > 5000:
                break
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    killer = threading.Thread(target=terminate_when_running, daemon=True)
    killer.start()
    r = cli("run", "smoke", "--optimizers", "adam", "--seeds", "0", "--steps", "1000000000", "--no-eval", "--quiet",
            "--no-report", "--out", out)
    killer.join()
    assert r.code == 143, r.err
    assert "1,000,000,000 iterations will take about" in r.err
    run_dir = only_run_dir(out, "smoke")
    assert f"interrupted; continue with: bench run --resume {run_dir}" in r.err.strip().splitlines()[-1]
    st = json.loads((run_dir / "runs/adam-seed0/status.json").read_text())
    rows = pd.read_csv(run_dir / "runs/adam-seed0/metrics.csv")
    assert st["status"] == "interrupted" and st["steps_done"] == rows.step.max()  # checkpointed where it stopped
    assert (run_dir / f"runs/adam-seed0/checkpoint-{st['steps_done']:09d}.npz").exists()
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "interrupted"
    assert signal.getsignal(signal.SIGTERM) is before  # bench's handler is gone with the run


def test_strict_json_everywhere(tmp_path):
    from bench.store.files import atomic_write_json

    atomic_write_json(tmp_path / "x.json", {"a": math.nan, "b": [math.inf, -math.inf, 1.5], "c": {"d": math.nan}})
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": None, "b": [None, None, 1.5], "c": {"d": None}}
