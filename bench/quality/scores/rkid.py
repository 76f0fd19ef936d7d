"""Kernel (KID-style) distance in the same random convolutional embedding as RFD."""

from __future__ import annotations

import numpy as np

from bench.quality.metrics import kernel_distance
from bench.quality.scores.base import Batch, Info, Metric


class RandomKernel(Metric):
    info = Info("rkid", "kernel distance, random conv features ↓", "RKID ↓", 3, "min", margin=0.05, images_only=True,
                about="unbiased cubic-kernel MMD^2 (the KID estimator) in RFD's random embedding, features centred "
                      "and scaled by the real images' (may be < 0)")

    def score(self, batch: Batch) -> dict[str, float]:
        centre, s = self.ref.embedding.mean(axis=0), self.ref.embedding_scale
        real = (self.ref.embedding - centre) / s
        fake = (batch.embedding - centre) / s
        return {"rkid": kernel_distance(real, fake) if np.isfinite(fake).all() else float("nan")}
