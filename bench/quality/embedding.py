"""A fixed, randomly initialised convolutional embedding of images (numpy only, no download).

Naeem et al. (2020) found that a randomly initialised network embeds images usably for fidelity and
diversity measures where no pretrained network fits the data; bench needs one that knows nothing of
ImageNet and installs nowhere. Three 3x3 convolutions (He-normal weights from a fixed seed, ReLU, 2x2
average pooling between them); the features of an image are, for every layer and channel, its mean and
standard deviation over the image and its mean over each cell of a 3x3 grid (so that the arrangement of
a face, not only its textures, counts: swirled or half-covered faces move the features).

The same seed gives the same network on every machine and in every run: scores of two runs compare.
Float32 throughout, in batches, on one BLAS thread (the scorer's): identical results for any core count.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

SEED = 20_240_607  # fixed forever: changing it changes every score (bump VERSION with it)
WIDTHS = (16, 32, 64)
GRID = 3
BATCH = 64
VERSION = 1  # part of the validation cache's key: a new embedding is validated again


class RandomEmbedding:
    def __init__(self, channels: int, seed: int = SEED, widths: tuple[int, ...] = WIDTHS, grid: int = GRID):
        rng = np.random.default_rng([seed, channels])
        self.grid = grid
        self._pools: dict[tuple[int, int], np.ndarray] = {}
        self.weights = []
        c = channels
        for k in widths:
            w = rng.standard_normal((3, 3, c, k)) * np.sqrt(2.0 / (9 * c))  # He-normal: activations keep their scale
            self.weights.append(w.reshape(9 * c, k).astype(np.float32))
            c = k

    def _features(self, x: np.ndarray) -> np.ndarray:
        n = len(x)
        feats = []
        for i, w in enumerate(self.weights):
            h, wd, c = x.shape[1:]
            padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
            # every 3x3 neighbourhood as one row: (n, h, w, c, 3, 3) -> (n*h*w, 9c) in the weights' order
            windows = sliding_window_view(padded, (3, 3), axis=(1, 2)).transpose(0, 1, 2, 4, 5, 3)
            y = np.maximum(windows.reshape(n * h * wd, 9 * c) @ w, 0).reshape(n, h * wd, -1)
            # the channel means over the image and over each grid cell, and the mean squares, as one batched
            # product (numpy's reductions over the middle axes of this array are several times slower)
            pool = self._pooling(h, wd)
            means = pool @ y  # (n, 1 + cells, k)
            squares = pool[:1] @ (y * y)
            feats += [means[:, 0], np.sqrt(np.maximum(squares[:, 0] - means[:, 0] ** 2, 0)),
                      means[:, 1:].reshape(n, -1)]
            y = y.reshape(n, h, wd, -1)
            if i < len(self.weights) - 1 and min(h, wd) >= 2 * self.grid:
                h2, w2 = h // 2 * 2, wd // 2 * 2
                y = 0.25 * (y[:, 0:h2:2, 0:w2:2] + y[:, 1:h2:2, 0:w2:2] + y[:, 0:h2:2, 1:w2:2] + y[:, 1:h2:2, 1:w2:2])
            x = y
        return np.concatenate(feats, axis=1)

    def _pooling(self, h: int, w: int) -> np.ndarray:
        """(1 + grid^2, h*w): the mean over the image, then over each cell of the grid."""
        key = (h, w)
        if key not in self._pools:
            rows, cols = np.array_split(np.arange(h), self.grid), np.array_split(np.arange(w), self.grid)
            cells = [np.ones((h, w), bool)]
            for r in rows:
                for q in cols:
                    m = np.zeros((h, w), bool)
                    m[r[0]: r[-1] + 1, q[0]: q[-1] + 1] = True
                    cells.append(m)
            self._pools[key] = np.stack([m.reshape(-1) / m.sum() for m in cells]).astype(np.float32)
        return self._pools[key]

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W, C) images in [-1, 1] -> (N, D) float64 features."""
        images = np.asarray(images, np.float32)
        return np.concatenate([self._features(images[i: i + BATCH]) for i in range(0, len(images), BATCH)]
                              ).astype(np.float64)
