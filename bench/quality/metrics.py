"""Sample-quality metrics that need no pretrained network (numpy/scipy only).

- ``swd``: sliced Wasserstein distance between Laplacian-pyramid patch descriptors (the
  progressive-GAN method: 7x7 patches, per-channel normalisation, random projections, per
  level and averaged), adapted to small images by stopping the pyramid at 8 pixels.
- ``fd_pca`` / ``kid_pca``: Frechet distance and unbiased kernel (KID-style, cubic polynomial)
  MMD^2 on a PCA of the real evaluation images, fitted once per run.
- ``coverage``: fraction of real images whose 5-nearest-neighbour ball holds a sample
  (low = modes missed; mode collapse); ``diversity``: mean pairwise distance of samples
  relative to the real images'.
- ``memorisation``: median over the samples given (the scorer gives it a fixed part of the bank) of
  (distance to the nearest training image) / (median nearest-neighbour distance among training images);
  near 0 = copies.

All inputs are float arrays (N, H, W, C) in [-1, 1]. Every random choice takes a seed.
"""

from __future__ import annotations

import functools
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

PATCH = 7
MIN_LEVEL = 8  # smallest pyramid level side (the paper stops at 16; our images are 12-28 px)
SWD_DIRECTIONS = 64  # 128 random directions in all (fixed per run, so every sample set meets the same ones): within
# 10% of a 1024-direction estimate on the faces, at a quarter of the cost of 512 (SWD is a diagnostic; RFD is the
# primary metric)
SWD_REPEATS = 2
KNN = 5


# ------------------------------------------------------------------ SWD


@functools.cache
def _linear_zoom(size_in: int, size_out: int) -> np.ndarray:
    """The (out, in) weights of ``ndimage.zoom(..., order=1, mode="nearest")`` along one axis, taken from
    scipy itself (the zoom of each unit vector): applied as two small matrix products, the same
    interpolation costs a fraction of scipy's general spline code on a stack of images."""
    return ndimage.zoom(np.eye(size_in), (size_out / size_in, 1), order=1, mode="nearest").astype(np.float32)


def laplacian_pyramid(images: np.ndarray) -> list[np.ndarray]:
    """Levels finest first; each level is image - upsample(downsample(image)), the last the residual.

    float32: the levels feed random patches and projections whose noise is orders of magnitude above
    float32's rounding."""
    levels, current = [], np.asarray(images, np.float32)
    while min(current.shape[1:3]) // 2 >= MIN_LEVEL:
        blurred = ndimage.gaussian_filter(current, sigma=(0, 1, 1, 0), mode="reflect")
        small = blurred[:, ::2, ::2]
        n, h, w, c = small.shape
        rows, cols = _linear_zoom(h, current.shape[1]), _linear_zoom(w, current.shape[2])
        up = np.matmul(rows, small.reshape(n, h, w * c)).reshape(n * len(rows), w, c)  # along the height
        up = np.matmul(cols, up).reshape(current.shape)  # along the width
        levels.append(current - up)
        current = small
    levels.append(current)
    return levels


def patch_index(shape: tuple[int, ...], per_image: int, rng: np.random.Generator) -> np.ndarray:
    """Flat indices of ``per_image`` random PATCHxPATCHxC patches per image of a (N, H, W, C) level: one
    ``take`` gathers all descriptors, shape (N * per_image, size * size, C)."""
    n, h, w, c = shape
    size = min(PATCH, h, w)
    ys = rng.integers(0, h - size + 1, size=(n, per_image))
    xs = rng.integers(0, w - size + 1, size=(n, per_image))
    dy, dx = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    rows = ys[..., None, None] + dy  # (n, p, size, size)
    cols = xs[..., None, None] + dx
    pixel = (np.arange(n)[:, None, None, None] * h + rows) * w + cols
    return (pixel[..., None] * c + np.arange(c)).reshape(n * per_image, size * size, c)


