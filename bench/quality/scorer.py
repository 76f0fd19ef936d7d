"""One evaluation of samples against a run's fixed real images: every quality metric at once."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from bench.core import streams
from bench.core.config import Experiment
from bench.quality.metrics import (
    PCA,
    SWD,
    NearestTrain,
    coverage,
    frechet_distance,
    kernel_distance,
    knn_radius,
    mean_pairwise,
    memorisation,
    train_nn_distance,
)


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class Evaluator:
    """Everything fixed per run (real subset, its pyramid and sorted SWD projections, PCA, nearest-neighbour
    radii, training-set norms), computed once; ``__call__`` scores samples."""

    def __init__(self, train: np.ndarray, real_count: int, pca_dims: int, seed: int, patches_per_image: int = 64,
                 threads: int | None = None):
        with threadpool_limits(1):  # see __call__
            self._setup(train, real_count, pca_dims, seed, patches_per_image, threads or _cores())

    def _setup(self, train: np.ndarray, real_count: int, pca_dims: int, seed: int, patches_per_image: int,
               threads: int) -> None:
        rng = streams.rng(seed, streams.EVAL_REAL)
        pick = rng.choice(len(train), size=min(real_count, len(train)), replace=False)
        self.real = train[np.sort(pick)]
        self.train = train
        self.seed = seed
        self.swd = SWD(self.real, seed, patches_per_image, threads) if self.real.ndim == 4 else None  # patches: images
        self.pca = PCA.fit(self.real, min(pca_dims, len(self.real) - 1, self.real[0].size))
        self.real_features = self.pca(self.real)
        self.real_diversity = mean_pairwise(self.real)
        self.radius = knn_radius(self.real)
        self.nearest_train = NearestTrain(train)
        self.train_nn = train_nn_distance(train, seed=seed)
        # more scorers (e.g. FID from local weights): (their metric names, fake images -> {metric: value})
        self.extras: list = []

    def names(self) -> list[str]:
        """Every metric one evaluation writes, in order (also when the samples are not finite)."""
        out = list(self.swd.names) if self.swd is not None else []  # SWD per pyramid level, then their mean
        out += ["fd_pca", "kid_pca", "coverage", "diversity", "memorisation"]
        return out + [n for names, _ in self.extras for n in names]

    def __call__(self, fake: np.ndarray) -> tuple[dict[str, float], float]:
        """(metric -> value, seconds spent)."""
        t0 = time.perf_counter()
        if not np.isfinite(fake).all():  # G has blown up: nothing to score, every metric is NaN
            return dict.fromkeys(self.names(), float("nan")), time.perf_counter() - t0
        # One BLAS thread: a multi-threaded matmul sums in an order that depends on the thread count
        # (last digits differ), and Ray sets one per CPU it grants; this makes the scores the same under
        # every executor and core count, for ~5% more scoring time.
        with threadpool_limits(1):
            out = self._score(fake)
        return out, time.perf_counter() - t0

    def noise_scores(self, count: int) -> dict[str, float]:
        """Every metric of ``count`` samples of uniform noise over the real set's range per channel: the
        "random generator" that normalised scores across experiments count as 0 (rliable's random baseline).
        Unlike the untrained generator (a nearly constant image under batch norm's initial statistics,
        which SWD ranks better than early training), it is the same for every optimizer and seed."""
        rng = streams.rng(self.seed, streams.EVAL_NOISE)
        axes = tuple(range(self.real.ndim - 1))  # per channel (per coordinate for points): [-1, 1] for images
        low, high = self.real.min(axis=axes), self.real.max(axis=axes)
        noise = (low + (high - low) * rng.random((count, *self.real.shape[1:]))).astype(self.real.dtype)
        return self(noise)[0]

    def _score(self, fake: np.ndarray) -> dict[str, float]:
        feats = self.pca(fake)
        out = self.swd(fake) if self.swd is not None else {}
        out.update({
            "fd_pca": frechet_distance(self.real_features, feats),
            "kid_pca": kernel_distance(self.real_features, feats),
            "coverage": coverage(self.real, fake, radius=self.radius),
            "diversity": mean_pairwise(fake) / self.real_diversity,
            "memorisation": memorisation(self.train, fake, self.train_nn, self.nearest_train),
        })
        for _, extra in self.extras:
            out.update(extra(fake))
        return out


def make_evaluator(exp: Experiment, images: np.ndarray) -> Evaluator | None:
    """The run's sample-quality scorer (None when disabled): fixed real subset, PCA, optional FID."""
    if not exp.eval.enabled:
        return None
    evaluator = Evaluator(images, exp.eval.real, exp.eval.pca_dims, exp.eval.seed, exp.eval.patches_per_image)
    if exp.eval.fid_weights:
        from bench.quality.fid import fid_scorer

        evaluator.extras.append((("fid",), fid_scorer(Path(exp.eval.fid_weights), evaluator.real)))
    return evaluator
