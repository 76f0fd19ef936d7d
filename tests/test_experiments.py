"""The classic set-ups as experiments: 2-D quadratic toy, MNIST (.npz), bundled digits."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import only_run_dir, read_values

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


def test_label_smoothing_changes_only_the_real_target():
    from bench.model.runtime import configure_runtime
    from bench.model.step import GanTrainer

    configure_runtime(0)
    images = np.random.default_rng(0).uniform(-1, 1, (64, 8, 8, 1)).astype(np.float32)
    sharp = _exp("digits", **{"train.real_label": 1.0, "model.d_dropout": 0.0, "train.jit_compile": "false"})
    smooth = _exp("digits", **{"model.d_dropout": 0.0, "train.jit_compile": "false"})
    a = GanTrainer(sharp, sharp.optimizers[2], images, 0).step(1)
    b = GanTrainer(smooth, smooth.optimizers[2], images, 0).step(1)
    # same logits on the real batch (same weights, same batch): equal D(x), different real loss
    assert a[5] == pytest.approx(b[5], abs=1e-7)
    assert abs(b[0] - a[0]) > 1e-4


def test_dropout_runs_are_deterministic_and_resume_exactly():
    from bench.model.runtime import configure_runtime
    from bench.model.step import GanTrainer

    configure_runtime(0)
    exp = _exp("digits", **{"train.jit_compile": "false"})
    images = data.load(exp.data).images[:200]
    spec = exp.optimizers[2]
    full = GanTrainer(exp, spec, images, 1)
    rows = np.concatenate([full.run_block(1, 8), full.run_block(9, 8), full.run_block(17, 8)])
    again = GanTrainer(exp, spec, images, 1)
    np.testing.assert_array_equal(rows, np.concatenate([again.run_block(1, 8), again.run_block(9, 8), again.run_block(17, 8)]))
    first = GanTrainer(exp, spec, images, 1)
    first.run_block(1, 8)
    state = first.get_state()
    resumed = GanTrainer(exp, spec, images, 1)
    resumed.set_state(state)  # includes the dropout layers' random-generator state
    np.testing.assert_array_equal(rows[8:], np.concatenate([resumed.run_block(9, 8), resumed.run_block(17, 8)]))


@pytest.mark.parametrize("experiment, extra, marker", [
    ("quadratic2d", ["--steps", "60", "--set", "train.sample_every=30", "--set", "eval.every=30"], "D's feature layer"),
    ("digits", ["--steps", "20", "--set", "train.sample_every=10", "--set", "eval.every=10", "--set", "train.jit_compile=false"], "Samples over training"),
    ("mnist", ["--steps", "10", "--set", "train.sample_every=5", "--set", "eval.every=5", "--set", "train.jit_compile=false",
               "--batch-size", "32"], "Samples over training"),
])
def test_experiment_runs_under_three_optimizers_and_reports(cli, tmp_path, experiment, extra, marker):
    args = ["run", experiment, "--seeds", "0", "--quiet", "--out", tmp_path / "r", "--reports", tmp_path / "rep", *extra]
    if experiment == "mnist":
        x = np.random.default_rng(0).integers(0, 256, (300, 28, 28), dtype=np.uint8)
        np.savez(tmp_path / "mnist.npz", x_train=x, y_train=np.zeros(300), x_test=x[:10], y_test=np.zeros(10))
        args += ["--data", tmp_path / "mnist.npz"]
    r = cli(*args)
    assert r.code == 0, r.err
    run_dir = only_run_dir(tmp_path / "r", experiment)
    m = json.loads((run_dir / "manifest.json").read_text())
    assert m["status"] == "finished" and set(m["runs"]) == {"sgd-seed0", "rmsprop-seed0", "adam-seed0"}
    for opt in ("sgd", "rmsprop", "adam"):
        df = pd.read_csv(run_dir / f"runs/{opt}-seed0/metrics.csv")
        assert np.isfinite(df[["d_loss_real", "d_loss_fake", "g_loss"]].to_numpy()).all()
    html = (tmp_path / "rep" / experiment / run_dir.name / "index.html").read_text()
    assert marker in html and html.count("data:image/png;base64,") >= 10
    if experiment == "quadratic2d":
        assert m["data"]["kind"] == "points" and "standardized" in m["data"]
        assert (run_dir / "runs/adam-seed0/samples/dfeat_step_000060.npz").exists()
        assert not list(run_dir.glob("runs/*/samples/*.png"))  # points are drawn by the report only
        assert "swd" not in set(pd.read_csv(run_dir / "runs/adam-seed0/quality.csv").metric)


def test_same_seed_identical_with_dropout(cli, tmp_path):
    args = ["run", "digits", "--optimizers", "adam", "--seeds", "2", "--steps", "16", "--quiet", "--no-report",
            "--no-eval", "--set", "train.jit_compile=false", "--fresh"]
    assert cli(*args, "--out", tmp_path / "a").code == 0
    assert cli(*args, "--out", tmp_path / "b").code == 0
    a = read_values(only_run_dir(tmp_path / "a", "digits") / "runs/adam-seed2/metrics.csv")
    b = read_values(only_run_dir(tmp_path / "b", "digits") / "runs/adam-seed2/metrics.csv")
    pd.testing.assert_frame_equal(a, b, check_exact=True)
