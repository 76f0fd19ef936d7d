"""bench sweep: equal budgets, a declared criterion, best rerun against default, report; bad tables."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
from conftest import only_run_dir, whole_machine

from bench.core import config, sweep_table
from bench.core.errors import BenchError
from bench.orchestrate import sweep as SW
from bench.quality.scores import goals

# sgd and adam from bench/experiments/smoke.toml's [sweep], 2 settings each, 20 iterations, final seeds 0 and 1
SWEEP = ["sweep", "smoke", "--optimizers", "sgd,adam", "--steps", "20", "--seeds", "0,1", "--threads", "1",
         "--set", "sweep.budget=2", "--quiet"]


def smoke(**sweep_overrides) -> config.Experiment:
    raw = config.load_raw(config.experiment_path("smoke"))
    raw["sweep"].update(sweep_overrides)
    exp = config.experiment_from_dict(raw, "smoke")
    sweep_table.parse_sweep(exp, goals(), "smoke: sweep")  # as `bench run` checks the file's [sweep]
    return exp


def swd_final(run_dir, label, seed) -> float:
    q = pd.read_csv(run_dir / "runs" / f"{label}-seed{seed}" / "quality.csv")
    q = q[q.metric == "swd"]
    return float(q[q.step == q.step.max()].value.iloc[0])


# ------------------------------------------------------------------ search spaces


def test_random_search_gives_every_optimizer_the_same_budget_within_its_space():
    exp = smoke(budget=6)
    sw = sweep_table.parse_sweep(exp, goals(), selected=True)
    trials = SW.make_trials(exp, sw)
    for label in ("sgd", "rmsprop", "adam"):
        mine = [t for t in trials if t.optimizer == label]
        assert len(mine) == 6 and len({t.label for t in mine}) == 6
    for t in trials:
        lr = t.params["learning_rate"]
        dim = next(d for d in sw.space[t.optimizer] if d.key == "learning_rate")
        assert dim.low <= lr <= dim.high
    assert {t.params["momentum"] for t in trials if t.optimizer == "sgd"} <= {0.0, 0.5, 0.9}
    # a pure function of the table; one optimizer's space does not move another's draws
    assert SW.make_trials(exp, sw) == trials
    other = smoke(budget=6, space={**exp.sweep["space"], "sgd": {"learning_rate": {"log": [1e-4, 1e-3]}}})
    redrawn = SW.make_trials(other, sweep_table.parse_sweep(other, goals(), selected=True))
    assert [t for t in redrawn if t.optimizer == "adam"] == [t for t in trials if t.optimizer == "adam"]
    assert [t for t in redrawn if t.optimizer == "sgd"] != [t for t in trials if t.optimizer == "sgd"]


def test_log_draws_spread_over_decades():
    exp = smoke(budget=200)
    sw = sweep_table.parse_sweep(exp, goals(), selected=True)
    lrs = np.log10([t.params["learning_rate"] for t in SW.make_trials(exp, sw) if t.optimizer == "rmsprop"])
    # log-uniform on [1e-5, 1e-2]: about a third of the draws in each decade
    counts = np.histogram(lrs, bins=[-5, -4, -3, -2])[0]
    assert counts.min() > 40, counts


def test_grid_fills_the_budget_and_refuses_an_unequal_one():
    space = {"sgd": {"learning_rate": {"log": [1e-3, 1e-1]}, "momentum": [0.0, 0.5, 0.9]},
             "rmsprop": {"learning_rate": {"log": [1e-5, 1e-2]}},
             "adam": {"learning_rate": {"log": [1e-4, 1e-2], "points": 3}, "beta_1": [0.5, 0.9]}}
    exp = smoke(method="grid", budget=6, space=space)
    sw = sweep_table.parse_sweep(exp, goals(), selected=True)
    trials = SW.make_trials(exp, sw)
    sgd = [t.params for t in trials if t.optimizer == "sgd"]
    assert sorted({p["learning_rate"] for p in sgd}) == [0.001, 0.1]  # 6 / 3 momenta = 2 log points
    assert len(sgd) == 6 and len({tuple(p.values()) for p in sgd}) == 6
    assert sorted({t.params["learning_rate"] for t in trials if t.optimizer == "rmsprop"}) == \
        pytest.approx(np.geomspace(1e-5, 1e-2, 6), rel=1e-3)
    with pytest.raises(BenchError, match=r"3 x 2 = 6 settings but budget = 4"):
        smoke(method="grid", budget=4, space={**space, "sgd": space["rmsprop"], "rmsprop": space["rmsprop"]})


GOOD_SPACE = """
[sweep.space.sgd]
learning_rate = { log = [1e-3, 1e-1] }
"""


@pytest.mark.parametrize("table, message", [
    ("budgett = 3" + GOOD_SPACE, "unknown key 'budgett' (did you mean 'budget'?)"),
    ("budget = 0" + GOOD_SPACE, "sweep.budget: expected an integer >= 1"),
    ("budget = 2\ncriterion = 'swdd'" + GOOD_SPACE, "unknown criterion 'swdd.final' (did you mean 'swd.final'?)"),
    ("budget = 2\ncriterion = 'g_loss.final'" + GOOD_SPACE, "has no natural direction; say goal"),
    ("budget = 2\nmethod = 'bayes'" + GOOD_SPACE, "expected 'random' or 'grid'"),
    ("budget = 2\nsearch_seeds = [0, 0]" + GOOD_SPACE, "expected a list of distinct seeds"),
    ("budget = 2\n[sweep.space.sgd]\nlearning_rate = { log = [0, 1e-2] }", "need 0 < low < high"),
    ("budget = 2\n[sweep.space.sgd]\nlearning_rte = { log = [1e-5, 1e-2] }",
     "has no hyper-parameter 'learning_rte' (did you mean 'learning_rate'?)"),
    ("budget = 2\n[sweep.space.sgdd]\nlearning_rate = { log = [1e-5, 1e-2] }",
     "no optimizer 'sgdd' in the experiment (did you mean 'sgd'?)"),
    ("budget = 2\n[sweep.space.sgd]\nlearning_rate = { log = [1e-5, 1e-2], step = 2 }", "unknown key 'step'"),
    ("budget = 2\n[sweep.space.sgd]\nmomentum = []", "a list of choices must be non-empty"),
    ("budget = 3\nmethod = 'grid'\n[sweep.space.sgd]\nmomentum = [0.0, 0.5]", "the grid has 2 = 2 settings but budget = 3"),
])
def test_bad_sweep_tables_are_one_line_errors(cli, tmp_path, table, message):
    text = (config.experiment_path("smoke")).read_text()
    path = tmp_path / "bad.toml"
    path.write_text(text[: text.index("[sweep]")] + "[sweep]\n" + table + "\n")
    for command in ("sweep", "run"):  # a malformed [sweep] is caught by bench run as well
        r = cli(command, path, "--optimizers", "sgd", "--out", tmp_path / "results")
        assert r.code == 2, r.err
        assert message in r.err and len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err
    assert not (tmp_path / "results").exists()


def test_sweep_refuses_an_optimizer_without_a_space_and_a_quality_criterion_without_scoring(cli, tmp_path):
    r = cli("sweep", "smoke", "--optimizers", "sgd,nadam", "--out", tmp_path)
    assert r.code == 2 and "optimizer 'nadam' has no search space; add [sweep.space.nadam]" in r.err
    r = cli("sweep", "smoke", "--no-eval", "--out", tmp_path)
    assert r.code == 2 and "criterion swd needs the sample-quality metrics" in r.err
    r = cli("sweep", "quadratic2d", "--out", tmp_path)
    assert r.code == 2 and "has no [sweep] table" in r.err
    assert not any(tmp_path.iterdir())


# ------------------------------------------------------------------ a whole sweep


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    from bench.cli import main

    root = tmp_path_factory.mktemp("sweep")
    assert main([*SWEEP, "--out", str(root / "results"), "--no-report"]) == 0
    sweep_dir = next((root / "results" / "smoke").glob("sweep-*"))
    return root, sweep_dir


@pytest.mark.training
def test_sweep_picks_the_best_by_the_criterion_and_reruns_it_next_to_the_default(local_sweep):
    root, sweep_dir = local_sweep
    rec = json.loads((sweep_dir / "sweep.json").read_text())
    assert rec["status"] == "finished" and rec["sweep"]["criterion"] == "swd.final" and rec["sweep"]["goal"] == "min"
    search = sweep_dir / rec["phases"]["search"]
    final = sweep_dir / rec["phases"]["final"]
    # equal budgets: 2 settings each, trained for 20 iterations on the search seed only
    for label in ("sgd", "adam"):
        assert sum(t["optimizer"] == label for t in rec["trials"]) == 2
    sm = json.loads((search / "manifest.json").read_text())
    assert sm["seeds"] == [0] and sm["config"]["train"]["steps"] == 20 and len(sm["runs"]) == 4
    # the scores and the pick, recomputed from the search phase's quality.csv files
    for t in rec["trials"]:
        assert t["score"]["median"] == pytest.approx(swd_final(search, t["label"], 0), rel=1e-12)
    for label in ("sgd", "adam"):
        mine = [t for t in rec["trials"] if t["optimizer"] == label]
        best = min(mine, key=lambda t: swd_final(search, t["label"], 0))
        assert rec["best"][label]["trial"] == best["label"] and rec["best"][label]["params"] == best["params"]
    # final phase: default and tuned side by side on the final seeds, tuned = default + best params
    fm = json.loads((final / "manifest.json").read_text())
    assert fm["seeds"] == [0, 1] and list(fm["config"]["optimizers"]) == ["sgd", "sgd.tuned", "adam", "adam.tuned"]
    assert {r["status"] for r in fm["runs"].values()} == {"finished"} and len(fm["runs"]) == 8
    smoke_cfg = config.load_raw(config.experiment_path("smoke"))["optimizers"]
    for label in ("sgd", "adam"):
        assert fm["config"]["optimizers"][label] == {"type": label, **smoke_cfg[label]}
        assert fm["config"]["optimizers"][label + ".tuned"] == {"type": label, **smoke_cfg[label], **rec["best"][label]["params"]}
        for kind, run_label in (("default", label), ("tuned", label + ".tuned")):
            want = [swd_final(final, run_label, s) for s in (0, 1)]
            assert rec["final"][label][kind]["values"] == pytest.approx(want, rel=1e-12)
            assert rec["final"][label][kind]["median"] == pytest.approx(float(np.median(want)), rel=1e-12)


@pytest.mark.training
def test_sweep_report_shows_sensitivity_trials_and_tuned_versus_default(local_sweep, cli):
    root, sweep_dir = local_sweep
    rec = json.loads((sweep_dir / "sweep.json").read_text())
    r = cli("report", root / "results", "--out", root / "reports")  # finds the sweep below results/
    assert r.code == 0, r.err
    page = root / "reports" / "smoke" / sweep_dir.name / "index.html"
    html = page.read_text()
    assert 'alt="sensitivity of each optimizer to its hyper-parameters" src="data:image/png;base64,' in html
    for label in ("sgd", "adam"):
        row = re.search(rf'<tr data-optimizer="{re.escape(label)}">(.*?)</tr>', html, re.S).group(1)
        for kind in ("default", "tuned"):
            shown = float(re.search(rf'data-kind="{kind}" data-value="([^"]+)"', row).group(1))
            assert shown == pytest.approx(rec["final"][label][kind]["median"], rel=1e-12)
        assert f'data-trial="{rec["best"][label]["trial"]}" class="best"' in html
    for phase in ("search", "final"):  # the phases' own reports exist where the page links
        href = re.search(rf'id="{phase}-report" href="([^"]+)"', html).group(1)
        assert (page.parent / href).resolve().is_file()
    index = (root / "reports" / "index.html").read_text()
    assert sweep_dir.name in index


# ------------------------------------------------------------------ the Ray executor


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory, pytestconfig):
    """A real local Ray cluster with 2 CPUs, started the way a user starts one (``ray start --head``)."""
    import os
    import secrets
    import socket
    import subprocess
    import sys
    from pathlib import Path

    # token authentication, as Ray recommends: the cluster and the driver (bench, in this process) share the
    # token, which Ray reads when it is imported: set before the first import of ray
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32), "RAY_USAGE_STATS_ENABLED": "0"}
    saved = {k: os.environ.get(k) for k in auth}
    os.environ.update(auth)
    pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'gan-optimizer-bench[ray]' (make test installs it)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ray_cli = str(Path(sys.executable).parent / "ray")
    with whole_machine():  # the cluster's processes (and the workers it starts) on every core, not this worker's
        subprocess.run([ray_cli, "start", "--head", "--num-cpus", "2", "--port", str(port), "--node-ip-address",
                        "127.0.0.1", "--include-dashboard", "false", "--disable-usage-stats"], check=True,
                       capture_output=True, timeout=120)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        # stopped while the worker goes on with other tests (it takes seconds of waiting), and waited for before
        # the session ends: no Ray process outlives the tests
        stopping = subprocess.Popen([ray_cli, "stop", "--force"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pytestconfig.add_cleanup(lambda: stopping.wait(timeout=120))
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


@pytest.mark.training
@pytest.mark.slow
def test_ray_run_matches_local_retries_a_dead_worker_reports_a_lost_one_and_resumes(cli, ray_cluster, tmp_path,
                                                                                   monkeypatch):
    """A built-in and a user's optimizer (from a folder outside the checkout) as Ray tasks: every value as one
    pair at a time locally. The user's file is broken in the workers before every pair: the tasks train the
    source that travelled with them, never the file (no shared file system, no install on the nodes). The user's
    pair loses its worker every time: retried once, then reported; `--resume` under Ray finishes it. (Each Ray
    worker imports TensorFlow, so each death costs seconds: one pair dies, in both ways.)"""
    import shutil
    from pathlib import Path

    import faults
    import ray.cloudpickle

    from bench.execute import hooks

    address = ray_cluster
    ray.cloudpickle.register_pickle_by_value(faults)  # Ray's workers cannot import the tests' modules
    user = tmp_path / "mycode" / "oadam.py"
    user.parent.mkdir()
    shutil.copy(Path(__file__).resolve().parent.parent / "examples/optimizers/oadam.py", user)
    args = ["run", "smoke", "--optimizers", f"sgd,{user}:OptimisticAdam:label=oadam,learning_rate=2e-3",
            "--seeds", "0", "--steps", "12", "--threads", "1",
            "--set", "train.sample_every=6", "--set", "train.checkpoint_every=6", "--quiet", "--no-report"]
    assert cli(*args, "--out", tmp_path / "local").code == 0
    original = user.read_text()
    broken = faults.Overwrite(str(user), "raise ImportError('edited')\n")
    monkeypatch.setattr(hooks, "BEFORE_PAIR", [broken, faults.Die("oadam-seed0")])
    r = cli(*args, "--executor", "ray", "--address", address, "--out", tmp_path / "ray")
    assert r.code == 1, r.err
    assert "retrying from its last checkpoint" not in r.err  # quiet
    assert "1 run(s) failed: oadam-seed0 (Ray worker process died)" in r.err and "bench run --resume" in r.err
    assert user.read_text() != original  # the hooks ran in the workers
    ray_dir = only_run_dir(tmp_path / "ray", "smoke")
    m = json.loads((ray_dir / "manifest.json").read_text())
    assert m["status"] == "finished-with-failures" and m["runs"]["sgd-seed0"]["status"] == "finished"
    assert m["runs"]["oadam-seed0"]["status"] != "finished"
    user.write_text(original)  # a resume reads the file again: it must be the code the run started with
    monkeypatch.setattr(hooks, "BEFORE_PAIR", [broken])  # ... and its task trains the text it was sent
    r = cli("run", "--resume", ray_dir, "--executor", "ray", "--address", address, "--quiet", "--no-report")
    assert r.code == 0, r.err
    local_dir = only_run_dir(tmp_path / "local", "smoke")
    names = sorted(p.parent.name for p in local_dir.glob("runs/*/metrics.csv"))
    assert names == sorted(p.parent.name for p in ray_dir.glob("runs/*/metrics.csv")) and len(names) == 2
    for name in names:
        for csv, timing in (("metrics.csv", ["step_seconds", "elapsed_seconds"]), ("quality.csv", ["eval_seconds"])):
            a = pd.read_csv(local_dir / "runs" / name / csv).drop(columns=timing)
            b = pd.read_csv(ray_dir / "runs" / name / csv).drop(columns=timing)
            pd.testing.assert_frame_equal(a, b, check_exact=True)
    m = json.loads((ray_dir / "manifest.json").read_text())
    assert m["machine"]["executor"] == f"ray ({address})" and m["status"] == "finished"
    assert not list(ray_dir.rglob(".fault*"))


def test_ray_executor_errors_are_one_line_and_leave_nothing(cli, tmp_path, monkeypatch):
    import sys

    r = cli("run", "smoke", "--executor", "ray", "--address", "127.0.0.1:1", "--out", tmp_path)
    assert r.code == 2 and "cannot reach the Ray cluster at 127.0.0.1:1" in r.err
    r = cli("run", "smoke", "--address", "127.0.0.1:1", "--out", tmp_path)
    assert r.code == 2 and "--address is for --executor ray" in r.err
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    r = cli("run", "smoke", "--executor", "ray", "--out", tmp_path)
    assert r.code == 2 and "pip install 'gan-optimizer-bench[ray]'" in r.err
    assert not any(tmp_path.iterdir())


def test_trial_scores_treat_divergence_as_worst():
    assert SW.pick_best([SW.Trial("a", 0, {}), SW.Trial("a", 1, {})],
                        {"a.t00": {"median": math.inf}, "a.t01": {"median": 5.0}}, "min")["a"].index == 1
    assert SW.pick_best([SW.Trial("a", 0, {}), SW.Trial("a", 1, {})],
                        {"a.t00": {"median": -math.inf}, "a.t01": {"median": 0.1}}, "max")["a"].index == 1
