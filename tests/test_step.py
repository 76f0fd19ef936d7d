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


# ------------------------------------------------------------------ the update rules, iteration by iteration


def _eager_iterations(trainer: GanTrainer, seed: int, n: int) -> np.ndarray:
    """``n`` iterations of the experiment's update rule written out eagerly, on a trainer of its own: D's values
    averaged over its k updates, the losses and norms taken at the iteration's starting point."""
    import keras
    import tensorflow as tf

    exp, G, D = trainer.exp, trainer.generator, trainer.discriminator
    t = exp.train
    bce = keras.losses.BinaryCrossentropy(from_logits=True)
    sigmoid = lambda v: 1 / (1 + np.exp(-np.asarray(v, np.float64)))  # noqa: E731

    def norm(grads):
        return float(np.sqrt(sum(np.sum(np.asarray(g, np.float64) ** 2) for g in grads)))

    def loss(x_logits, label):
        return bce(np.full(x_logits.shape, label, np.float32), x_logits)

    def d_values(lr_, lf_, logits_r, logits_f, nr, nf):
        return [float(lr_), float(lf_), np.mean(logits_r.numpy() > 0), np.mean(logits_f.numpy() < 0),
                np.mean(sigmoid(logits_r)), np.mean(sigmoid(logits_f)), nr, nf]

    def gradients_here(idx, z_fake, z_gen):
        fake = G(z_fake, training=False)
        with tf.GradientTape(persistent=True) as tape:
            logits_r = D(trainer.images.numpy()[idx], training=True)
            lr_ = loss(logits_r, t.real_label)
            logits_f = D(fake, training=True)
            lf_ = loss(logits_f, 0.0)
            gl = loss(D(G(z_gen, training=True), training=True), 1.0)
        gr, gf = tape.gradient(lr_, D.trainable_variables), tape.gradient(lf_, D.trainable_variables)
        gg = tape.gradient(gl, G.trainable_variables)
        d = [a + b for a, b in zip(gr, gf, strict=True)]
        return d, gg, d_values(lr_, lf_, logits_r, logits_f, norm(gr), norm(gf)) + [float(gl), norm(gg)]

    rows = []
    for step in range(1, n + 1):
        idx, z_fake, z_gen = step_inputs(seed, step, trainer.n_images, t.batch_size, exp.model.latent_dim,
                                         exp.model.latent, t.d_steps)
        if t.update == "alternating":
            per = []
            for j in range(t.d_steps):
                i_j, z_j = (idx[j], z_fake[j]) if t.d_steps > 1 else (idx, z_fake)
                with tf.GradientTape() as tape:
                    logits_r = D(trainer.images.numpy()[i_j], training=True)
                    lr_ = loss(logits_r, t.real_label)
                gr = tape.gradient(lr_, D.trainable_variables)
                trainer.d_opt.apply(gr, D.trainable_variables)
                fake = G(z_j, training=False)
                with tf.GradientTape() as tape:
                    logits_f = D(fake, training=True)
                    lf_ = loss(logits_f, 0.0)
                gf = tape.gradient(lf_, D.trainable_variables)
                trainer.d_opt.apply(gf, D.trainable_variables)
                per.append(d_values(lr_, lf_, logits_r, logits_f, norm(gr), norm(gf)))
            d = np.mean(np.array(per, np.float64), axis=0)
            with tf.GradientTape() as tape:
                gl = loss(D(G(z_gen, training=True), training=True), 1.0)
            gg = tape.gradient(gl, G.trainable_variables)
            trainer.g_opt.apply(gg, G.trainable_variables)
            values = list(d) + [float(gl), norm(gg)]
        else:
            start = [v.numpy() for v in (*D.trainable_variables, *G.trainable_variables)]
            dg, gg, values = gradients_here(idx, z_fake, z_gen)
            trainer.d_opt.apply(dg, D.trainable_variables)
            trainer.g_opt.apply(gg, G.trainable_variables)
            if t.update == "extragradient":
                dg, gg, _ = gradients_here(idx, z_fake, z_gen)  # at the extrapolated point
                for v, w in zip((*D.trainable_variables, *G.trainable_variables), start, strict=True):
                    v.assign(w)
                trainer.d_opt.apply(dg, D.trainable_variables)
                trainer.g_opt.apply(gg, G.trainable_variables)
        d_part, (g_loss, g_norm) = values[:8], values[8:]
        rows.append([d_part[0], d_part[1], g_loss, *d_part[2:8], g_norm])
    return np.array(rows, np.float64)


@pytest.mark.parametrize("rule", ["d_steps=2", "simultaneous", "extragradient"])
def test_each_update_rule_matches_its_eager_definition(rule):
    configure_runtime(0)
    raw = config.load_raw(config.resolve_experiment_path("smoke"))
    for a in ("train.jit_compile=false", "model.d_dropout=0.0", "model.d_widths=[64, 32]", "model.g_widths=[32, 64]",
              "train.d_steps=2" if rule == "d_steps=2" else f'train.update="{rule}"'):
        config.apply_override(raw, a)
    exp = config.experiment_from_dict(raw, "smoke")
    images = np.random.default_rng(3).uniform(-1, 1, (48, 12, 12, 1)).astype(np.float32)
    spec = next(s for s in exp.optimizers if s.label == "adam")
    logged = GanTrainer(exp, spec, images, seed=2).run_block(1, 3)
    expected = _eager_iterations(GanTrainer(exp, spec, images, seed=2), seed=2, n=3)
    # the third iteration's values depend on the first two updates: a wrong rule is far off
    np.testing.assert_allclose(logged, expected, rtol=5e-5, atol=2e-6)


