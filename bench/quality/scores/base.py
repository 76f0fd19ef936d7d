"""The interface every sample-quality metric implements, and the real-image reference they share.

A metric is a class with an ``info`` (its name, which way is better or which value is ideal, how it is
shown and compared) that is built once per run from the ``Reference`` (the real images, and whatever about
them is worth computing once: their embedding, their PCA, their nearest-neighbour radii) and then scores
one ``Batch`` of samples at a time (the batch computes shared features of the samples once for every
metric that asks). Adding a metric is one file in this package and one entry in its registry
(``bench.quality.scores.METRICS``).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar

import numpy as np

from bench.quality.embedding import RandomEmbedding
from bench.quality.metrics import PCA, NearestTrain, knn_radius, mean_pairwise, train_nn_distance


@dataclass(frozen=True)
class Info:
    """A metric as every consumer (analysis, reports, sweeps, trend checks) sees it."""

    name: str
    title: str  # plot title
    header: str  # summary-table header, with the direction arrow
    digits: int  # decimals shown in tables
    goal: str  # "min" or "max": which way is better; "ideal": the closer to ``ideal`` the better
    ideal: float = 0.0  # the best possible value (normalised scores measure the way from uniform noise to it)
    positive: bool = False  # always > 0 on real data, so two values compare as a ratio
    margin: float = 0.05  # equivalence margin of a verdict: relative (a ratio) for positive metrics, else absolute
    column: bool = False  # a column of the report's summary table
    trend: bool = False  # a `bench check` trend metric (``<name>.final``)
    images_only: bool = False  # needs (N, H, W, C) images; point data gets the others
    version: int = 1  # bump when its values change: the validation cache is keyed by it
    about: str = ""  # one line: what it measures (bench list, the README)

    @property
    def arrow(self) -> str:
        return {"min": "↓", "max": "↑"}.get(self.goal, f"→{self.ideal:g}")

    def badness(self, value: float) -> float:
        """Lower is better, for any goal: the value, its negative, or its distance from the ideal."""
        if self.goal == "min":
            return value
        if self.goal == "max":
            return -value
        return abs(value - self.ideal)


class Reference:
    """The real images a run's metrics compare with (a fixed subset of the training set), and what about
    them the metrics share, each computed on first use."""

    def __init__(self, real: np.ndarray, train: np.ndarray, seed: int, pca_dims: int = 32, patches_per_image: int = 64,
                 threads: int = 1, fid_weights: str = ""):
        self.real, self.train, self.seed = real, train, seed
        self.pca_dims, self.patches_per_image, self.threads, self.fid_weights = pca_dims, patches_per_image, threads, fid_weights
        self.images = real.ndim == 4

    @cached_property
    def embedder(self) -> RandomEmbedding:
        return RandomEmbedding(self.real.shape[-1], threads=self.threads)

    @cached_property
    def embedding(self) -> np.ndarray:
        return self.embedder(self.real)

    @cached_property
    def embedding_scale(self) -> float:
        """One scale for every feature (the real features' mean standard deviation): per-feature scaling
        would blow up features that barely vary on real images; one scalar keeps scores comparable."""
        return float(self.embedding.std(axis=0).mean()) or 1.0

    @cached_property
    def pca(self) -> PCA:
        return PCA.fit(self.real, min(self.pca_dims, len(self.real) - 1, self.real[0].size))

    @cached_property
    def pca_features(self) -> np.ndarray:
        return self.pca(self.real)

    @cached_property
    def radius(self) -> np.ndarray:
        return knn_radius(self.real)

    @cached_property
    def diversity(self) -> float:
        return mean_pairwise(self.real)

    @cached_property
    def nearest_train(self) -> NearestTrain:
        return NearestTrain(self.train, self.threads)

    @cached_property
    def train_nn(self) -> float:
        return train_nn_distance(self.train, seed=self.seed)


class Batch:
    """One set of samples being scored, with the features several metrics share computed once. Metrics score
    a batch side by side on threads: the first to ask for a shared feature computes it, the others wait for it."""

    def __init__(self, ref: Reference, samples: np.ndarray):
        self.ref, self.samples = ref, samples
        self._shared: dict[str, np.ndarray] = {}
        self._locks = {"embedding": threading.Lock(), "pca_features": threading.Lock()}

    def _once(self, name: str, compute) -> np.ndarray:
        with self._locks[name]:
            if name not in self._shared:
                self._shared[name] = compute()
            return self._shared[name]

    @property
    def embedding(self) -> np.ndarray:
        return self._once("embedding", lambda: self.ref.embedder(self.samples))

    @property
    def pca_features(self) -> np.ndarray:
        return self._once("pca_features", lambda: self.ref.pca(self.samples))


class Metric:
    """One sample-quality metric: built from the run's Reference once, then ``score(batch)`` per evaluation."""

    info: ClassVar[Info]

    def __init__(self, ref: Reference):
        self.ref = ref

    def names(self) -> list[str]:
        """Every value ``score`` returns (a metric may add parts of itself, such as SWD per pyramid level)."""
        return [self.info.name]

    def score(self, batch: Batch) -> dict[str, float]:
        raise NotImplementedError


def finite(value: float) -> float:
    return float(value) if math.isfinite(value) else math.nan
