"""FID with InceptionV3 from local weights (``--fid-weights``): only when the user provides the file."""

from __future__ import annotations

import importlib
from pathlib import Path

from bench.quality.metrics import Features, frechet_distance
from bench.quality.scores.base import Batch, Info, Metric, Reference


class Fid(Metric):
    info = Info("fid", "FID (InceptionV3, local weights) ↓", "FID ↓", 1, "min", positive=True, column=True, trend=True,
                images_only=True, about="FID, only with --fid-weights FILE (local InceptionV3 weights); never downloaded")

    def __init__(self, ref: Reference):
        # Keras only when a run scores FID: the registry (its Info) is read by reports and analysis, which must
        # never import TensorFlow, so the module that needs it is loaded by name here, at scoring time.
        fid = importlib.import_module("bench.quality.fid")
        super().__init__(ref)
        self.features = fid.feature_extractor(fid.load_inception(Path(ref.fid_weights)))
        self.real = Features.of(self.features(ref.real))  # the real side, once per run

    def score(self, batch: Batch) -> dict[str, float]:
        return {"fid": frechet_distance(self.real, self.features(batch.samples))}