def test_the_draws_of_an_iteration_are_documented_and_k_1_is_unchanged():
    """Per iteration, from numpy.random.default_rng([seed, step]) in order: for each D update its real indices
    then its fake latents, then G's latents. With k = 1: the draws of every run made before update rules."""
    seed, step, n_images, batch, latent = 5, 7, 90, 16, 8
    idx, z_fake, z_gen = step_inputs(seed, step, n_images, batch, latent, "normal", d_steps=3)
    rng = np.random.default_rng([seed, step])
    for j in range(3):
        assert np.array_equal(idx[j], rng.integers(0, n_images, size=batch // 2, dtype=np.int32))
        assert np.array_equal(z_fake[j], rng.standard_normal((batch // 2, latent), dtype=np.float32))
    assert np.array_equal(z_gen, rng.standard_normal((batch, latent), dtype=np.float32))
    one = step_inputs(seed, step, n_images, batch, latent)
    rng = np.random.default_rng([seed, step])
    assert np.array_equal(one[0], rng.integers(0, n_images, size=batch // 2, dtype=np.int32))
    assert np.array_equal(one[1], rng.standard_normal((batch // 2, latent), dtype=np.float32))
    assert np.array_equal(one[2], rng.standard_normal((batch, latent), dtype=np.float32))


@pytest.mark.parametrize("name", ["smoke", "digits"])
def test_bench_seeding_builds_the_weights_and_dropout_masks_kerass_own_seeding_does(name):
    """bench.model.step.seed_keras leaves TensorFlow's global seed alone (setting it clears TensorFlow's compiled
    functions): the networks it seeds have Keras's own set_random_seed's weights, and draw the same dropout masks."""
    import keras

    from bench.model.models import MODELS
    from bench.model.step import seed_keras

    exp = config.experiment_from_dict(config.load_raw(config.resolve_experiment_path(name)), name)
    shape = (12, 12, 1) if name == "smoke" else (8, 8, 1)
    build_g, build_d = MODELS[exp.model.kind]
    x = np.random.default_rng(0).uniform(-1, 1, (16, *shape)).astype(np.float32)
    import tensorflow as tf

    out = []
    for seeding in (keras.utils.set_random_seed, seed_keras):
        tf.random.set_seed(987)  # a TensorFlow global seed other than Keras's: it must not matter
        seeding(5)
        g, d = build_g(exp.model, shape), build_d(exp.model, shape)
        out.append(([w.numpy() for w in g.weights + d.weights], np.asarray(d(x, training=True))))
    (w_keras, d_keras), (w_bench, d_bench) = out
    assert len(w_keras) == len(w_bench) and all(np.array_equal(a, b) for a, b in zip(w_keras, w_bench, strict=True))
    np.testing.assert_array_equal(d_keras, d_bench)  # dropout (digits) draws from Keras's generator too


def test_a_process_keeps_its_trainers_while_they_fit_in_the_memory_bound(monkeypatch):
    """The next run of an (experiment, optimizer) in the same process (a notebook, a test suite, a sweep's rerun)
    gets the trainer it built before, traced step included, even after other experiments ran in between; past the
    memory bound the oldest go, except the last experiment's optimizers."""
    import dataclasses

    from bench.model import step

    configure_runtime(0)
    monkeypatch.setattr(step, "_TRAINERS", type(step._TRAINERS)())
    smoke, labelled = _experiment("smoke", jit=False), _experiment("smoke", jit=True)  # two identities
    images = np.random.default_rng(0).uniform(-1, 1, (40, 12, 12, 1)).astype(np.float32)
    first = [step.trainer_for(smoke, spec, images, 0) for spec in smoke.optimizers]
    for spec in labelled.optimizers:
        step.trainer_for(labelled, spec, images, 0)
    assert len(step._TRAINERS) == 6 and sum(e[2] for e in step._TRAINERS.values()) < step.TRAINER_BYTES
    again = [step.trainer_for(smoke, spec, images, 1) for spec in smoke.optimizers]  # another seed: reseeded
    assert all(a is b for a, b in zip(first, again, strict=True))
    assert first[0].seed == 1 and first[0].nbytes() == first[0].images.shape.num_elements() * 4 + sum(
        v.numpy().nbytes for v in first[0]._variables())
    monkeypatch.setattr(step, "TRAINER_BYTES", 1)  # nothing fits: only the _KEEP most recent stay
    monkeypatch.setattr(step, "_KEEP", 3)
    third = dataclasses.replace(smoke, model=dataclasses.replace(smoke.model, leaky_slope=0.3))  # a new trainer
    step.trainer_for(third, third.optimizers[0], images, 0)
    assert len(step._TRAINERS) == 3
    assert step.trainer_for(smoke, smoke.optimizers[0], images, 0) is not first[0]  # evicted: built anew
