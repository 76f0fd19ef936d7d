"""One evaluation of samples against a run's fixed real images: every registered quality metric at once."""

from __future__ import annotations

import hashlib
import os
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np
from threadpoolctl import ThreadpoolController

from bench.core import streams
from bench.core.config import Experiment
from bench.quality.scores import METRICS, Batch, Reference


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def split_real(n: int, real_count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the real images the metrics compare with (at most ``real_count``, and at most half the data)
    and of as many other images held out from them (the validation suite's "held-out real" set): both from the
    EVAL_REAL stream, sorted."""
    order = streams.rng(seed, streams.EVAL_REAL).permutation(n)
    k = max(1, min(real_count, n // 2))
    return np.sort(order[:k]), np.sort(order[k: 2 * k])


class Evaluator:
    """Everything fixed per run (the real subset and what each metric computes about it once); ``__call__``
    scores samples with every registered metric that applies (images-only ones are skipped for point
    data; FID only with local weights)."""

    # scores kept by the samples' digest (a few kB each): enough for a run's first evaluations, optimizer after
    # optimizer, to find their seed's untrained generator scored already
    MEMO = 1024

    def __init__(self, train: np.ndarray, real_count: int, pca_dims: int, seed: int, patches_per_image: int = 64,
                 threads: int | None = None, fid_weights: str = ""):
        pick, held = split_real(len(train), real_count, seed)
        self.real, self.held_out = train[pick], train[held]
        self.train, self.seed = train, seed
        self.cores = threads or _cores()
        self.reference = Reference(self.real, train, seed, pca_dims, patches_per_image, self.cores, fid_weights)
        self._pool: ThreadPoolExecutor | bool | None = None  # made at the first evaluation (see _score)
        # The BLAS and OpenMP libraries, found once: threadpoolctl's discovery scans the process's mapped
        # libraries (about 5 ms with TensorFlow loaded, an eighth of an evaluation) on every call otherwise.
        # Every library the metrics use is loaded by now (their modules are imported).
        self._threads = ThreadpoolController()
        with self._threads.limit(limits=1):  # see _score
            self.metrics = [cls(self.reference) for name, cls in METRICS.items()
                            if (self.reference.images or not cls.info.images_only) and (name != "fid" or fid_weights)]
        self._memo: OrderedDict[bytes, dict[str, float]] = OrderedDict()

    def names(self) -> list[str]:
        """Every value one evaluation writes, in order (also when the samples are not finite)."""
        return [n for m in self.metrics for n in m.names()]

    def __call__(self, fake: np.ndarray) -> tuple[dict[str, float], float]:
        """(metric -> value, seconds spent).

        Samples scored before are not scored again: every metric is a pure function of the samples, and the paired
        design makes them recur, e.g. at iteration 0, where every optimizer of a seed has the same untrained
        generator (a third of the faces run's first evaluations)."""
        t0 = time.perf_counter()
        fake = np.ascontiguousarray(fake)
        key = hashlib.sha256(memoryview(fake).cast("B")).digest() + repr((fake.shape, fake.dtype.str)).encode()
        if key in self._memo:
            self._memo.move_to_end(key)
            return dict(self._memo[key]), time.perf_counter() - t0
        out, _ = self._score(fake)
        self._memo[key] = dict(out)
        while len(self._memo) > self.MEMO:
            self._memo.popitem(last=False)
        return out, time.perf_counter() - t0

    def _score(self, fake: np.ndarray) -> tuple[dict[str, float], float]:
        t0 = time.perf_counter()
        if not np.isfinite(fake).all():  # G has blown up: nothing to score, every metric is NaN
            return dict.fromkeys(self.names(), float("nan")), time.perf_counter() - t0
        # One BLAS thread: a multi-threaded matmul sums in an order that depends on the thread count
        # (last digits differ), and Ray sets one per CPU it grants; this makes the scores the same under
        # every executor and core count, for ~5% more scoring time.
        with self._threads.limit(limits=1):
            batch = Batch(self.reference, fake)
            if self._pool:
                # Metrics side by side, on one BLAS thread each (the same operations as alone, so the same values):
                # one after the other, most of them leave the other cores idle (1.4 of 2 cores busy, 1.8 side by
                # side, on the CelebA layout). The pool goes with the evaluator (its threads end when it is freed).
                running = [self._pool.submit(m.score, batch) for m in self.metrics]
                wait(running)  # all of them, also when one fails: none goes on past the BLAS limit below
                scores = [f.result() for f in running]  # the first failure in the registry's order is raised
            else:
                scores = [m.score(batch) for m in self.metrics]
                if self._pool is None:
                    # this first call computed what each metric keeps about the real side (cached properties, which
                    # two threads must not compute at once): from now on, side by side
                    self._pool = ThreadPoolExecutor(self.cores, thread_name_prefix="bench-score") if self.cores > 1 else False
        out: dict[str, float] = {}
        for part in scores:  # in the registry's order, whichever finished first
            out.update(part)
        return out, time.perf_counter() - t0

    def noise_scores(self, count: int) -> dict[str, float]:
        """Every metric of ``count`` samples of uniform noise over the real set's range per channel: the
        "random generator" that normalised scores across experiments count as 0 (rliable's random baseline).
        Unlike the untrained generator, it is the same for every optimizer and seed."""
        rng = streams.rng(self.seed, streams.EVAL_NOISE)
        axes = tuple(range(self.real.ndim - 1))  # per channel (per coordinate for points): [-1, 1] for images
        low, high = self.real.min(axis=axes), self.real.max(axis=axes)
        noise = (low + (high - low) * rng.random((count, *self.real.shape[1:]))).astype(self.real.dtype)
        return self(noise)[0]


def make_evaluator(exp: Experiment, images: np.ndarray) -> Evaluator | None:
    """The run's sample-quality scorer (None when disabled)."""
    if not exp.eval.enabled:
        return None
    return Evaluator(images, exp.eval.real, exp.eval.pca_dims, exp.eval.seed, exp.eval.patches_per_image,
                     fid_weights=exp.eval.fid_weights)
