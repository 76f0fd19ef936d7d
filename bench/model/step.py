"""The compiled GAN training step and the loop around it. Knows nothing of files.

One iteration does what the classic Keras loop does, in one ``tf.function`` (``[train] update = "alternating"``,
the default):

1. D step on a half batch of real images (label ``real_label``);
2. D step on a half batch of G's images, G in inference mode (label 0);
3. G step on a full batch of fresh latents, labelled 1 through D; only G's
   variables are updated (each network has its own optimizer and gradient list,
   which is what the Keras-2 ``trainable=False`` trick was for).

Other update rules (``[train]``, part of the experiment's identity when not the default):

- ``d_steps = k``: steps 1-2 k times, each on its own real half batch and its own fake latents, then step 3
  (WGAN's n_critic); the logged D values are the means over the k D updates;
- ``update = "simultaneous"``: both gradients at the same point w_t (D's of its real and fake losses, summed, and
  G's through the D of w_t), then both applied (Mescheder et al. 2018);
- ``update = "extragradient"``: both gradients at w_t, applied to reach w_half; both gradients again at w_half;
  the variables back to w_t, and the second gradients applied (Gidel et al. 2019; with Adam, their Extra-Adam:
  the optimizer's own update and state in both steps). Batch-norm statistics move with both evaluations.

The logged losses and gradient norms are those at w_t.

Every random input of an iteration comes from ``numpy.random.default_rng([seed, step])``, drawn in this order:
for each of the k D updates its real indices (``half`` integers) then its fake latents (``half x latent_dim``),
then G's latents (``batch x latent_dim``). They depend only on the seed and the step number: every optimizer
sees the same batches and latents (paired design), and a resumed run needs no generator state to continue
exactly. With k = 1 these are the draws of every run made before the update rules existed.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from bench.core import streams
from bench.core.config import Experiment, OptimizerSpec
from bench.core.metric_table import LOSSES


def draw_latents(rng: np.random.Generator, shape: tuple[int, int], kind: str = "normal") -> np.ndarray:
    if kind == "uniform":
        return rng.uniform(-1.0, 1.0, size=shape).astype(np.float32)
    return rng.standard_normal(shape, dtype=np.float32)


def step_inputs(seed: int, step: int, n_images: int, batch_size: int, latent_dim: int, latent: str = "normal",
                d_steps: int = 1):
    """Batch indices and latents of iteration ``step`` (1-based) for ``seed``; with ``d_steps`` = k > 1 the
    indices and fake latents have a leading axis of k (one per D update)."""
    rng = np.random.default_rng([seed, step])
    half = batch_size // 2
    idx, z_fake = [], []
    for _ in range(d_steps):
        idx.append(rng.integers(0, n_images, size=half, dtype=np.int32))  # with replacement, as the classic loop
        z_fake.append(draw_latents(rng, (half, latent_dim), latent))
    z_gen = draw_latents(rng, (batch_size, latent_dim), latent)
    if d_steps == 1:
        return idx[0], z_fake[0], z_gen
    return np.stack(idx), np.stack(z_fake), z_gen


def sample_latents(exp: Experiment) -> np.ndarray:
    """The fixed latent batch for sample grids: the same for every optimizer and seed."""
    rng = streams.rng(exp.train.sample_seed, streams.SAMPLE_LATENTS)
    return draw_latents(rng, (exp.train.sample_count, exp.model.latent_dim), exp.model.latent)


def eval_latents(exp: Experiment) -> np.ndarray:
    """The fixed latent bank the quality metrics score: the same for every optimizer and seed."""
    rng = streams.rng(exp.eval.seed, streams.EVAL_LATENTS)
    return draw_latents(rng, (exp.eval.samples, exp.model.latent_dim), exp.model.latent)


def seed_keras(seed: int) -> None:
    """Seed what ``keras.utils.set_random_seed`` seeds (Python's and NumPy's generators, and Keras's global seed
    generator, which the initialisers and dropout draw from), except TensorFlow's own global seed.

    Setting TensorFlow's seed clears the kernel cache of every function it has instantiated
    (``TFE_ContextClearCaches``): each pair then paid for its compiled step's instantiation and optimisation
    again on its first block, about 0.3 s a pair. Nothing bench runs draws from TensorFlow's global seed
    (Keras 3 draws from its seed generators; the batches and latents come from NumPy streams), so leaving it
    unset changes no value: tests/test_step.py checks that the weights equal Keras's own seeding's, and a smoke,
    digits (dropout) and quadratic run's CSVs were identical before and after this change."""
    import random

    from keras.src.backend.common import (
        global_state,  # keras is pinned: these names are those of set_random_seed
    )
    from keras.src.random import seed_generator
    from keras.src.utils.rng_utils import GLOBAL_RANDOM_SEED

    global_state.set_global_attribute(GLOBAL_RANDOM_SEED, seed)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)
    random.seed(seed)
    np.random.seed(seed)


