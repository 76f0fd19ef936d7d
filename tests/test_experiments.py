"""The classic set-ups as experiments: 2-D quadratic toy, MNIST (.npz), bundled digits."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import only_run_dir

from bench import data
from bench.core import config
from bench.core.config import DataConfig


def _exp(name, **sets):
    raw = config.load_raw(config.resolve_experiment_path(name))
    for k, v in sets.items():
        config.apply_override(raw, f"{k}={v}")
    return config.experiment_from_dict(raw, name)


def test_quadratic_points_follow_the_formula_and_the_seed():
    a = data.load(DataConfig(source="quadratic", limit=500, seed=3))
    b = data.load(DataConfig(source="quadratic", limit=500, seed=3))
    c = data.load(DataConfig(source="quadratic", limit=500, seed=4))
    assert a.images.shape == (500, 2) and a.is_points and a.checksum == b.checksum != c.checksum
    x, y = a.images[:, 0], a.images[:, 1]
    assert x.min() >= -50 and x.max() <= 50
    np.testing.assert_allclose(y, 10 + x.astype(np.float64) ** 2, rtol=1e-6)
    s = data.load(DataConfig(source="quadratic", limit=500, seed=3, standardize=True))
    np.testing.assert_allclose(s.images.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(s.images.std(0), 1, atol=1e-4)
    np.testing.assert_allclose(s.images * s.scaling["std"] + s.scaling["mean"], a.images, rtol=1e-4, atol=1e-3)


def test_digits_bundled_with_scikit_learn():
    ds = data.load(DataConfig(source="digits", image_size=(8, 8), channels=1))
    assert ds.images.shape == (1797, 8, 8, 1)
    assert ds.images.min() == -1 and ds.images.max() == 1


def test_model_options_reach_the_networks():
    from bench.model.models import build_discriminator, build_generator
    from bench.model.step import draw_latents

    toy = _exp("quadratic2d")
    g, d = build_generator(toy.model, (2,)), build_discriminator(toy.model, (2,))
    assert not [ly for ly in g.layers if "batch_normalization" in type(ly).__name__.lower()]
    assert g.output_shape == (None, 2) and g.get_layer("output").activation.__name__ == "linear"
    assert d.get_layer("features").output.shape[-1] == 2
    z = draw_latents(np.random.default_rng(0), (1000, 2), "uniform")
    assert z.min() >= -1 and z.max() <= 1 and z.std() < 0.7
    mnist = _exp("mnist")
    d = build_discriminator(mnist.model, (28, 28, 1))
    assert [ly.rate for ly in d.layers if type(ly).__name__ == "Dropout"] == [0.3, 0.3, 0.3]
    assert [ly.units for ly in d.layers if type(ly).__name__ == "Dense"] == [1024, 512, 256, 1]
    assert mnist.train.real_label == 0.9 and mnist.train.batch_size == 128


@pytest.mark.training
def test_dropout_runs_are_deterministic_a_reseeded_trainer_equals_a_fresh_one_and_resume_exactly():
    """D with dropout draws random masks: they come from the seed too, live in the networks' state, and
    so survive reseeding and checkpoints."""
    from bench.model.runtime import configure_runtime
    from bench.model.step import GanTrainer

    configure_runtime(0)
    exp = _exp("digits", **{"train.jit_compile": "false"})
    images = data.load(exp.data).images[:200]
    spec = exp.optimizers[2]
    fresh = GanTrainer(exp, spec, images, 1)
    rows = np.concatenate([fresh.run_block(1, 8), fresh.run_block(9, 8), fresh.run_block(17, 8)])
    assert len(np.unique(rows[:, 0])) == 24  # it trained
    other = GanTrainer(exp, spec, images, 2)
    other.run_block(1, 8)  # trained under another seed, then made seed 1's fresh trainer again
    other.reseed(exp, images, 1)
    first = other.run_block(1, 8)
    np.testing.assert_array_equal(rows[:8], first)
    state = other.get_state()  # a checkpoint at iteration 8 (dropout's random-generator state included)
    other.run_block(9, 8)
    other.set_state(state)
    np.testing.assert_array_equal(rows[8:], np.concatenate([other.run_block(9, 8), other.run_block(17, 8)]))


def test_a_trainer_serves_every_run_of_its_optimizer_whatever_the_other_optimizers_or_its_label(monkeypatch):
    """A pair's values depend on its own optimizer only: a later run in the process (a notebook, a test suite, a
    sweep's rerun of its best trial under another label) that lists other optimizers beside it reuses its trainer
    and trace; a change to that optimizer or to what every pair trains with does not."""
    import dataclasses

    from bench.model import step
    from bench.model.runtime import configure_runtime

    configure_runtime(0)
    monkeypatch.setattr(step, "_TRAINERS", type(step._TRAINERS)())
    monkeypatch.setattr(step, "_INITIAL", type(step._INITIAL)())
    images = data.load(_exp("smoke").data).images
    a, b = _exp("smoke", **{"optimizers.rmsprop.learning_rate": "1e-3"}), _exp("smoke", **{"train.real_label": "0.8"})
    base = _exp("smoke")
    tuned = dataclasses.replace(base.optimizer("adam"), label="adam.tuned")
    c = dataclasses.replace(base, optimizers=(tuned,))
    same = base.identity(base.optimizer("adam"))
    assert a.identity() != base.identity() and a.identity(a.optimizer("adam")) == same != b.identity(b.optimizer("adam"))
    assert a.identity(a.optimizer("rmsprop")) != base.identity(base.optimizer("rmsprop")) and c.identity(tuned) == same
    adam = step.trainer_for(base, base.optimizer("adam"), images, 0)
    assert step.trainer_for(a, a.optimizer("adam"), images, 1) is adam and adam.seed == 1 and adam.exp is a
    assert step.trainer_for(c, tuned, images, 2) is adam and adam.spec is tuned and adam.seed == 2
    assert step.trainer_for(b, b.optimizer("adam"), images, 0) is not adam
    rmsprop = step.trainer_for(base, base.optimizer("rmsprop"), images, 0)
    assert step.trainer_for(a, a.optimizer("rmsprop"), images, 0) is not rmsprop


@pytest.mark.training
@pytest.mark.parametrize("experiment, extra, marker", [
    ("quadratic2d", ["--steps", "60", "--set", "train.sample_every=30", "--set", "eval.every=30"], "D's feature layer"),
    ("digits", ["--optimizers", "adam", "--steps", "20", "--set", "train.sample_every=10", "--set", "eval.every=10",
                "--set", "train.jit_compile=false"], "Samples over training"),
])
def test_experiment_runs_and_reports(cli, tmp_path, experiment, extra, marker):
    args = ["run", experiment, "--seeds", "0", "--quiet", "--out", tmp_path / "r", "--reports", tmp_path / "rep", *extra]
    r = cli(*args)
    assert r.code == 0, r.err
    run_dir = only_run_dir(tmp_path / "r", experiment)
    m = json.loads((run_dir / "manifest.json").read_text())
    optimizers = ("sgd", "rmsprop", "adam") if experiment == "quadratic2d" else ("adam",)
    assert m["status"] == "finished" and set(m["runs"]) == {f"{o}-seed0" for o in optimizers}
    for opt in optimizers:
        df = pd.read_csv(run_dir / f"runs/{opt}-seed0/metrics.csv")
        assert np.isfinite(df[["d_loss_real", "d_loss_fake", "g_loss"]].to_numpy()).all()
    html = (tmp_path / "rep" / experiment / run_dir.name / "index.html").read_text()
    assert marker in html and html.count("data:image/png;base64,") >= 4 + 2 * len(optimizers)
    if experiment == "quadratic2d":
        assert m["data"]["kind"] == "points" and "standardized" in m["data"]
        assert (run_dir / "runs/adam-seed0/samples/dfeat_step_000060.npz").exists()
        assert not list(run_dir.glob("runs/*/samples/*.png"))  # points are drawn by the report only
        assert "swd" not in set(pd.read_csv(run_dir / "runs/adam-seed0/quality.csv").metric)
