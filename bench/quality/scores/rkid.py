"""Kernel (KID-style) distance in the same random convolutional embedding as RFD."""

from __future__ import annotations

from functools import cached_property

import numpy as np

from bench.quality.metrics import kernel_distance, kernel_self_term
from bench.quality.scores.base import Batch, Info, Metric


class RandomKernel(Metric):
    info = Info("rkid", "kernel distance, random conv features ↓", "RKID ↓", 3, "min", margin=0.05, images_only=True,
                about="unbiased cubic-kernel MMD^2 (the KID estimator) in RFD's random embedding, features centred "
                      "and scaled by the real images' (may be < 0)")

    @cached_property
    def real(self) -> tuple[np.ndarray, np.ndarray, float]:
        """The real side, once per run: the centre, the centred and scaled features, their kernel term."""
        centre = self.ref.embedding.mean(axis=0)
        real = (self.ref.embedding - centre) / self.ref.embedding_scale
        return centre, real, kernel_self_term(real)

    def score(self, batch: Batch) -> dict[str, float]:
        centre, real, term = self.real
        fake = (batch.embedding - centre) / self.ref.embedding_scale
        return {"rkid": kernel_distance(real, fake, term) if np.isfinite(fake).all() else float("nan")}
