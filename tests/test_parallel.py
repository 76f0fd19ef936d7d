"""--jobs N: same numbers as one at a time at the same thread count; dead workers retried or reported."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from conftest import only_run_dir, read_values

pytestmark = [pytest.mark.training,  # every test here trains (make test-fast leaves them out)
              pytest.mark.usefixtures("all_cores")]  # --jobs 2 on the whole machine, not on a test worker's share

ARGS = ["run", "smoke", "--optimizers", "sgd,adam", "--seeds", "0,1", "--steps", "12", "--set", "train.sample_every=6",
        "--set", "train.checkpoint_every=6", "--quiet", "--no-report"]


def _values(run_dir):
    return {p.parent.name: read_values(p) for p in sorted(run_dir.glob("runs/*/metrics.csv"))}


@pytest.mark.slow
def test_jobs_2_retries_a_dead_worker_reports_a_lost_one_and_equals_sequential(cli, tmp_path, monkeypatch):
    """Beside sgd, a user's class (OptimisticAdam from a file): the workers compile it from the source recorded in
    the configuration, so the file edited (broken, here, before every pair in the worker) while the run goes on
    changes nothing."""
    import shutil
    import threading
    from pathlib import Path

    from faults import Die, Overwrite

    from bench.execute import hooks
    from bench.model.runtime import available_cores

    source = tmp_path / "oadam.py"
    shutil.copy(Path(__file__).resolve().parent.parent / "examples/optimizers/oadam.py", source)
    args = [*ARGS]
    args[args.index("--optimizers") + 1] = f"sgd,{source}:OptimisticAdam:label=oadam,learning_rate=2e-3"
    threads = max(1, available_cores() // 2)
    assert cli(*args, "--threads", str(threads), "--out", tmp_path / "seq").code == 0
    # sgd-seed1's worker dies once (retried from its checkpoint); oadam-seed1's, the last pair, dies every time
    # (reported): with nothing left to queue, its dead worker must not keep the dispatcher waiting (it once spun
    # forever on the dead worker's sentinel), bounded here by a thread
    once = tmp_path / "died-once"
    text, broken = source.read_text(), "raise ImportError('the file was edited')\n"
    monkeypatch.setattr(hooks, "BEFORE_PAIR", [Die("sgd-seed1", str(once)), Die("oadam-seed1"),
                                               Overwrite(str(source), broken)])
    result = {}
    worker = threading.Thread(target=lambda: result.setdefault("r", cli(*args, "--jobs", "2", "--out", tmp_path / "par")),
                              daemon=True)
    worker.start()
    worker.join(timeout=240)
    assert not worker.is_alive(), "the run did not end after its last pair failed for good"
    r = result["r"]
    assert r.code == 1
    assert source.read_text() == broken  # the workers did edit it before their pairs
    assert "1 run(s) failed: oadam-seed1 (worker process died (exit code 70))" in r.err and "bench run --resume" in r.err
    run_dir = only_run_dir(tmp_path / "par", "smoke")
    m = json.loads((run_dir / "manifest.json").read_text())
    assert m["status"] == "finished-with-failures" and m["runs"]["oadam-seed1"]["status"] == "failed"
    assert {m["runs"][n]["status"] for n in ("sgd-seed0", "sgd-seed1", "oadam-seed0")} == {"finished"}
    assert once.exists()  # its worker did die once ...
    assert len(pd.read_csv(run_dir / "runs/sgd-seed1/metrics.csv")) == 12  # ... and the retry finished it
    assert not list(run_dir.rglob(".fault*"))  # the test's fault left nothing in the run folder
    # once the cause is gone, re-running the same command finishes the failed pair in the same folder
    monkeypatch.setattr(hooks, "BEFORE_PAIR", [])
    source.write_text(text)  # (the command resolves the class from its file again: the same code, the same run)
    r = cli(*args, "--jobs", "2", "--out", tmp_path / "par")
    assert r.code == 0, r.err
    assert only_run_dir(tmp_path / "par", "smoke") == run_dir
    m = json.loads((run_dir / "manifest.json").read_text())
    assert m["status"] == "finished" and m["machine"]["jobs"] == 2 and m["config"]["train"]["threads"] == threads
    # and every value, losses and quality scores, is what one pair at a time gives at that thread count
    seq_dir = only_run_dir(tmp_path / "seq", "smoke")
    seq, par = _values(seq_dir), _values(run_dir)
    assert set(seq) == set(par) == {f"{o}-seed{s}" for o in ("sgd", "oadam") for s in (0, 1)}
    for name in seq:
        pd.testing.assert_frame_equal(seq[name], par[name], check_exact=True)
        qa = pd.read_csv(seq_dir / "runs" / name / "quality.csv").drop(columns="eval_seconds")
        qb = pd.read_csv(run_dir / "runs" / name / "quality.csv").drop(columns="eval_seconds")
        pd.testing.assert_frame_equal(qa, qb, check_exact=True)


def test_jobs_never_oversubscribe(cli, tmp_path):
    from bench.model.runtime import available_cores

    r = cli(*ARGS, "--jobs", "2", "--threads", str(available_cores()), "--out", tmp_path)
    assert r.code == 2 and "oversubscribe" in r.err