def untrained_samples(exp: Experiment, sample_shape: tuple[int, ...], seeds: tuple[int, ...], count: int) -> list[np.ndarray]:
    """The untrained generator's samples of the first ``count`` evaluation latents, one set per seed: G as
    GanTrainer builds it for that seed (the seed fixes its weights before anything else is built)."""

    from bench.model.models import MODELS

    z = eval_latents(exp)[:count]
    out = []
    for seed in seeds:
        seed_keras(seed)
        out.append(np.asarray(MODELS[exp.model.kind][0](exp.model, tuple(sample_shape))(z, training=False)))
    return out


class GanTrainer:
    """G, D, one optimizer each, and the compiled step. Built from (experiment, optimizer, seed)."""

    def __init__(self, exp: Experiment, spec: OptimizerSpec, images: np.ndarray, seed: int):
        import keras
        import tensorflow as tf

        from bench.model import optimizers
        from bench.model.models import MODELS

        self.exp, self.spec, self.seed = exp, spec, seed
        image_shape = tuple(images.shape[1:])
        build_generator, build_discriminator = MODELS[exp.model.kind]
        # The seed alone fixes the initial weights: every optimizer starts from the same G and D.
        seed_keras(seed)
        self.generator = build_generator(exp.model, image_shape)
        self.discriminator = build_discriminator(exp.model, image_shape)
        self.g_opt = optimizers.build(spec, "generator")
        self.d_opt = optimizers.build(spec, "discriminator")
        # Build slots now so a checkpoint can be restored before the first step.
        self.g_opt.build(self.generator.trainable_variables)
        self.d_opt.build(self.discriminator.trainable_variables)
        self.images = tf.constant(images)
        self.n_images = int(images.shape[0])
        self._tf = tf
        self.block = exp.train.steps_per_call
        # AutoGraph rewrites Python control flow on tensors into graph ops, in the traced function and in what it
        # calls, but never inside Keras (TensorFlow's rules: DoNotConvert('keras')) nor in what Keras calls: a
        # class's update_step and a schedule's __call__ run as written even when converting. bench's step functions
        # need no conversion (their loop is an explicit while_loop), so it would only ever reach the optimizers'
        # apply(), which the step calls itself: converted when a class of the user's overrides it, otherwise
        # skipped, saving a fifth of each trace (same graph, same values)
        autograph = any(not _from_keras(type(opt).apply) for opt in (self.g_opt, self.d_opt))
        self._block = tf.function(self._train_block, jit_compile=exp.train.jit_compile, autograph=autograph)
        # any batch size: the sample grid's and the evaluation bank's latents share one trace
        self._generate = tf.function(lambda z: self.generator(z, training=False), jit_compile=False,
                                     input_signature=[tf.TensorSpec([None, exp.model.latent_dim], tf.float32)])
        feats = self.discriminator.get_layer("features").output
        self._d_features = keras.Model(self.discriminator.input, feats)  # shares D's weights

    @staticmethod
    def _norm(grads):
        """Global L2 norm of a gradient list, in one pass over each gradient.

        XLA on CPU turns a large ``reduce_sum(square(g))`` into a reduce-window tree that cannot
        fuse its producer, so g*g was written out in full and read back: ~4 ms of a ~45 ms
        iteration on the reference model (``make bench``). Rows of at most 32 squares are summed
        in one fused pass instead (reductions that small are not rewritten), and the partial sums
        are added by a dot, which XLA's simplifier cannot merge back into one large reduce.
        Only the logged norms depend on this; the training arithmetic is untouched.
        """
        import tensorflow as tf

        def sum_of_squares(g):
            rows = tf.reduce_sum(tf.reshape(tf.square(g), [-1, math.gcd(g.shape.num_elements(), 32)]), axis=1)
            return tf.tensordot(rows, tf.ones_like(rows), 1)

        return tf.sqrt(tf.add_n([sum_of_squares(g) for g in grads]))

    @staticmethod
    def _bce(label: float, logits):
        import tensorflow as tf

        return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.fill(tf.shape(logits), label), logits=logits))

    def _train_step(self, idx, z_fake, z_gen):
        """The alternating rule: one D update (real, then G's samples), then one G update."""
        return self._row(self._d_update(idx, z_fake), *self._g_update(z_gen))

    def _d_update(self, idx, z_fake):
        """One D update of the alternating rule: a step on real images, then one on G's (inference mode)."""
        tf = self._tf
        G, D = self.generator, self.discriminator
        d_vars = D.trainable_variables
        with tf.GradientTape() as tape:
            logits_real = D(tf.gather(self.images, idx), training=True)
            d_loss_real = self._bce(self.exp.train.real_label, logits_real)
        grads = tape.gradient(d_loss_real, d_vars)
        self.d_opt.apply(grads, d_vars)
        norm_real = self._norm(grads)
        fake = G(z_fake, training=False)
        with tf.GradientTape() as tape:
            logits_fake = D(fake, training=True)
            d_loss_fake = self._bce(0.0, logits_fake)
        grads = tape.gradient(d_loss_fake, d_vars)
        self.d_opt.apply(grads, d_vars)
        return self._d_values(d_loss_real, d_loss_fake, logits_real, logits_fake, norm_real, self._norm(grads))

    def _d_values(self, d_loss_real, d_loss_fake, logits_real, logits_fake, norm_real, norm_fake):
        tf = self._tf
        f32 = tf.float32
        return tf.stack([d_loss_real, d_loss_fake, tf.reduce_mean(tf.cast(logits_real > 0, f32)),
                         tf.reduce_mean(tf.cast(logits_fake < 0, f32)), tf.reduce_mean(tf.sigmoid(logits_real)),
                         tf.reduce_mean(tf.sigmoid(logits_fake)), norm_real, norm_fake])

    @staticmethod
    def _row(d, g_loss, g_norm):
        """The STEP_METRICS row from D's eight values and G's loss and norm."""
        import tensorflow as tf

        return tf.stack([d[0], d[1], g_loss, d[2], d[3], d[4], d[5], d[6], d[7], g_norm])

    def _g_update(self, z_gen):
        tf = self._tf
        G, D = self.generator, self.discriminator
        g_vars = G.trainable_variables
        with tf.GradientTape() as tape:
            g_loss = self._bce(1.0, D(G(z_gen, training=True), training=True))
        grads = tape.gradient(g_loss, g_vars)
        self.g_opt.apply(grads, g_vars)
        return g_loss, self._norm(grads)

    def _train_step_d_steps(self, idx, z_fake, z_gen):
        """``d_steps`` = k > 1: k D updates, each on its own batch; their values averaged; then the G update."""
        tf = self._tf
        k = self.exp.train.d_steps
        d = tf.reduce_mean(tf.stack([self._d_update(idx[j], z_fake[j]) for j in range(k)]), axis=0)
        g_loss, g_norm = self._g_update(z_gen)
        return self._row(d, g_loss, g_norm)

    def _gradients_here(self, idx, z_fake, z_gen):
        """Both networks' gradients at the current point: D's of its real plus fake loss (their parts' norms
        apart), G's through this D; and the values logged."""
        tf = self._tf
        G, D = self.generator, self.discriminator
        d_vars, g_vars = D.trainable_variables, G.trainable_variables
        fake = G(z_fake, training=False)
        with tf.GradientTape(persistent=True) as tape:
            logits_real = D(tf.gather(self.images, idx), training=True)
            d_loss_real = self._bce(self.exp.train.real_label, logits_real)
            logits_fake = D(fake, training=True)
            d_loss_fake = self._bce(0.0, logits_fake)
            g_loss = self._bce(1.0, D(G(z_gen, training=True), training=True))
        real_grads, fake_grads = tape.gradient(d_loss_real, d_vars), tape.gradient(d_loss_fake, d_vars)
        g_grads = tape.gradient(g_loss, g_vars)
        del tape
        d_grads = [a + b for a, b in zip(real_grads, fake_grads, strict=True)]
        values = self._row(self._d_values(d_loss_real, d_loss_fake, logits_real, logits_fake, self._norm(real_grads),
                                          self._norm(fake_grads)), g_loss, self._norm(g_grads))
        return d_grads, g_grads, values

    def _train_step_simultaneous(self, idx, z_fake, z_gen):
        d_grads, g_grads, values = self._gradients_here(idx, z_fake, z_gen)
        self.d_opt.apply(d_grads, self.discriminator.trainable_variables)
        self.g_opt.apply(g_grads, self.generator.trainable_variables)
        return values

    def _train_step_extragradient(self, idx, z_fake, z_gen):
        tf = self._tf
        d_vars, g_vars = self.discriminator.trainable_variables, self.generator.trainable_variables
        start = [tf.identity(v) for v in (*d_vars, *g_vars)]  # w_t
        d_grads, g_grads, values = self._gradients_here(idx, z_fake, z_gen)
        self.d_opt.apply(d_grads, d_vars)  # the extrapolation: w_half
        self.g_opt.apply(g_grads, g_vars)
        d_grads, g_grads, _ = self._gradients_here(idx, z_fake, z_gen)
        for v, w in zip((*d_vars, *g_vars), start, strict=True):
            v.assign(w)  # back to w_t ...
        self.d_opt.apply(d_grads, d_vars)  # ... and the step with the gradients of w_half
        self.g_opt.apply(g_grads, g_vars)
        return values

    def _step_function(self):
        t = self.exp.train
        if t.update == "simultaneous":
            return self._train_step_simultaneous
        if t.update == "extragradient":
            return self._train_step_extragradient
        return self._train_step if t.d_steps == 1 else self._train_step_d_steps

    def _train_block(self, n, idx, z_fake, z_gen):
        """Iterations 0..n-1 of a block in one compiled call (n <= self.block).

        A graph loop amortises the per-call dispatch cost (-4% per iteration on the
        reference model, -14% on the bundled faces); the values are bit-identical to
        one call per iteration, so the block size is not part of a run's identity.
        """
        tf = self._tf
        out = tf.TensorArray(tf.float32, size=self.block)

        step = self._step_function()

        def body(i, out):
            return i + 1, out.write(i, step(idx[i], z_fake[i], z_gen[i]))

        _, out = tf.while_loop(lambda i, _: i < n, body, (tf.constant(0), out), maximum_iterations=self.block)
        return out.stack()

    def trace(self) -> str:
        """Trace the compiled step now, for the block shapes ``run_block`` feeds it (no compile yet);
        returns the traced function's name."""
        tf, t, m = self._tf, self.exp.train, self.exp.model
        half = t.batch_size // 2
        k = [t.d_steps] if t.d_steps > 1 else []  # one D batch per D update
        return self._block.get_concrete_function(
            tf.TensorSpec([], tf.int32), tf.TensorSpec([self.block, *k, half], tf.int32),
            tf.TensorSpec([self.block, *k, half, m.latent_dim], tf.float32),
            tf.TensorSpec([self.block, t.batch_size, m.latent_dim], tf.float32)).name.decode()

    def run_block(self, first: int, n: int) -> np.ndarray:
        """Run iterations ``first .. first+n-1`` (1-based); return (n, len(STEP_METRICS)) float64 values."""
        t = self.exp.train
        inputs = [step_inputs(self.seed, s, self.n_images, t.batch_size, self.exp.model.latent_dim, self.exp.model.latent,
                              t.d_steps) for s in range(first, first + n)]
        # pad to the compiled block size: one trace serves every block length
        inputs += [tuple(np.zeros_like(a) for a in inputs[0])] * (self.block - n)
        idx, z_fake, z_gen = (np.stack(parts) for parts in zip(*inputs, strict=True))
        values = self._block(self._tf.constant(n, self._tf.int32), idx, z_fake, z_gen).numpy()
        return values[:n].astype(np.float64)

    def step(self, step: int) -> np.ndarray:
        """Run iteration ``step`` (1-based) alone; return its STEP_METRICS values as float64."""
        return self.run_block(step, 1)[0]

    def generate(self, z: np.ndarray) -> np.ndarray:
        return self._generate(z).numpy()

    def d_features(self, x: np.ndarray) -> np.ndarray:
        """D's last hidden layer (inference mode): the 2-unit layer of the 2-D toy is plotted."""
        return self._d_features(x, training=False).numpy()

    def reseed(self, exp: Experiment, images: np.ndarray, seed: int) -> None:
        """Become exactly what ``GanTrainer(exp, self.spec, images, seed)`` would be, keeping the traced
        (and XLA-compiled) step: a fresh trainer's initial weights and optimizer slots are copied into
        this one's variables, which the compiled step reads. Saves the trace/compile per seed."""
        key = (exp.identity(self.spec), unlabelled(self.spec), seed)
        entry = _INITIAL.get(key)
        if entry is not None and (entry[0] is images or np.array_equal(entry[0], images)):

            _INITIAL.move_to_end(key)
            seed_keras(seed)  # the global seeding a fresh build does (nothing draws from it after)
            state = entry[1]
        else:
            state = GanTrainer(exp, self.spec, images, seed).get_state()
            _INITIAL[key] = (images, state)
            while len(_INITIAL) > 1 and sum(sum(a.nbytes for a in st) for _, st in _INITIAL.values()) > INITIAL_BYTES:
                _INITIAL.popitem(last=False)
        self.set_state(state)
        self.exp, self.seed = exp, seed

    # --- state, for checkpoints: every variable of both networks and both optimizers, in a fixed order
    def _variables(self) -> list:
        return [*self.generator.variables, *self.discriminator.variables, *self.g_opt.variables, *self.d_opt.variables]

    def nbytes(self) -> int:
        """What the trainer holds: its variables and its copy of the training images."""
        return self.images.shape.num_elements() * 4 + sum(math.prod(v.shape) * np.dtype(v.dtype).itemsize
                                                            for v in self._variables())

    def state_names(self) -> list[str]:
        """A name per state array, the same in every process."""
        nets = [f"generator/{v.path}" for v in self.generator.variables]
        nets += [f"discriminator/{v.path}" for v in self.discriminator.variables]
        opts = [v.path for opt in (self.g_opt, self.d_opt) for v in opt.variables]  # named per network (optimizers.build)
        return nets + opts

    def get_state(self) -> list[np.ndarray]:
        return [np.asarray(v.numpy()) for v in self._variables()]

    def set_state(self, values: list[np.ndarray]) -> None:
        variables = self._variables()
        if len(values) != len(variables):
            raise ValueError(f"checkpoint holds {len(values)} arrays, model needs {len(variables)}")
        for var, val in zip(variables, values, strict=True):
            if tuple(var.shape) != tuple(val.shape):
                raise ValueError(f"checkpoint array for {var.path} has shape {val.shape}, expected {tuple(var.shape)}")
            var.assign(val)


