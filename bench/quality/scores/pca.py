"""Fréchet and kernel distances on a PCA of the real images' pixels."""

from __future__ import annotations

from bench.quality.metrics import frechet_distance, kernel_distance
from bench.quality.scores.base import Batch, Info, Metric


class PcaFrechet(Metric):
    info = Info("fd_pca", "Frechet distance, PCA ↓", "FD-PCA ↓", 2, "min", positive=True, column=True, trend=True,
                about="Fréchet distance on a PCA of the real images' pixels (eval.pca_dims components)")

    def score(self, batch: Batch) -> dict[str, float]:
        return {"fd_pca": frechet_distance(self.ref.pca_features, batch.pca_features)}


class PcaKernel(Metric):
    info = Info("kid_pca", "kernel distance, PCA ↓", "KID-PCA ↓", 3, "min", column=True, trend=True, margin=0.01,
                about="unbiased cubic-kernel MMD^2 (the KID estimator) on the same PCA (may be < 0)")

    def score(self, batch: Batch) -> dict[str, float]:
        return {"kid_pca": kernel_distance(self.ref.pca_features, batch.pca_features)}