def _directions(dim: int, rng: np.random.Generator, repeats: int = SWD_REPEATS,
                count: int = SWD_DIRECTIONS) -> list[np.ndarray]:
    out = []
    for _ in range(repeats):
        d = rng.standard_normal((dim, count))
        out.append((d / np.sqrt((d ** 2).sum(axis=0, keepdims=True))).astype(np.float32))
    return out


def _sorted_projection(desc: np.ndarray, d: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Each direction's projections of the descriptors, sorted: (directions, n), computed as d^T desc^T so
    that every row is contiguous (sorting rows reads memory in order; no transposed copy)."""
    proj = np.matmul(d.T, desc.T, out=out)
    proj.sort(axis=1)
    return proj


def _sorted_projections(desc: np.ndarray, directions: list[np.ndarray]) -> list[np.ndarray]:
    return [_sorted_projection(desc, d) for d in directions]


def sliced_wasserstein(a: np.ndarray, b: np.ndarray, rng: np.random.Generator,
                       directions: int = SWD_DIRECTIONS, repeats: int = SWD_REPEATS) -> float:
    """Mean over random unit directions of the 1-D Wasserstein-1 distance of the projections."""
    n = min(len(a), len(b))
    dirs = _directions(a.shape[1], rng, repeats, directions)
    pa = _sorted_projections(np.asarray(a[:n], np.float32), dirs)
    pb = _sorted_projections(np.asarray(b[:n], np.float32), dirs)
    return float(np.mean([_w1(x, y) for x, y in zip(pa, pb, strict=True)]))


def _w1(sorted_a: np.ndarray, sorted_b: np.ndarray, out: np.ndarray | None = None) -> float:
    """Mean 1-D Wasserstein-1 distance between equal-size sorted samples, row by row (float64 sum)."""
    diff = np.subtract(sorted_a, sorted_b, out=out)
    return float(np.abs(diff, out=diff).mean(dtype=np.float64))


@dataclass
class _Level:
    index: np.ndarray  # the real patches' flat indices
    mean: np.ndarray  # the real descriptors' per-channel mean and standard deviation
    std: np.ndarray
    directions: list[np.ndarray]  # unit directions, (dim, SWD_DIRECTIONS) per repeat
    real: np.ndarray  # normalised real descriptors (n * per_image, size * size * C)
    sorted_real: dict[int, list[np.ndarray]]  # descriptor count -> sorted projections of the first ones
    scaled: list[np.ndarray]  # the directions divided by the std: raw samples' descriptors project as normalised ones
    offset: list[np.ndarray]  # ... shifted by the mean's projection, which moves every projection alike


class SWD:
    """Sliced Wasserstein distance of sample sets against one fixed real set: 7x7 patches of each
    Laplacian-pyramid level, projected on random unit directions (the progressive-GAN method, stopping
    at 8 pixels for small images); x1e3 per level, and their mean.

    Both sets' descriptors are normalised with the *real* set's per-channel statistics. The
    progressive-GAN code normalises each set by its own, which makes the distance blind to contrast:
    on the reference model it ranked colour-noise samples (coverage 0) best. With one normalisation,
    noise, blur and collapse all score worse than held-out real images (tests/test_metrics.py).

    Everything about the real set is computed once: its pyramid, its patch descriptors, their
    normalisation (folded into the directions), and the sorted real projections. An evaluation builds
    the samples' pyramid, gathers their patches (positions fixed per sample count), projects and sorts
    them, the levels and (level, repeat) jobs on as many threads as the process has cores: each job is
    the same arithmetic on any thread, so the scores do not depend on the thread count."""

    def __init__(self, real: np.ndarray, seed: int, per_image: int = 64, threads: int = 1):
        self.seed, self.per_image, self.threads = seed, per_image, max(1, threads)
        self.count = len(real)  # samples scored: as many as real images (equal counts, W1 of sorted projections)
        self.levels: list[_Level] = []
        self._fake_index: dict[tuple, np.ndarray] = {}
        # Work arrays kept from call to call, one per job (jobs run on threads): allocated afresh at every
        # evaluation, between training steps, their megabytes of pages fault in anew each time (a sixth of the
        # SWD's time during a run). Same operations, same values.
        self._buffers: dict[tuple, np.ndarray] = {}
        self._lock = threading.Lock()  # the buffers: one call at a time
        for i, level in enumerate(laplacian_pyramid(real)):
            index = patch_index(level.shape, per_image, np.random.default_rng([seed, i]))
            desc = level.reshape(-1)[index]
            mean = desc.mean(axis=(0, 1), dtype=np.float64).astype(np.float32)
            std = (desc.std(axis=(0, 1), dtype=np.float64) + 1e-8).astype(np.float32)
            normalised = ((desc - mean) / std).reshape(len(desc), -1)
            dirs = _directions(normalised.shape[1], np.random.default_rng([seed, i, 2]))
            inv = np.tile(1 / std, desc.shape[1])  # per feature of a flattened (size * size, C) descriptor
            shift = np.tile(mean, desc.shape[1]) * inv
            self.levels.append(_Level(index, mean, std, dirs, normalised, {}, [d * inv[:, None] for d in dirs],
                                      [shift @ d for d in dirs]))
        self.names = [f"swd_{lv.shape[1]}px" for lv in laplacian_pyramid(real[:1])] + ["swd"]

    def _buffer(self, key: tuple, shape: tuple[int, ...]) -> np.ndarray:
        """Each job has its own key, so threads never share a buffer (and a dict item set is atomic)."""
        buf = self._buffers.get((key, shape))
        if buf is None:
            buf = self._buffers[key, shape] = np.empty(shape, np.float32)
        return buf

    def _raw_descriptors(self, i: int, level: np.ndarray) -> np.ndarray:
        key = (i, level.shape)
        if key not in self._fake_index:  # the samples' patch positions: the same at every evaluation
            self._fake_index[key] = patch_index(level.shape, self.per_image, np.random.default_rng([self.seed, i, 1]))
        index = self._fake_index[key]
        out = np.take(level.reshape(-1), index, out=self._buffer(("descriptors", i), index.shape))
        return out.reshape(-1, self.levels[i].real.shape[1])

    def _reference(self, i: int, n: int) -> list[np.ndarray]:
        """The first n real descriptors' sorted projections, shifted as the raw samples' will be."""
        ref = self.levels[i]
        if n not in ref.sorted_real:
            ref.sorted_real[n] = [p + off[:, None] for p, off in
                                  zip(_sorted_projections(ref.real[:n], ref.directions), ref.offset, strict=True)]
        return ref.sorted_real[n]

    def __call__(self, fake: np.ndarray) -> dict[str, float]:
        with self._lock:
            return self._distances(fake)

    def _distances(self, fake: np.ndarray) -> dict[str, float]:
        levels = laplacian_pyramid(fake[: self.count])  # the first samples, as many as real images

        def distance(job) -> tuple[int, float]:
            i, r, desc, d, real = job
            proj = _sorted_projection(desc, d, out=self._buffer(("projection", i, r), (d.shape[1], len(desc))))
            return i, _w1(proj, real, out=proj)

        with ThreadPoolExecutor(self.threads) as pool:  # numpy's gathers, sorts and BLAS release the GIL
            descs = list(pool.map(self._raw_descriptors, range(len(levels)), levels))
            jobs = []
            for i, desc in enumerate(descs):
                n = min(len(desc), len(self.levels[i].real))
                jobs += [(i, r, desc[:n], d, real) for r, (d, real) in
                         enumerate(zip(self.levels[i].scaled, self._reference(i, n), strict=True))]
            done = list(pool.map(distance, jobs))
        out = {name: 1e3 * float(np.mean([v for i, v in done if i == k])) for k, name in enumerate(self.names[:-1])}
        out["swd"] = float(np.mean(list(out.values())))
        return out


def swd(real: np.ndarray, fake: np.ndarray, seed: int, per_image: int = 64) -> dict[str, float]:
    """Per-level SWD (x1e3, as in the paper) and their mean, for one pair of sets."""
    return SWD(real, seed, per_image)(fake)


# ------------------------------------------------------------------ Frechet / kernel distances


@dataclass(frozen=True)
class PCA:
    """Projection on the real set's top components, scaled so the real features have unit mean
    variance per dimension (the polynomial kernel assumes features of order 1)."""

    mean: np.ndarray
    components: np.ndarray  # (k, d), already divided by the scale

    @classmethod
    def fit(cls, x: np.ndarray, dims: int) -> PCA:
        flat = x.reshape(len(x), -1).astype(np.float64)
        mean = flat.mean(axis=0)
        _, sv, vt = np.linalg.svd(flat - mean, full_matrices=False)
        k = min(dims, len(vt))
        scale = np.sqrt((sv[:k] ** 2).sum() / (len(flat) - 1) / k) or 1.0
        return cls(mean, vt[:k] / scale)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (x.reshape(len(x), -1).astype(np.float64) - self.mean) @ self.components.T


@dataclass(frozen=True)
class Features:
    """What the Fréchet distance needs of one feature set: computed once for the fixed real set, which every
    evaluation compares with (the same operations as on the spot, so the same values)."""

    mean: np.ndarray
    centred: np.ndarray
    spread: float  # Tr S: the summed squares of the centred features over n - 1

    @classmethod
    def of(cls, x: np.ndarray) -> Features:
        x = np.asarray(x, np.float64)
        mean = x.mean(axis=0)
        centred = x - mean
        return cls(mean, centred, (centred ** 2).sum() / (len(x) - 1))


def frechet_distance(a: np.ndarray | Features, b: np.ndarray | Features) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^1/2) between Gaussian fits of two feature sets.

    With A, B the centred features, S_a S_b and (A B^T)(A B^T)^T share their non-zero
    eigenvalues, so Tr (S_a S_b)^1/2 is the nuclear norm of A B^T over sqrt((n-1)(m-1)):
    exact, and an (n x m) SVD instead of a (d x d) matrix square root (2048-d FID features
    from a few hundred samples: milliseconds instead of tens of seconds, no regularisation).
    """
    fa, fb = (x if isinstance(x, Features) else Features.of(x) for x in (a, b))
    na, nb = len(fa.centred) - 1, len(fb.centred) - 1
    cross = np.linalg.svd(fa.centred @ fb.centred.T, compute_uv=False).sum() / np.sqrt(na * nb)
    mean_term = ((fa.mean - fb.mean) ** 2).sum()
    return float(mean_term + fa.spread + fb.spread - 2 * cross)


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def kernel_self_term(x: np.ndarray) -> float:
    """The unbiased mean of k(x_i, x_j), i != j: the part of the kernel distance one set gives alone."""
    m = len(x)
    kxx = polynomial_kernel(x, x)
    return (kxx.sum() - np.trace(kxx)) / (m * (m - 1))


def kernel_distance(a: np.ndarray, b: np.ndarray, a_term: float | None = None) -> float:
    """Unbiased MMD^2 with the cubic polynomial kernel (the KID estimator); about 0 for one distribution.
    ``a_term``: ``kernel_self_term(a)``, when ``a`` is a fixed set computed once for many ``b``."""
    a_term = kernel_self_term(a) if a_term is None else a_term
    return float(a_term + kernel_self_term(b) - 2 * polynomial_kernel(a, b).mean())


# ------------------------------------------------------------------ diversity, coverage, memorisation


def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    fa, fb = a.reshape(len(a), -1).astype(np.float64), b.reshape(len(b), -1).astype(np.float64)
    d2 = (fa ** 2).sum(1)[:, None] + (fb ** 2).sum(1)[None, :] - 2 * fa @ fb.T
    return np.sqrt(np.maximum(d2, 0))


def mean_pairwise(x: np.ndarray) -> float:
    d = pairwise_distances(x, x)
    iu = np.triu_indices(len(x), 1)
    return float(d[iu].mean()) if len(iu[0]) else float("nan")


def knn_radius(real: np.ndarray, k: int = KNN) -> np.ndarray:
    """Each real point's distance to its k-th nearest other real point."""
    rr = pairwise_distances(real, real)
    np.fill_diagonal(rr, np.inf)
    return np.sort(rr, axis=1)[:, min(k, len(real) - 1) - 1]


def coverage(real: np.ndarray, fake: np.ndarray, k: int = KNN, radius: np.ndarray | None = None) -> float:
    """Fraction of real points with at least one sample inside their k-NN radius (Naeem et al. 2020);
    ``radius``: the real points' radii, when computed once for many sample sets."""
    radius = knn_radius(real, k) if radius is None else radius
    nearest_fake = pairwise_distances(real, fake).min(axis=1)
    return float((nearest_fake <= radius).mean())


class NearestTrain:
    """Distances from samples to their nearest training image. The nearest one is found with float32
    products against norms computed once (a large training set is the costly part of an evaluation);
    the distance to it is then computed exactly, so a copy of a training image scores 0."""

    BLOCK = 1024  # training images per product at most: blocks on the scorer's threads
    MIN_BLOCK = 64  # and at least (below about 10 columns, BLAS takes other kernels, whose products differ)

    def __init__(self, train: np.ndarray, threads: int = 1):
        self.train = train.reshape(len(train), -1).astype(np.float32)
        self.sq = (self.train.astype(np.float64) ** 2).sum(1)
        self.threads = max(1, threads)
        # Contiguous blocks of the training set, cut by its size alone: each block's products are then the same
        # numbers on any machine, whatever its core count, so the nearest image is too. An even number of them
        # where the size allows: 5000 images in 5 blocks kept one of 2 threads busy for 3 blocks (46 ms), in 6
        # each thread takes 3 smaller ones (42 ms).
        n = len(self.train)
        count = max(1, min(2 * -(-n // (2 * self.BLOCK)), n // self.MIN_BLOCK))
        size = -(-n // count)
        self.blocks = [(i, np.ascontiguousarray(self.train[i: i + size])) for i in range(0, n, size)]

    def _nearest_in(self, f: np.ndarray, block: tuple[int, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        start, t = block
        score = self.sq[start: start + len(t)][None, :] - 2 * (f @ t.T).astype(np.float64)  # |f|^2: same per row
        at = score.argmin(axis=1)
        return start + at, score[np.arange(len(f)), at]

    def __call__(self, fake: np.ndarray) -> np.ndarray:
        f = fake.reshape(len(fake), -1).astype(np.float32)
        if self.threads > 1 and len(self.blocks) > 1:
            with ThreadPoolExecutor(min(self.threads, len(self.blocks))) as pool:
                found = list(pool.map(lambda b: self._nearest_in(f, b), self.blocks))
        else:
            found = [self._nearest_in(f, b) for b in self.blocks]
        nearest, best = found[0]
        for at, score in found[1:]:  # the first of equal scores wins, as one argmin over all columns would
            better = score < best
            nearest, best = np.where(better, at, nearest), np.where(better, score, best)
        return np.sqrt(((f.astype(np.float64) - self.train[nearest]) ** 2).sum(axis=1))


def memorisation(train: np.ndarray, fake: np.ndarray, train_nn: float, nearest: NearestTrain | None = None) -> float:
    """Median nearest-training-image distance of the samples, over the training set's own NN distance."""
    return float(np.median((nearest or NearestTrain(train))(fake)) / train_nn)


def train_nn_distance(train: np.ndarray, limit: int = 2000, seed: int = 0) -> float:
    """Median distance from a training image to its nearest other training image."""
    if len(train) > limit:
        train = train[np.random.default_rng(seed).choice(len(train), limit, replace=False)]
    d = pairwise_distances(train, train)
    np.fill_diagonal(d, np.inf)
    return float(np.median(d.min(axis=1)))
