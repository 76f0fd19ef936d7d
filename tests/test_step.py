"""The compiled step logs what its definition says: every value of iteration 1 recomputed eagerly.

The reference below is the iteration written out step by step with eager TensorFlow and NumPy
(float64 for the norms), on a second trainer built from the same seed, so it shares nothing
with the compiled graph but the networks' code and the optimizers' update rule.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.core import config
from bench.core.metric_table import STEP_METRICS as METRICS
from bench.model.runtime import configure_runtime
from bench.model.step import GanTrainer, step_inputs


def _experiment(name: str, jit: bool):
    raw = config.load_raw(config.resolve_experiment_path(name))
    config.apply_override(raw, f"train.jit_compile={'true' if jit else 'false'}")
    config.apply_override(raw, "model.d_dropout=0.0")  # the eager reference cannot redraw dropout's masks
    config.apply_override(raw, "model.d_widths=[64, 32]")
    config.apply_override(raw, "model.g_widths=[32, 64]")
    return config.experiment_from_dict(raw, name)


def _reference_step(trainer: GanTrainer, seed: int) -> dict[str, float]:
    import keras
    import tensorflow as tf

    exp, G, D = trainer.exp, trainer.generator, trainer.discriminator
    idx, z_fake, z_gen = step_inputs(seed, 1, trainer.n_images, exp.train.batch_size, exp.model.latent_dim,
                                     exp.model.latent)
    bce = keras.losses.BinaryCrossentropy(from_logits=True)

    def norm(grads):
        return float(np.sqrt(sum(np.sum(np.asarray(g, np.float64) ** 2) for g in grads)))

    def d_step(x, label):
        with tf.GradientTape() as tape:
            logits = D(x, training=True)
            loss = bce(np.full((len(x), 1), label, np.float32), logits)
        grads = tape.gradient(loss, D.trainable_variables)
        trainer.d_opt.apply(grads, D.trainable_variables)
        return float(loss), logits.numpy().ravel(), norm(grads)

    real = trainer.images.numpy()[idx]
    d_loss_real, logits_real, n_real = d_step(real, exp.train.real_label)
    d_loss_fake, logits_fake, n_fake = d_step(G(z_fake, training=False), 0.0)
    with tf.GradientTape() as tape:
        logits_gen = D(G(z_gen, training=True), training=True)
        g_loss = bce(np.ones((len(z_gen), 1), np.float32), logits_gen)
    grads = tape.gradient(g_loss, G.trainable_variables)
    sigmoid = lambda v: 1 / (1 + np.exp(-v.astype(np.float64)))  # noqa: E731
    return {
        "d_loss_real": d_loss_real, "d_loss_fake": d_loss_fake, "g_loss": float(g_loss),
        "d_acc_real": np.mean(logits_real > 0), "d_acc_fake": np.mean(logits_fake < 0),
        "d_x": np.mean(sigmoid(logits_real)), "d_g_z": np.mean(sigmoid(logits_fake)),
        "d_grad_norm_real": n_real, "d_grad_norm_fake": n_fake, "g_grad_norm": norm(grads),
    }


@pytest.mark.parametrize("name, jit", [("smoke", False), ("smoke", True), ("digits", False)],
                         ids=["graph", "xla", "label-smoothing"])
def test_first_iteration_matches_its_eager_definition(name, jit):
    """digits: one-sided label smoothing (real_label 0.9) applies to D's real target only."""
    configure_runtime(0)
    exp = _experiment(name, jit)
    shape = (12, 12, 1) if name == "smoke" else (8, 8, 1)
    images = np.random.default_rng(3).uniform(-1, 1, (48, *shape)).astype(np.float32)
    spec = next(s for s in exp.optimizers if s.label == "adam")
    logged = dict(zip(METRICS, GanTrainer(exp, spec, images, seed=2).step(1), strict=True))
    expected = _reference_step(GanTrainer(exp, spec, images, seed=2), seed=2)
    for name in METRICS:
        # float32 arithmetic in a different order: agreement to ~1e-6 relative; a wrong norm
        # (a missing gradient, a partial sum dropped, a square left out) is off by far more
        assert logged[name] == pytest.approx(expected[name], rel=2e-5, abs=1e-6), name
    assert logged["g_grad_norm"] > 0 and logged["d_grad_norm_fake"] > 0
