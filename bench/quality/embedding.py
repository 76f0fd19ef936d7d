"""A fixed, randomly initialised convolutional embedding of images (numpy only, no download).

Naeem et al. (2020) found that a randomly initialised network embeds images usably for fidelity and
diversity measures where no pretrained network fits the data; bench needs one that knows nothing of
ImageNet and installs nowhere. Three 3x3 convolutions (He-normal weights from a fixed seed, ReLU, 2x2
average pooling between them); the features of an image are, for every layer and channel, its mean and
standard deviation over the image and its mean over each cell of a 3x3 grid (so that the arrangement of
a face, not only its textures, counts: swirled or half-covered faces move the features).

The same seed gives the same network on every machine and in every run: scores of two runs compare.
Float32 throughout, in batches (on as many threads as the scorer has cores), each on one BLAS thread (the
scorer's): identical results for any core count.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

SEED = 20_240_607  # fixed forever: changing it changes every score (bump VERSION with it)
WIDTHS = (16, 32, 64)
GRID = 3
BATCH = 64
VERSION = 1  # part of the validation cache's key: a new embedding is validated again


class RandomEmbedding:
    def __init__(self, channels: int, seed: int = SEED, widths: tuple[int, ...] = WIDTHS, grid: int = GRID,
                 threads: int = 1):
        rng = np.random.default_rng([seed, channels])
        self.grid, self.threads = grid, max(1, threads)
        self._pools: dict[tuple[int, int], np.ndarray] = {}
        self._buffers: dict[tuple[int, str, tuple[int, ...]], np.ndarray] = {}
        self._lock = threading.Lock()  # the buffers: one call at a time
        self.weights = []
        c = channels
        for k in widths:
            w = rng.standard_normal((3, 3, c, k)) * np.sqrt(2.0 / (9 * c))  # He-normal: activations keep their scale
            self.weights.append(w.reshape(9 * c, k).astype(np.float32))
            c = k

    def _features(self, x: np.ndarray, slot: int) -> np.ndarray:
        n = len(x)
        feats = []
        for i, w in enumerate(self.weights):
            h, wd, c = x.shape[1:]
            cols, y = self._buffer(slot, "cols", (n, h, wd, 3, 3, c)), self._buffer(slot, f"y{i}", (n * h * wd, w.shape[1]))
            padded = self._reflected(x, slot)
            # every 3x3 neighbourhood as one row: (n, h, w, c, 3, 3) -> (n*h*w, 9c) in the weights' order
            np.copyto(cols, sliding_window_view(padded, (3, 3), axis=(1, 2)).transpose(0, 1, 2, 4, 5, 3))
            np.matmul(cols.reshape(n * h * wd, 9 * c), w, out=y)
            np.maximum(y, 0, out=y)
            y = y.reshape(n, h * wd, -1)
            # the channel means over the image and over each grid cell, and the mean squares, as one batched
            # product (numpy's reductions over the middle axes of this array are several times slower)
            pool = self._pooling(h, wd)
            means = pool @ y  # (n, 1 + cells, k)
            squares = pool[:1] @ np.multiply(y, y, out=self._buffer(slot, "square", y.shape))
            feats += [means[:, 0], np.sqrt(np.maximum(squares[:, 0] - means[:, 0] ** 2, 0)),
                      means[:, 1:].reshape(n, -1)]
            y = y.reshape(n, h, wd, -1)
            if i < len(self.weights) - 1 and min(h, wd) >= 2 * self.grid:
                h2, w2 = h // 2 * 2, wd // 2 * 2
                # 0.25 * (((a + b) + c) + d), in place in a kept buffer: the same operations in the same order
                avg = np.add(y[:, 0:h2:2, 0:w2:2], y[:, 1:h2:2, 0:w2:2],
                             out=self._buffer(slot, f"pooled{i}", (n, h2 // 2, w2 // 2, y.shape[-1])))
                avg += y[:, 0:h2:2, 1:w2:2]
                avg += y[:, 1:h2:2, 1:w2:2]
                avg *= np.float32(0.25)
                y = avg
            x = y
        return np.concatenate(feats, axis=1)

    def _reflected(self, x: np.ndarray, slot: int) -> np.ndarray:
        """``np.pad(x, 1 pixel, mode="reflect")`` into a kept buffer (edges mirrored without repeating them)."""
        n, h, w, c = x.shape
        out = self._buffer(slot, "padded", (n, h + 2, w + 2, c))
        out[:, 1:-1, 1:-1] = x
        out[:, 0, 1:-1], out[:, -1, 1:-1] = x[:, 1], x[:, -2]
        out[:, :, 0], out[:, :, -1] = out[:, :, 2], out[:, :, -3]
        return out

    def _buffer(self, slot: int, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """A work array kept from call to call. The embedding's intermediates are megabytes; allocated afresh
        at every evaluation, between training steps that use the memory meanwhile, their pages fault in anew
        (thousands of faults, a third of the embedding's time during a run). Same values: only where they live
        changes. One set per thread (slot)."""
        key = (slot, name, shape)
        buf = self._buffers.get(key)
        if buf is None:
            buf = self._buffers[key] = np.empty(shape, np.float32)
        return buf

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
        """(N, H, W, C) images in [-1, 1] -> (N, D) float64 features.

        The batches are shared out in contiguous runs, one per thread (numpy's products and copies release
        the GIL): every batch is computed as on one thread, so the features do not depend on the thread count."""
        images = np.asarray(images, np.float32)
        starts = list(range(0, len(images), BATCH))
        shares = [list(s) for s in np.array_split(starts, min(self.threads, len(starts))) if len(s)]

        def run(slot: int) -> list[np.ndarray]:
            return [self._features(images[i: i + BATCH], slot) for i in shares[slot]]

        with self._lock:
            if len(shares) == 1:
                parts = run(0)
            else:
                with ThreadPoolExecutor(len(shares)) as pool:
                    parts = [f for share in pool.map(run, range(len(shares))) for f in share]
            return np.concatenate(parts).astype(np.float64)
