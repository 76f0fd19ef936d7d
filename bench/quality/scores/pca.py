"""Fréchet and kernel distances on a PCA of the real images' pixels."""

from __future__ import annotations

from functools import cached_property

from bench.quality.metrics import Features, frechet_distance, kernel_distance, kernel_self_term
from bench.quality.scores.base import Batch, Info, Metric


class PcaFrechet(Metric):
    info = Info("fd_pca", "Frechet distance, PCA ↓", "FD-PCA ↓", 2, "min", positive=True, column=True, trend=True,
                about="Fréchet distance on a PCA of the real images' pixels (eval.pca_dims components)")

    @cached_property
    def real(self) -> Features:  # the real side, once per run
        return Features.of(self.ref.pca_features)

    def score(self, batch: Batch) -> dict[str, float]:
        return {"fd_pca": frechet_distance(self.real, batch.pca_features)}


class PcaKernel(Metric):
    info = Info("kid_pca", "kernel distance, PCA ↓", "KID-PCA ↓", 3, "min", column=True, trend=True, margin=0.01,
                about="unbiased cubic-kernel MMD^2 (the KID estimator) on the same PCA (may be < 0)")

    @cached_property
    def real_term(self) -> float:  # the real side's kernel term, once per run
        return kernel_self_term(self.ref.pca_features)

    def score(self, batch: Batch) -> dict[str, float]:
        return {"kid_pca": kernel_distance(self.ref.pca_features, batch.pca_features, self.real_term)}