_TRAINERS: OrderedDict = OrderedDict()  # a process's most recent trainers, for reuse across seeds and runs
# Kept while they hold at most this much (and always the last _KEEP): a process that runs the same
# (experiment, optimizer) again (the next seed, the next run in a notebook or a test suite, a sweep's rerun) traces
# and compiles nothing again; each kept trainer holds its networks, its optimizers' slots, its copy of the images and
# its traced step (GanTrainer.nbytes: the smoke experiment's ~0.3 MB, the reference experiment's ~100 MB).
TRAINER_BYTES, TRAINER_COUNT = 512 << 20, 64  # (the count bounds what nbytes leaves out: graphs, compiled code)
# the initial state of the most recent (experiment, optimizer, seed)s: a process that trains the same seeds
# again (a test suite, a notebook, the next run) copies it instead of building a fresh trainer per seed
_INITIAL: OrderedDict = OrderedDict()
INITIAL_BYTES = 256 << 20  # at most this much of them kept (the smoke experiment's take ~0.2 MB each)
_KEEP = 2  # at least; as many as an experiment has optimizers after warm_up()


def _from_keras(method) -> bool:
    module = getattr(method, "__module__", "") or ""
    return module == "keras" or module.startswith("keras.")


def unlabelled(spec: OptimizerSpec) -> str:
    """The optimizer as the compiled step sees it: its label names the pair, nothing in the networks."""
    return repr(replace(spec, label=""))


