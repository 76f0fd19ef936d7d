"""`bench run` end to end: files written, determinism, paired design, optimizers by name."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import only_run_dir, read_values

from bench.store.logs import CSV_COLUMNS

RUN = ["run", "smoke", "--seeds", "0,1", "--steps", "20", "--no-eval", "--quiet", "--no-report"]
PAIRS = [f"{o}-seed{s}" for o in ("sgd", "rmsprop", "adam") for s in (0, 1)]


@pytest.fixture(scope="module")
def run3(tmp_path_factory):
    """The smoke experiment's three optimizers on seeds 0 and 1: each optimizer's trainer is built fresh for
    seed 0 and reseeded for seed 1 (bench.model.step.trainer_for)."""
    from bench.cli import main

    out = tmp_path_factory.mktemp("run3")
    assert main([*RUN, "--out", str(out)]) == 0
    return only_run_dir(out, "smoke")


@pytest.mark.training
def test_run_writes_manifest_csv_and_samples(run3):
    m = json.loads((run3 / "manifest.json").read_text())
    assert m["status"] == "finished" and m["seeds"] == [0, 1] and set(m["runs"]) == set(PAIRS)
    assert m["config"]["train"]["steps"] == 20
    assert m["optimizers"]["sgd"]["generator"]["learning_rate"] == 0.01
    assert m["optimizers"]["sgd"]["discriminator"]["momentum"] == 0.5
    assert m["data"]["images"] == 100 and len(m["data"]["sha256"]) == 64
    assert m["machine"]["intra_op_threads"] >= 1 and m["machine"]["jit_compile"] is False
    assert m["versions"]["tensorflow"].startswith("2.") and m["versions"]["keras"].startswith("3.")
    assert m["command"].startswith("bench run smoke --seeds 0,1")
    for name in PAIRS:
        rd = run3 / "runs" / name
        df = pd.read_csv(rd / "metrics.csv")
        assert tuple(df.columns) == CSV_COLUMNS
        assert df.step.tolist() == list(range(1, 21))
        assert df[["d_loss_real", "d_loss_fake", "g_loss"]].notna().all().all()
        assert ((df.d_x > 0) & (df.d_x < 1)).all() and ((df.d_acc_real >= 0) & (df.d_acc_real <= 1)).all()
        assert (df.g_grad_norm > 0).all()
        for step in (0, 20):  # samples at 0, every sample_every (20) and the end; PNG and raw array each time
            arr = np.load(rd / "samples" / f"step_{step:06d}.npy")
            assert arr.shape == (9, 12, 12, 1) and arr.min() >= -1 and arr.max() <= 1
            assert (rd / "samples" / f"step_{step:06d}.png").stat().st_size > 0
        assert json.loads((rd / "status.json").read_text())["status"] == "finished"
        assert not (rd / "quality.csv").exists()  # --no-eval
    all_rows = pd.concat(pd.read_csv(p) for p in run3.glob("runs/*/metrics.csv"))  # one read_csv each
    assert len(all_rows) == 120 and set(all_rows.optimizer) == {"sgd", "rmsprop", "adam"}
    assert (run3 / "real.png").exists()


@pytest.mark.training
def test_paired_design_every_optimizer_sees_the_same_weights_batches_and_latents(run3):
    from bench.core import config
    from bench.model.runtime import configure_runtime
    from bench.model.step import GanTrainer, step_inputs

    exp = config.experiment_from_dict(config.load_raw(config.resolve_experiment_path("smoke")), "smoke")
    configure_runtime(exp.train.threads)
    images = np.random.default_rng(0).uniform(-1, 1, (40, 12, 12, 1)).astype(np.float32)
    weights = [[v.numpy() for v in (*t.generator.variables, *t.discriminator.variables)]
               for t in (GanTrainer(exp, spec, images, seed=5) for spec in exp.optimizers)]
    for other in weights[1:]:
        for x, y in zip(weights[0], other, strict=True):
            np.testing.assert_array_equal(x, y)
    # the documented draws: rng([seed, step]) gives the half batch of indices, then the two latent batches
    rng = np.random.default_rng([5, 7])
    want = (rng.integers(0, 40, 8, dtype=np.int32), rng.standard_normal((8, 16), np.float32),
            rng.standard_normal((16, 16), np.float32))
    for x, y in zip(step_inputs(5, 7, 40, 16, 16), want, strict=True):
        np.testing.assert_array_equal(x, y)
    # in the run: the first D-real loss (same D, same first real batch) is identical across optimizers, the
    # sample grids before training are identical, and the optimizers then part ways
    for seed in (0, 1):
        frames = {o: pd.read_csv(run3 / f"runs/{o}-seed{seed}/metrics.csv") for o in ("sgd", "rmsprop", "adam")}
        assert len({f.d_loss_real.iloc[0] for f in frames.values()}) == 1
        assert len({f.g_loss.iloc[-1] for f in frames.values()}) == 3
        grids = [np.load(run3 / f"runs/{o}-seed{seed}/samples/step_000000.npy") for o in frames]
        np.testing.assert_array_equal(grids[0], grids[1])
        np.testing.assert_array_equal(grids[0], grids[2])
    a, b = (read_values(run3 / f"runs/adam-seed{s}/metrics.csv") for s in (0, 1))
    assert not np.array_equal(a.d_loss_real.to_numpy(), b.d_loss_real.to_numpy())  # seeds differ


@pytest.mark.training
def test_the_same_command_gives_identical_values_and_a_reseeded_trainer_equals_a_fresh_one(cli, run3, tmp_path):
    # run3 built each optimizer's trainer fresh for seed 0; this run reseeds the process's trainers for
    # every seed (seed 0 included): identical values mean a reseeded trainer is a fresh one
    assert cli(*RUN, "--out", tmp_path).code == 0
    again = only_run_dir(tmp_path, "smoke")
    for name in PAIRS:
        a, b = read_values(run3 / "runs" / name / "metrics.csv"), read_values(again / "runs" / name / "metrics.csv")
        pd.testing.assert_frame_equal(a, b, check_exact=True)
        assert a.d_loss_real.nunique() > 5  # it trained: values move from step to step


@pytest.mark.training
def test_values_do_not_depend_on_iterations_per_compiled_call(cli, run3, tmp_path):
    assert cli(*RUN, "--optimizers", "adam", "--seeds", "1", "--set", "train.steps_per_call=3", "--out", tmp_path).code == 0
    other = only_run_dir(tmp_path, "smoke")
    pd.testing.assert_frame_equal(read_values(run3 / "runs/adam-seed1/metrics.csv"),
                                  read_values(other / "runs/adam-seed1/metrics.csv"), check_exact=True)


@pytest.mark.training
def test_xla_runs_are_deterministic_too(cli, tmp_path):
    args = ["run", "smoke", "--optimizers", "rmsprop", "--seeds", "3", "--steps", "25", "--no-eval", "--quiet",
            "--no-report", "--xla", "--fresh"]
    assert cli(*args, "--out", tmp_path / "a").code == 0
    assert cli(*args, "--out", tmp_path / "b").code == 0
    a = read_values(only_run_dir(tmp_path / "a", "smoke") / "runs/rmsprop-seed3/metrics.csv")
    b = read_values(only_run_dir(tmp_path / "b", "smoke") / "runs/rmsprop-seed3/metrics.csv")
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    m = json.loads((only_run_dir(tmp_path / "a", "smoke") / "manifest.json").read_text())
    assert m["machine"]["jit_compile"] is True


def test_inline_hyperparameters_and_labels_reach_the_keras_optimizers():
    from bench.core import config
    from bench.model import optimizers

    exp = config.experiment_from_dict(config.load_raw(config.resolve_experiment_path("smoke")), "smoke")
    specs = optimizers.merge_inline(
        exp.optimizers, "adam:learning_rate=0.001,beta_1=0.9,adam:label=adam_slow,discriminator.learning_rate=1e-5")
    assert [s.label for s in specs] == ["adam", "adam_slow"]
    g, d = (optimizers.build(specs[0], net) for net in ("generator", "discriminator"))
    assert float(g.learning_rate) == pytest.approx(0.001) and g.beta_1 == 0.9 and g is not d
    assert float(d.learning_rate) == pytest.approx(0.001) and d.beta_2 == 0.999  # the experiment's own value
    g, d = (optimizers.build(specs[1], net) for net in ("generator", "discriminator"))
    # a labelled variant starts from the experiment's adam settings; the override reaches D's optimizer only
    assert float(g.learning_rate) == pytest.approx(0.0002) and g.beta_1 == 0.5
    assert float(d.learning_rate) == pytest.approx(1e-5) and d.beta_1 == 0.5


@pytest.mark.training
def test_any_keras_optimizer_by_name(cli, tmp_path):
    r = cli("run", "smoke", "--optimizers", "lion,adagrad", "--seeds", "0", "--steps", "3", "--no-eval", "--quiet",
            "--no-report", "--out", tmp_path)
    assert r.code == 0, r.err
    m = json.loads((only_run_dir(tmp_path, "smoke") / "manifest.json").read_text())
    assert m["optimizers"]["lion"]["type"] == "lion" and m["runs"]["adagrad-seed0"]["status"] == "finished"


def test_list_shows_experiments_datasets_optimizers(cli):
    r = cli("list")
    assert r.code == 0
    for word in ("faces", "celeba", "smoke", "folder", "mnist", "sgd", "rmsprop", "adam", "lion", "momentum"):
        assert word in r.out


def test_help_explains_every_option(cli):
    from bench.cli.parser import build_parser

    subs = build_parser()._subparsers._group_actions[0].choices
    for name, sub in subs.items():
        text = sub.format_help()
        for action in sub._actions:
            for opt in action.option_strings:
                assert opt in text
            if action.dest != "help":
                assert action.help, f"bench {name}: {action.dest} has no help"


@pytest.mark.training
def test_several_experiments_in_one_command_are_all_checked_before_any_trains(cli, tmp_path):
    r = cli("run", "smoke", "no-such-experiment", "--out", tmp_path / "r", "--reports", tmp_path / "rep")
    assert r.code == 2 and "no-such-experiment" in r.err and not (tmp_path / "r").exists()
    r = cli("run", "smoke", "quadratic2d", "--steps", "4", "--seeds", "0", "--optimizers", "sgd", "--no-eval", "--quiet",
            "--out", tmp_path / "r", "--reports", tmp_path / "rep")
    assert r.code == 0, r.err
    for name in ("smoke", "quadratic2d"):
        run = only_run_dir(tmp_path / "r", name)
        assert json.loads((run / "manifest.json").read_text())["experiment"] == name
        assert len(pd.read_csv(run / "runs/sgd-seed0/metrics.csv")) == 4
    index = (tmp_path / "rep/index.html").read_text()
    assert 'href="smoke/' in index and 'href="quadratic2d/' in index
    r = cli("run", "smoke", "quadratic2d", "--resume", tmp_path / "r")
    assert r.code == 2 and "--resume continues one run folder" in r.err


@pytest.mark.training
def test_a_redirected_log_has_plain_progress_lines_and_no_carriage_return(tmp_path):
    """stderr into a file (CI, nohup, a cluster job): one line per pair as it ends, at most one per
    --progress-every seconds while it trains, and never a carriage return."""
    import os
    import re
    import subprocess
    import sys
    from pathlib import Path

    from bench.store.layout import RunFiles

    every = 0.2
    log = tmp_path / "run.log"
    with log.open("wb") as err:
        r = subprocess.run([str(Path(sys.executable).with_name("bench")), "run", "smoke", "--optimizers", "sgd,adam",
                            "--seeds", "0,1", "--steps", "40", "--no-eval", "--no-report", "--progress-every",
                            str(every), "--out", str(tmp_path / "out")], stdout=subprocess.DEVNULL, stderr=err,
                           timeout=300, cwd=tmp_path, env={**os.environ, "BENCH_XLA_CACHE": "0"})
    text = log.read_bytes().decode()
    assert r.returncode == 0, text
    assert "\r" not in text and "\x1b" not in text  # no bar states, no terminal codes
    lines = text.splitlines()
    run_dir = only_run_dir(tmp_path / "out", "smoke")
    for opt in ("sgd", "adam"):
        for seed in (0, 1):
            name = f"{opt} seed {seed}"
            ended = [ln for ln in lines if re.fullmatch(rf"{name}: finished at step 40/40 .*\(\d+\.\d s\)", ln)]
            assert len(ended) == 1, text
            during = [ln for ln in lines if re.match(rf"{name}: step \d+/40 ", ln)]
            wall = json.loads(RunFiles.of(run_dir, opt, seed).status.read_text())["wall_seconds"]
            assert len(during) <= wall / every + 1, (name, during, wall)
    assert len(lines) <= 4 + sum(1 for ln in lines if re.match(r"\w+ seed \d: ", ln)), text  # set-up lines only


def test_on_a_terminal_progress_is_a_bar_and_in_quiet_mode_nothing(capsys):
    """The same Progress on a stream that is a terminal draws tqdm's bar (carriage returns); quiet: silent."""
    import io

    from bench.execute.pair import Progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    values = np.array([0.5, 0.6, 0.7])
    for stream, quiet, expect in ((Terminal(), False, "\r"), (io.StringIO(), True, ""), (io.StringIO(), False, "\n")):
        import sys

        saved, sys.stderr = sys.stderr, stream
        try:
            p = Progress("adam", 3, 30, 0, quiet, every=0.0)
            for step in range(1, 31):
                p(step, values)
            p.close("finished")
        finally:
            sys.stderr = saved
        text = stream.getvalue()
        if expect:
            assert expect in text and ("\r" in text) == (expect == "\r"), text
            assert "adam seed 3" in text
        else:
            assert text == ""
