"""Sample-quality metrics that need no pretrained network (numpy/scipy only).

- ``swd``: sliced Wasserstein distance between Laplacian-pyramid patch descriptors (the
  progressive-GAN method: 7x7 patches, per-channel normalisation, random projections, per
  level and averaged), adapted to small images by stopping the pyramid at 8 pixels.
- ``fd_pca`` / ``kid_pca``: Frechet distance and unbiased kernel (KID-style, cubic polynomial)
  MMD^2 on a PCA of the real evaluation images, fitted once per run.
- ``coverage``: fraction of real images whose 5-nearest-neighbour ball holds a sample
  (low = modes missed; mode collapse); ``diversity``: mean pairwise distance of samples
  relative to the real images'.
- ``memorisation``: median over samples of (distance to the nearest training image) /
  (median nearest-neighbour distance among training images); near 0 = copies.

All inputs are float arrays (N, H, W, C) in [-1, 1]. Every random choice takes a seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

PATCH = 7
MIN_LEVEL = 8  # smallest pyramid level side (the paper stops at 16; our images are 12-28 px)
SWD_DIRECTIONS = 128
SWD_REPEATS = 4
KNN = 5


# ------------------------------------------------------------------ SWD


def laplacian_pyramid(images: np.ndarray) -> list[np.ndarray]:
    """Levels finest first; each level is image - upsample(downsample(image)), the last the residual."""
    levels, current = [], images.astype(np.float64)
    while min(current.shape[1:3]) // 2 >= MIN_LEVEL:
        blurred = ndimage.gaussian_filter(current, sigma=(0, 1, 1, 0), mode="reflect")
        small = blurred[:, ::2, ::2]
        zoom = (1, current.shape[1] / small.shape[1], current.shape[2] / small.shape[2], 1)
        up = ndimage.zoom(small, zoom, order=1, mode="nearest")
        levels.append(current - up)
        current = small
    levels.append(current)
    return levels


def patch_descriptors(level: np.ndarray, per_image: int, rng: np.random.Generator) -> np.ndarray:
    """``per_image`` random 7x7xC patches per image, flattened, normalised per channel."""
    n, h, w, c = level.shape
    size = min(PATCH, h, w)
    ys = rng.integers(0, h - size + 1, size=(n, per_image))
    xs = rng.integers(0, w - size + 1, size=(n, per_image))
    dy, dx = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    rows = ys[..., None, None] + dy  # (n, p, size, size)
    cols = xs[..., None, None] + dx
    patches = level[np.arange(n)[:, None, None, None], rows, cols]  # (n, p, size, size, c)
    desc = patches.reshape(n * per_image, size * size, c)
    desc = desc - desc.mean(axis=(0, 1), keepdims=True)
    desc = desc / (desc.std(axis=(0, 1), keepdims=True) + 1e-8)
    return desc.reshape(n * per_image, -1)


def sliced_wasserstein(a: np.ndarray, b: np.ndarray, rng: np.random.Generator,
                       directions: int = SWD_DIRECTIONS, repeats: int = SWD_REPEATS) -> float:
    """Mean over random unit directions of the 1-D Wasserstein-1 distance of the projections."""
    n = min(len(a), len(b))
    # float32 projections: twice as fast to sort, and far finer than the estimator's own noise
    a, b = a[:n].astype(np.float32), b[:n].astype(np.float32)
    results = []
    for _ in range(repeats):
        d = rng.standard_normal((a.shape[1], directions))
        d = (d / np.sqrt((d ** 2).sum(axis=0, keepdims=True))).astype(np.float32)
        pa, pb = np.sort(a @ d, axis=0), np.sort(b @ d, axis=0)
        results.append(np.abs(pa - pb, dtype=np.float64).mean())
    return float(np.mean(results))


def swd(real: np.ndarray, fake: np.ndarray, seed: int, per_image: int = 64) -> dict[str, float]:
    """Per-level SWD (x1e3, as in the paper) and their mean."""
    out = {}
    lr, lf = laplacian_pyramid(real), laplacian_pyramid(fake)
    for i, (a, b) in enumerate(zip(lr, lf, strict=True)):
        rng = np.random.default_rng([seed, i])
        da = patch_descriptors(a, per_image, rng)
        db = patch_descriptors(b, per_image, np.random.default_rng([seed, i, 1]))
        out[f"swd_{a.shape[1]}px"] = 1e3 * sliced_wasserstein(da, db, np.random.default_rng([seed, i, 2]))
    out["swd"] = float(np.mean(list(out.values())))
    return out


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


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^1/2) between Gaussian fits of two feature sets.

    With A, B the centred features, S_a S_b and (A B^T)(A B^T)^T share their non-zero
    eigenvalues, so Tr (S_a S_b)^1/2 is the nuclear norm of A B^T over sqrt((n-1)(m-1)):
    exact, and an (n x m) SVD instead of a (d x d) matrix square root (2048-d FID features
    from a few hundred samples: milliseconds instead of tens of seconds, no regularisation).
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ca, cb = a - a.mean(axis=0), b - b.mean(axis=0)
    na, nb = len(a) - 1, len(b) - 1
    cross = np.linalg.svd(ca @ cb.T, compute_uv=False).sum() / np.sqrt(na * nb)
    mean_term = ((a.mean(axis=0) - b.mean(axis=0)) ** 2).sum()
    return float(mean_term + (ca ** 2).sum() / na + (cb ** 2).sum() / nb - 2 * cross)


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def kernel_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Unbiased MMD^2 with the cubic polynomial kernel (the KID estimator); about 0 for one distribution."""
    m, n = len(a), len(b)
    kaa, kbb, kab = polynomial_kernel(a, a), polynomial_kernel(b, b), polynomial_kernel(a, b)
    return float((kaa.sum() - np.trace(kaa)) / (m * (m - 1)) + (kbb.sum() - np.trace(kbb)) / (n * (n - 1))
                 - 2 * kab.mean())