def trainer_for(exp: Experiment, spec: OptimizerSpec, images: np.ndarray, seed: int,
                state: list[np.ndarray] | None = None) -> GanTrainer:
    """A trainer for (experiment, optimizer, seed), at its initial state or at ``state`` (a checkpoint):
    the process's trainer of the same experiment and optimizer when there is one (pairs run optimizer by
    optimizer, so each optimizer's step is traced once per process instead of once per seed); otherwise
    a new one. A checkpoint sets every variable, so it needs no fresh initial state first."""
    # keyed by what the pair trains with: a run of another optimizer list, another length or seeds, or the same
    # optimizer under another label (a sweep's rerun of its best trial) shares the trace
    key = (exp.identity(spec), exp.train.steps_per_call, unlabelled(spec))
    entry = _TRAINERS.get(key)
    if entry is not None and (entry[0] is images or np.array_equal(entry[0], images)):
        _TRAINERS.move_to_end(key)
        trainer = entry[1]
        trainer.spec = spec
        if state is None:
            trainer.reseed(exp, images, seed)
        else:
            trainer.set_state(state)
            trainer.exp, trainer.seed = exp, seed
        return trainer
    trainer = GanTrainer(exp, spec, images, seed)
    if state is not None:
        trainer.set_state(state)
    _TRAINERS[key] = (images, trainer, trainer.nbytes())
    while len(_TRAINERS) > _KEEP and (len(_TRAINERS) > TRAINER_COUNT
                                      or sum(entry[2] for entry in _TRAINERS.values()) > TRAINER_BYTES):
        _TRAINERS.popitem(last=False)
    return trainer


