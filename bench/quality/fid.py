"""FID with InceptionV3, only from a weights file the user points at (never downloaded).

Kept apart from the other metrics because it needs Keras; they do not (bench.quality.scores.fid uses it).
With a few hundred samples FID is biased upwards (2048-d covariances from few points):
compare runs of one experiment with one ``eval.samples``, not with published FIDs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.core.errors import BenchError, first_line

INPUT = 299


def load_inception(path: Path):
    import keras

    if not path.is_file():
        raise BenchError(f"--fid-weights {path}: file not found (bench never downloads weights)")
    try:
        if path.suffix == ".keras":
            model = keras.models.load_model(path, compile=False)
        else:
            model = keras.applications.InceptionV3(include_top=False, weights=None, pooling="avg",
                                                   input_shape=(INPUT, INPUT, 3))
            model.load_weights(path)
    except Exception as e:  # noqa: BLE001 - any loading failure is the user's file, said in one line
        raise BenchError(f"--fid-weights {path}: not InceptionV3 weights Keras can load "
                         f"({first_line(e) or type(e).__name__})") from None
    if model.output_shape[-1] != 2048:
        raise BenchError(f"--fid-weights {path}: expected 2048 pooled features, the model gives {model.output_shape}")
    return model


def feature_extractor(model, batch: int = 32):
    """images (N, H, W, C) in [-1, 1] -> pooled features, resized to the model's input size."""
    import tensorflow as tf

    size = tuple(model.input_shape[1:3]) if model.input_shape[1] else (INPUT, INPUT)
    forward = tf.function(lambda x: model(x, training=False))  # one graph instead of ~300 eager layer calls

    def features(images: np.ndarray) -> np.ndarray:
        out = []
        for i in range(0, len(images), batch):
            x = tf.convert_to_tensor(images[i: i + batch], tf.float32)
            if x.shape[-1] == 1:
                x = tf.repeat(x, 3, axis=-1)
            x = tf.image.resize(x, size, method="bilinear")  # already in [-1, 1], Inception's range
            out.append(forward(x).numpy())
        return np.concatenate(out).astype(np.float64)

    return features
