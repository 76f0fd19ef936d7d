"""Fréchet distance in a fixed, randomly initialised convolutional embedding (bench.quality.embedding)."""

from __future__ import annotations

from functools import cached_property

from bench.quality.metrics import Features, frechet_distance
from bench.quality.scores.base import Batch, Info, Metric


class RandomFrechet(Metric):
    info = Info("rfd", "Fréchet distance, random conv features ↓", "RFD ↓", 1, "min", positive=True, column=True,
                trend=True, images_only=True,
                about="Fréchet distance between the real images and the samples in a fixed-seed, randomly "
                      "initialised 3-layer convolutional embedding (per-channel means, spreads and 3x3-grid means), "
                      "features scaled by the real images' spread; no pretrained network")

    @cached_property
    def real(self) -> Features:  # the real side, once per run
        return Features.of(self.ref.embedding / self.ref.embedding_scale)

    def score(self, batch: Batch) -> dict[str, float]:
        return {"rfd": frechet_distance(self.real, batch.embedding / self.ref.embedding_scale)}