def warm_up(exp: Experiment, images: np.ndarray) -> list[str]:
    """Build and trace every optimizer's compiled step of ``exp``, in the experiment's order, before any
    pair trains. TensorFlow names a traced function with a process-wide counter, and its persistent XLA
    cache (bench.model.xla_cache) keys compiled steps by that name: traced in one fixed order, each step
    gets the same name in every process (the next run, a resume, each --jobs worker, each Ray task), so
    each process loads the steps another compiled instead of compiling them again. Returns their names."""
    global _KEEP
    _KEEP = max(_KEEP, len(exp.optimizers))  # every optimizer's trainer kept: the next run in this process
    if not exp.train.jit_compile:            # (a test, a notebook) traces nothing again
        return []  # nothing to load without XLA
    names = []
    for spec in exp.optimizers:
        try:
            trainer = trainer_for(exp, spec, images, exp.seeds[0])
            _align_function_names()  # after the build: its first-time setup draws names differently per process
            names.append(trainer.trace())
        except Exception:  # noqa: BLE001 - a user's update step that fails to trace fails its pairs, which say why
            _align_function_names()  # the next optimizer's step keeps its name in every process
            names.append("")
    return names


NAME_STRIDE = 1 << 20


def _align_function_names(stride: int = NAME_STRIDE) -> None:
    """Move TensorFlow's process-wide naming counter on to the next multiple of ``stride``: a process
    that has done different work before (checked optimizers, loaded data) then traces the same steps
    under the same names as any other. About 0.2 s; a no-op if TensorFlow's internals have changed."""
    try:
        from tensorflow.python.framework import ops
    except ImportError:  # pragma: no cover - a TensorFlow without this module: names just differ
        return
    current = ops.uid()
    for _ in range((-current - 1) % stride):
        ops.uid()


