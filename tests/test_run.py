"""`bench run` end to end: files written, determinism, paired design."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import only_run_dir, read_values

from bench.store.logs import CSV_COLUMNS

TINY = ("--steps", "20", "--quiet")


def test_run_writes_manifest_csv_and_samples(cli, tmp_path):
    r = cli("run", "smoke", "--optimizers", "sgd,adam", "--seeds", "0", *TINY, "--out", tmp_path)
    assert r.code == 0, r.err
    run_dir = only_run_dir(tmp_path, "smoke")
    m = json.loads((run_dir / "manifest.json").read_text())
    assert m["status"] == "finished"
    assert m["seeds"] == [0]
    assert set(m["runs"]) == {"sgd-seed0", "adam-seed0"}
    assert m["config"]["train"]["steps"] == 20
    assert m["optimizers"]["sgd"]["generator"]["learning_rate"] == 0.01
    assert m["optimizers"]["sgd"]["discriminator"]["momentum"] == 0.5
    assert m["data"]["images"] == 100 and len(m["data"]["sha256"]) == 64
    assert m["machine"]["intra_op_threads"] >= 1 and m["machine"]["jit_compile"] is False
    assert m["versions"]["tensorflow"].startswith("2.") and m["versions"]["keras"].startswith("3.")
    assert "--optimizers sgd,adam" in m["command"]
    for name in ("sgd-seed0", "adam-seed0"):
        rd = run_dir / "runs" / name
        df = pd.read_csv(rd / "metrics.csv")
        assert tuple(df.columns) == CSV_COLUMNS
        assert df.step.tolist() == list(range(1, 21))
        assert df[["d_loss_real", "d_loss_fake", "g_loss"]].notna().all().all()
        assert ((df.d_x > 0) & (df.d_x < 1)).all() and ((df.d_acc_real >= 0) & (df.d_acc_real <= 1)).all()
        assert (df.g_grad_norm > 0).all()
        # samples at 0, every sample_every (20) and the end; PNG and raw array each time
        for step in (0, 20):
            arr = np.load(rd / "samples" / f"step_{step:06d}.npy")
            assert arr.shape == (9, 12, 12, 1) and arr.min() >= -1 and arr.max() <= 1
            assert (rd / "samples" / f"step_{step:06d}.png").stat().st_size > 0
        assert json.loads((rd / "status.json").read_text())["status"] == "finished"
    # concatenable across runs with one read_csv each
    all_rows = pd.concat(pd.read_csv(p) for p in run_dir.glob("runs/*/metrics.csv"))
    assert len(all_rows) == 40 and set(all_rows.optimizer) == {"sgd", "adam"}
    # the fixed latents are the same for every optimizer: identical grids before training
    a = np.load(run_dir / "runs/sgd-seed0/samples/step_000000.npy")
    b = np.load(run_dir / "runs/adam-seed0/samples/step_000000.npy")
    np.testing.assert_array_equal(a, b)
    assert (run_dir / "real.png").exists()


@pytest.mark.parametrize("xla", ["--no-xla", "--xla"])
def test_same_seed_gives_identical_csv_values(cli, tmp_path, xla):
    args = ("run", "smoke", "--optimizers", "rmsprop", "--seeds", "3", "--steps", "25", "--quiet", xla, "--fresh")
    assert cli(*args, "--out", tmp_path / "a").code == 0
    assert cli(*args, "--out", tmp_path / "b").code == 0
    a = read_values(only_run_dir(tmp_path / "a", "smoke") / "runs/rmsprop-seed3/metrics.csv")
    b = read_values(only_run_dir(tmp_path / "b", "smoke") / "runs/rmsprop-seed3/metrics.csv")
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert a.d_loss_real.nunique() > 5  # it trained: values move from step to step


def test_different_seeds_differ(cli, tmp_path):
    assert cli("run", "smoke", "--optimizers", "adam", "--seeds", "0,1", *TINY, "--out", tmp_path).code == 0
    run_dir = only_run_dir(tmp_path, "smoke")
    a = read_values(run_dir / "runs/adam-seed0/metrics.csv")
    b = read_values(run_dir / "runs/adam-seed1/metrics.csv")
    assert not np.array_equal(a.d_loss_real.to_numpy(), b.d_loss_real.to_numpy())


def test_paired_design_same_initial_weights_and_first_d_real_loss(cli, tmp_path):
    from bench.core import config
    from bench.model.runtime import configure_runtime
    from bench.model.step import GanTrainer, step_inputs

    exp = config.experiment_from_dict(config.load_raw(config.resolve_experiment_path("smoke")), "smoke")
    configure_runtime(exp.train.threads)
    images = np.random.default_rng(0).uniform(-1, 1, (40, 12, 12, 1)).astype(np.float32)
    trainers = [GanTrainer(exp, spec, images, seed=5) for spec in exp.optimizers]
    weights = [[v.numpy() for v in (*t.generator.variables, *t.discriminator.variables)] for t in trainers]
    for other in weights[1:]:
        for x, y in zip(weights[0], other, strict=True):
            np.testing.assert_array_equal(x, y)
    # every optimizer gets the same batch indices and latents at every step
    a, b = step_inputs(5, 7, 40, 16, 16), step_inputs(5, 7, 40, 16, 16)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(step_inputs(5, 8, 40, 16, 16)[1], a[1])

    # and the logged first-step D-real loss is identical across optimizers, later steps are not
    assert cli("run", "smoke", "--seeds", "4", *TINY, "--out", tmp_path).code == 0
    run_dir = only_run_dir(tmp_path, "smoke")
    frames = {o: pd.read_csv(run_dir / f"runs/{o}-seed4/metrics.csv") for o in ("sgd", "rmsprop", "adam")}
    first = {o: f.d_loss_real.iloc[0] for o, f in frames.items()}
    assert len(set(first.values())) == 1, first
    last = {o: f.g_loss.iloc[-1] for o, f in frames.items()}
    assert len(set(last.values())) == 3, last


def test_inline_hyperparameters_and_labels_reach_the_optimizer(cli, tmp_path):
    r = cli("run", "smoke", "--optimizers", "adam:learning_rate=0.001,beta_1=0.9,adam:label=adam_slow,discriminator.learning_rate=1e-5",
            "--seeds", "0", *TINY, "--out", tmp_path)
    assert r.code == 0, r.err
    m = json.loads((only_run_dir(tmp_path, "smoke") / "manifest.json").read_text())
    assert m["optimizers"]["adam"]["generator"]["learning_rate"] == 0.001
    assert m["optimizers"]["adam"]["generator"]["beta_1"] == 0.9
    # a labelled variant starts from the experiment's adam settings
    assert m["optimizers"]["adam_slow"]["generator"]["learning_rate"] == 0.0002
    assert m["optimizers"]["adam_slow"]["discriminator"]["learning_rate"] == 1e-5
    assert set(m["runs"]) == {"adam-seed0", "adam_slow-seed0"}


def test_any_keras_optimizer_by_name(cli, tmp_path):
    r = cli("run", "smoke", "--optimizers", "lion,adagrad", "--seeds", "0", "--steps", "5", "--quiet", "--out", tmp_path)
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

    sub = build_parser()._subparsers._group_actions[0].choices["run"]
    text = sub.format_help()
    for action in sub._actions:
        for opt in action.option_strings:
            assert opt in text
        if action.dest != "help":
            assert action.help, f"{action.dest} has no help"
