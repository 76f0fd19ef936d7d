"""One evaluation of samples against a run's fixed real images: every quality metric at once."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from bench.core import streams
from bench.core.config import Experiment
from bench.quality.metrics import (
    MIN_LEVEL,
    PCA,
    coverage,
    frechet_distance,
    kernel_distance,
    mean_pairwise,
    memorisation,
    swd,
    train_nn_distance,
)


class Evaluator:
    """Everything fixed per run (real subset, PCA, reference statistics); ``__call__`` scores samples."""

    def __init__(self, train: np.ndarray, real_count: int, pca_dims: int, seed: int, patches_per_image: int = 64):
        with threadpool_limits(1):  # see __call__
            self._setup(train, real_count, pca_dims, seed, patches_per_image)

    def _setup(self, train: np.ndarray, real_count: int, pca_dims: int, seed: int, patches_per_image: int) -> None:
        rng = streams.rng(seed, streams.EVAL_REAL)
        pick = rng.choice(len(train), size=min(real_count, len(train)), replace=False)
        self.real = train[np.sort(pick)]
        self.train = train
        self.seed = seed
        self.patches = patches_per_image
        self.pca = PCA.fit(self.real, min(pca_dims, len(self.real) - 1, self.real[0].size))
        self.real_features = self.pca(self.real)
        self.real_diversity = mean_pairwise(self.real)
        self.train_nn = train_nn_distance(train, seed=seed)
        # more scorers (e.g. FID from local weights): (their metric names, fake images -> {metric: value})
        self.extras: list = []

    def names(self) -> list[str]:
        """Every metric one evaluation writes, in order (also when the samples are not finite)."""
        out = []
        if self.real.ndim == 4:  # SWD per pyramid level (named by its height), then their mean
            h, w = self.real.shape[1:3]
            while min(h, w) // 2 >= MIN_LEVEL:
                out.append(f"swd_{h}px")
                h, w = (h + 1) // 2, (w + 1) // 2
            out += [f"swd_{h}px", "swd"]
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

    def _score(self, fake: np.ndarray) -> dict[str, float]:
        feats = self.pca(fake)
        out = swd(self.real, fake, self.seed, self.patches) if self.real.ndim == 4 else {}  # patches need images
        out.update({
            "fd_pca": frechet_distance(self.real_features, feats),
            "kid_pca": kernel_distance(self.real_features, feats),
            "coverage": coverage(self.real, fake),
            "diversity": mean_pairwise(fake) / self.real_diversity,
            "memorisation": memorisation(self.train, fake, self.train_nn),
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