@dataclass
class LoopResult:
    status: str  # "finished", "diverged", or "interrupted" (stopped between blocks, at a checkpoint)
    last_step: int
    diverged_at: int | None = None
    train_seconds: float = 0.0  # time inside the compiled step only


def run_loop(
    trainer: GanTrainer,
    start_step: int,
    steps: int,
    on_row: Callable[[int, np.ndarray, float], None],
    on_sample: Callable[[int], None],
    on_checkpoint: Callable[[int], None],
    sample_every: int,
    checkpoint_every: int,
    progress=None,
    should_stop: Callable[[], bool] | None = None,
    on_block: Callable[[int, float], None] | None = None,
) -> LoopResult:
    """Iterations ``start_step + 1 .. steps``; stops at the first non-finite loss.

    ``on_row(step, values, step_seconds)`` gets every iteration; ``on_sample(step)`` and
    ``on_checkpoint(step)`` fire at their intervals and at the last step. Iterations run in
    blocks that never cross a sample or checkpoint step, so both see exact states.
    ``should_stop()`` is asked after every block: when it says so, the loop checkpoints where it
    is and returns "interrupted" (a resumed run continues bit-identically from there).
    ``on_block(iterations, seconds)`` gets each block's timing.
    """
    train_seconds = 0.0
    step = start_step
    while step < steps:
        first = step + 1
        last = min(step + trainer.block, steps,
                   (step // sample_every + 1) * sample_every, (step // checkpoint_every + 1) * checkpoint_every)
        t0 = time.perf_counter()
        block = trainer.run_block(first, last - first + 1)
        dt = time.perf_counter() - t0
        train_seconds += dt
        if on_block is not None:
            on_block(len(block), dt)
        per_row = dt / len(block)
        for step, values in enumerate(block, start=first):
            on_row(step, values, per_row)
            if progress is not None:
                progress(step, values)
            if not np.all(np.isfinite(values[: len(LOSSES)])):
                # later rows of the block trained on NaN weights: they are not written
                return LoopResult("diverged", step, step, train_seconds)
        if step % sample_every == 0 or step == steps:
            on_sample(step)
        stop = step < steps and should_stop is not None and should_stop()
        if step % checkpoint_every == 0 or step == steps or stop:
            on_checkpoint(step)
        if stop:
            return LoopResult("interrupted", step, None, train_seconds)
    return LoopResult("finished", steps, None, train_seconds)
