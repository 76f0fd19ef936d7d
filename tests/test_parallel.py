"""--jobs N: same numbers as one at a time at the same thread count; dead workers retried or reported."""

from __future__ import annotations

import json

import pandas as pd
from conftest import only_run_dir, read_values

ARGS = ["run", "smoke", "--optimizers", "sgd,adam", "--seeds", "0,1", "--steps", "12", "--set", "train.sample_every=6",
        "--set", "train.checkpoint_every=6", "--quiet", "--no-report"]


def _values(run_dir):
    return {p.parent.name: read_values(p) for p in sorted(run_dir.glob("runs/*/metrics.csv"))}


def test_jobs_2_retries_a_dead_worker_reports_a_lost_one_and_equals_sequential(cli, tmp_path, monkeypatch):
    from faults import Die

    from bench.execute import hooks
    from bench.model.runtime import available_cores

    threads = max(1, available_cores() // 2)
    assert cli(*ARGS, "--threads", str(threads), "--out", tmp_path / "seq").code == 0
    # adam-seed1's worker dies once (retried from its checkpoint); sgd-seed0's dies every time (reported)
    once = tmp_path / "died-once"
    monkeypatch.setattr(hooks, "BEFORE_PAIR", [Die("adam-seed1", str(once)), Die("sgd-seed0")])
    r = cli(*ARGS, "--jobs", "2", "--out", tmp_path / "par")
    assert r.code == 1
    assert "1 run(s) failed: sgd-seed0 (worker process died (exit code 70))" in r.err and "bench run --resume" in r.err
    run_dir = only_run_dir(tmp_path / "par", "smoke")
    m = json.loads((run_dir / "manifest.json").read_text())
    assert m["status"] == "finished-with-failures" and m["runs"]["sgd-seed0"]["status"] == "failed"
    assert {m["runs"][n]["status"] for n in ("sgd-seed1", "adam-seed0", "adam-seed1")} == {"finished"}
    assert once.exists()  # its worker did die once ...
    assert len(pd.read_csv(run_dir / "runs/adam-seed1/metrics.csv")) == 12  # ... and the retry finished it
    assert not list(run_dir.rglob(".fault*"))  # the test's fault left nothing in the run folder
    # once the cause is gone, re-running the same command finishes the failed pair in the same folder
    monkeypatch.setattr(hooks, "BEFORE_PAIR", [])
    r = cli(*ARGS, "--jobs", "2", "--out", tmp_path / "par")
    assert r.code == 0, r.err
    assert only_run_dir(tmp_path / "par", "smoke") == run_dir
    m = json.loads((run_dir / "manifest.json").read_text())
    assert m["status"] == "finished" and m["machine"]["jobs"] == 2 and m["config"]["train"]["threads"] == threads
    # and every value, losses and quality scores, is what one pair at a time gives at that thread count
    seq_dir = only_run_dir(tmp_path / "seq", "smoke")
    seq, par = _values(seq_dir), _values(run_dir)
    assert set(seq) == set(par) == {"sgd-seed0", "sgd-seed1", "adam-seed0", "adam-seed1"}
    for name in seq:
        pd.testing.assert_frame_equal(seq[name], par[name], check_exact=True)
        qa = pd.read_csv(seq_dir / "runs" / name / "quality.csv").drop(columns="eval_seconds")
        qb = pd.read_csv(run_dir / "runs" / name / "quality.csv").drop(columns="eval_seconds")
        pd.testing.assert_frame_equal(qa, qb, check_exact=True)


def test_jobs_never_oversubscribe(cli, tmp_path):
    from bench.model.runtime import available_cores

    r = cli(*ARGS, "--jobs", "2", "--threads", str(available_cores()), "--out", tmp_path)
    assert r.code == 2 and "oversubscribe" in r.err


def test_the_last_pair_dying_for_good_ends_the_run(cli, tmp_path, monkeypatch):
    """The dead worker of the last pair, with nothing left to queue, must not keep the dispatcher waiting
    (it once spun forever on the dead worker's sentinel): bounded here by a thread."""
    import threading

    from faults import Die

    from bench.execute import hooks

    monkeypatch.setattr(hooks, "BEFORE_PAIR", [Die("sgd-seed0")])
    result = {}
    args = ["run", "smoke", "--optimizers", "sgd", "--seeds", "0", "--steps", "6", "--no-eval", "--quiet",
            "--no-report", "--jobs", "2", "--out", str(tmp_path)]
    t = threading.Thread(target=lambda: result.setdefault("r", cli(*args)), daemon=True)
    t.start()
    t.join(timeout=180)
    assert not t.is_alive(), "the run did not end after its only pair failed for good"
    assert result["r"].code == 1 and "1 run(s) failed: sgd-seed0" in result["r"].err