# ------------------------------------------------------------------ diversity, coverage, memorisation


def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    fa, fb = a.reshape(len(a), -1).astype(np.float64), b.reshape(len(b), -1).astype(np.float64)
    d2 = (fa ** 2).sum(1)[:, None] + (fb ** 2).sum(1)[None, :] - 2 * fa @ fb.T
    return np.sqrt(np.maximum(d2, 0))


def mean_pairwise(x: np.ndarray) -> float:
    d = pairwise_distances(x, x)
    iu = np.triu_indices(len(x), 1)
    return float(d[iu].mean()) if len(iu[0]) else float("nan")


def coverage(real: np.ndarray, fake: np.ndarray, k: int = KNN) -> float:
    """Fraction of real points with at least one sample inside their k-NN radius (Naeem et al. 2020)."""
    rr = pairwise_distances(real, real)
    np.fill_diagonal(rr, np.inf)
    radius = np.sort(rr, axis=1)[:, min(k, len(real) - 1) - 1]
    nearest_fake = pairwise_distances(real, fake).min(axis=1)
    return float((nearest_fake <= radius).mean())


def memorisation(train: np.ndarray, fake: np.ndarray, train_nn: float) -> float:
    """Median nearest-training-image distance of the samples, over the training set's own NN distance."""
    return float(np.median(pairwise_distances(fake, train).min(axis=1)) / train_nn)


def train_nn_distance(train: np.ndarray, limit: int = 2000, seed: int = 0) -> float:
    """Median distance from a training image to its nearest other training image."""
    if len(train) > limit:
        train = train[np.random.default_rng(seed).choice(len(train), limit, replace=False)]
    d = pairwise_distances(train, train)
    np.fill_diagonal(d, np.inf)
    return float(np.median(d.min(axis=1)))
