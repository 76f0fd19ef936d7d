"""Interrupted runs resume exactly; a diverging optimizer does not stop the others."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import only_run_dir, read_values
from tbread import assert_scalars_equal_csv, scalars

RUN = ["run", "smoke", "--optimizers", "adam", "--seeds", "0", "--steps", "160",
       "--set", "train.checkpoint_every=25", "--quiet", "--no-report"]  # (reports: tests/test_report.py)


def _rows(csv: Path) -> int:
    try:
        return max(0, len(csv.read_text().splitlines()) - 1)
    except FileNotFoundError:
        return 0


@pytest.mark.training
def test_sigkill_then_resume_matches_uninterrupted_run(cli, tmp_path):
    """kill -9 at a random step, then --resume: every value, checkpoint, sample and event of the uninterrupted
    run. The optimizer is a user's class (OptimisticAdam, whose last direction is state of its own): its state is
    in the checkpoint too, and its source edited before the resume is refused, naming both hashes."""
    source = tmp_path / "oadam.py"
    shutil.copy(Path(__file__).resolve().parent.parent / "examples/optimizers/oadam.py", source)
    run = ["run", "smoke", "--optimizers", f"{source}:OptimisticAdam:label=oadam,learning_rate=2e-3", *RUN[4:]]
    # reference: one uninterrupted run
    assert cli(*run, "--out", tmp_path / "ref").code == 0
    ref_dir = only_run_dir(tmp_path / "ref", "smoke")

    # killed at a random step past the first checkpoint
    kill_at = random.Random().randint(30, 140)
    exe = Path(sys.executable).with_name("bench")
    proc = subprocess.Popen([str(exe), *run, "--out", str(tmp_path / "killed")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    csv = None
    while time.time() < deadline and proc.poll() is None:
        dirs = list((tmp_path / "killed" / "smoke").glob("*/runs/oadam-seed0/metrics.csv"))
        if dirs and _rows(dirs[0]) >= kill_at:
            csv = dirs[0]
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_dir = only_run_dir(tmp_path / "killed", "smoke")
    assert _rows(csv) < 160
    assert json.loads((killed_dir / "manifest.json").read_text())["status"] == "running"

    text = source.read_text()
    source.write_text(text.replace("2 * direction - u", "3 * direction - u"))
    r = cli("run", "--resume", killed_dir, "--quiet")
    assert r.code == 2 and "oadam.py changed since the run started (SHA-256" in r.err and "then," in r.err
    source.write_text(text)
    r = cli("run", "--resume", killed_dir, "--quiet", "--no-report")
    assert r.code == 0, r.err
    a = read_values(ref_dir / "runs/oadam-seed0/metrics.csv")
    b = read_values(killed_dir / "runs/oadam-seed0/metrics.csv")
    assert b.step.tolist() == list(range(1, 161))  # nothing lost, nothing repeated
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    final = "runs/oadam-seed0/checkpoint-000000160.npz"
    with np.load(ref_dir / final) as x, np.load(killed_dir / final) as y:
        assert x.files == y.files and json.loads(str(x["meta"]))["step"] == 160
        for k in x.files:
            if k != "meta":  # (the meta holds timings)
                np.testing.assert_array_equal(x[k], y[k])
    m = json.loads((killed_dir / "manifest.json").read_text())
    assert m["status"] == "finished" and m["runs"]["oadam-seed0"]["resumed_from"] > 0
    np.testing.assert_array_equal(np.load(ref_dir / "runs/oadam-seed0/samples/step_000160.npy"),
                                  np.load(killed_dir / "runs/oadam-seed0/samples/step_000160.npy"))
    # the TensorBoard events were rewritten from the kept rows, then appended: each point once, none lost
    assert_scalars_equal_csv(killed_dir / "runs/oadam-seed0")
    ref_events, events = scalars(ref_dir / "runs/oadam-seed0"), scalars(killed_dir / "runs/oadam-seed0")
    for tag in ref_events:
        if not tag.startswith("time/"):
            pd.testing.assert_frame_equal(ref_events[tag], events[tag], check_exact=True)


@pytest.mark.training
def test_rerunning_the_same_command_resumes_and_skips_finished_runs(cli, tmp_path):
    from bench.store.files import atomic_write_json

    args = ["run", "smoke", "--optimizers", "sgd,adam", "--seeds", "0", "--steps", "16", "--quiet", "--no-report",
            "--out", tmp_path]
    assert cli(*args).code == 0
    run_dir = only_run_dir(tmp_path, "smoke")
    # simulate a crash during adam: its status says running and its CSV lost its tail
    m = json.loads((run_dir / "manifest.json").read_text())
    m["status"] = "running"
    del m["runs"]["adam-seed0"]
    atomic_write_json(run_dir / "manifest.json", m)
    status = json.loads((run_dir / "runs/adam-seed0/status.json").read_text())
    atomic_write_json(run_dir / "runs/adam-seed0/status.json", {**status, "status": "running"})
    sgd_csv = (run_dir / "runs/sgd-seed0/metrics.csv").read_bytes()
    before = read_values(run_dir / "runs/adam-seed0/metrics.csv")

    r = cli(*args)
    assert r.code == 0 and "resuming" in r.err
    assert only_run_dir(tmp_path, "smoke") == run_dir  # no second folder
    assert (run_dir / "runs/sgd-seed0/metrics.csv").read_bytes() == sgd_csv  # finished run not redone
    pd.testing.assert_frame_equal(before, read_values(run_dir / "runs/adam-seed0/metrics.csv"), check_exact=True)
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "finished"

    assert cli(*args, "--fresh").code == 0
    assert len(list((tmp_path / "smoke").iterdir())) == 2


@pytest.mark.training
def test_divergence_is_contained_and_recorded(cli, tmp_path):
    r = cli("run", "smoke", "--optimizers", "sgd:learning_rate=1e12,adam", "--seeds", "0", "--steps", "40",
            "--quiet", "--no-report", "--out", tmp_path)  # (a diverged run's report: tests/test_report.py)
    assert r.code == 0, r.err
    assert "sgd seed 0 diverged at step" in r.err
    run_dir = only_run_dir(tmp_path, "smoke")
    m = json.loads((run_dir / "manifest.json").read_text())
    assert m["status"] == "finished-with-divergence"
    sgd = m["runs"]["sgd-seed0"]
    assert sgd["status"] == "diverged" and 1 <= sgd["diverged_at"] < 40
    df = pd.read_csv(run_dir / "runs/sgd-seed0/metrics.csv")
    assert df.step.iloc[-1] == sgd["diverged_at"] and df.status.iloc[-1] == "diverged"
    assert (df.status.iloc[:-1] == "ok").all()
    assert not np.isfinite(df[["d_loss_real", "d_loss_fake", "g_loss"]].iloc[-1]).all()
    assert m["runs"]["adam-seed0"]["status"] == "finished"
    assert len(pd.read_csv(run_dir / "runs/adam-seed0/metrics.csv")) == 40


def test_second_writer_on_a_run_folder_is_refused(cli, tmp_path, golden):
    import fcntl
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(golden["base"], run_dir)
    before = (run_dir / "runs/adam-seed0/metrics.csv").read_bytes()
    with open(run_dir / ".lock", "a+") as f:  # what a live bench process holds (flock: per open file, also in-process)
        fcntl.flock(f, fcntl.LOCK_EX)
        r = cli("run", "--resume", run_dir, "--quiet")
    assert r.code == 2 and r.err.count("\n") == 1 and "being written by another bench process" in r.err
    assert (run_dir / "runs/adam-seed0/metrics.csv").read_bytes() == before
    assert not Path("reports").exists()  # not even a report of the folder (one was written before the refusal)
