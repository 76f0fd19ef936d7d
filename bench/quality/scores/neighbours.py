"""Coverage, diversity and memorisation: nearest-neighbour views of the samples in pixel space."""

from __future__ import annotations

from bench.quality.metrics import coverage, mean_pairwise, memorisation
from bench.quality.scores.base import Batch, Info, Metric


class Coverage(Metric):
    info = Info("coverage", "coverage of real images ↑", "coverage ↑", 2, "max", ideal=1.0, column=True, trend=True,
                about="share of real images with a sample inside their 5-nearest-neighbour radius (low: modes missed, "
                      "collapse; Naeem et al. 2020)")

    def score(self, batch: Batch) -> dict[str, float]:
        return {"coverage": coverage(self.ref.real, batch.samples, radius=self.ref.radius)}


class Diversity(Metric):
    info = Info("diversity", "diversity / real (ideal 1)", "diversity →1", 2, "ideal", ideal=1.0,
                about="mean pairwise distance of the samples over that of the real images: 1 is ideal, below is "
                      "collapse, above is noise")

    def score(self, batch: Batch) -> dict[str, float]:
        return {"diversity": mean_pairwise(batch.samples) / self.ref.diversity}


class Memorisation(Metric):
    # The search over the whole training set is the costliest part of an evaluation (a third of it on 5000 CelebA
    # images: 256 x 5000 products of 2352 pixels). The median of the fixed bank's first 128 samples was within 2%
    # of all 256's on every set of the validation suite on the CelebA layout, and within 1.1% (median; 6% at most)
    # on the 66 evaluations of two reference comparisons: far inside what tells copies (near 0) from new images
    # (near 1), for half the search. The same samples for every optimizer and seed: comparisons stay paired.
    SAMPLES = 128

    info = Info("memorisation", "NN distance to training / typical (ideal 1)", "memorisation →1", 2, "ideal",
                ideal=1.0, trend=True, version=2,
                about=f"the median over the first {SAMPLES} samples of a sample's distance to its nearest training "
                      "image, over the typical nearest-neighbour distance (near 0: copies; 1 is ideal; far above: "
                      "unlike any image)")

    def score(self, batch: Batch) -> dict[str, float]:
        return {"memorisation": memorisation(self.ref.train, batch.samples[: self.SAMPLES], self.ref.train_nn,
                                             self.ref.nearest_train)}
