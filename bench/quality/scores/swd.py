"""Sliced Wasserstein distance between Laplacian-pyramid patch descriptors (progressive GANs' method)."""

from __future__ import annotations

from bench.quality.metrics import SWD
from bench.quality.scores.base import Batch, Info, Metric, Reference


class SlicedWasserstein(Metric):
    info = Info("swd", "SWD, Laplacian patches (x1e3) ↓", "SWD ↓", 1, "min", positive=True, column=True, trend=True,
                images_only=True, version=2, about="sliced Wasserstein distance between 7x7 Laplacian-pyramid patch descriptors, "
                "both sets normalised by the real images' statistics, x1e3 (per level: swd_<N>px)")

    def __init__(self, ref: Reference):
        super().__init__(ref)
        self.swd = SWD(ref.real, ref.seed, ref.patches_per_image, ref.threads)

    def names(self) -> list[str]:
        return list(self.swd.names)  # per pyramid level, then their mean

    def score(self, batch: Batch) -> dict[str, float]:
        return self.swd(batch.samples)
