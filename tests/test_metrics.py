"""Sample-quality metrics on known distributions, and against straightforward reference code."""

from __future__ import annotations

import numpy as np
import pytest

from bench.quality import metrics as M
from bench.quality.scorer import Evaluator
from bench.quality.scores import INFO
from bench.quality.scores.neighbours import Memorisation


def faces(n=100, size=(12, 12)):
    from bench import data
    from bench.core.config import DataConfig

    return data.load(DataConfig(image_size=size))


@pytest.fixture(scope="module")
def real():
    return faces().images


def _naive_kid(a, b):
    d = a.shape[1]
    k = lambda x, y: (float(x @ y) / d + 1) ** 3  # noqa: E731
    m, n = len(a), len(b)
    xx = sum(k(a[i], a[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(b[i], b[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(a[i], b[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def _naive_fd(a, b):
    mu1, mu2 = a.mean(0), b.mean(0)
    s1 = (a - mu1).T @ (a - mu1) / (len(a) - 1)
    s2 = (b - mu2).T @ (b - mu2) / (len(b) - 1)
    # sqrt(S1 S2) through the symmetric form S1^1/2 S2 S1^1/2, whose trace is the same
    w, v = np.linalg.eigh(s1)
    r = v @ np.diag(np.sqrt(np.clip(w, 0, None))) @ v.T
    w2 = np.linalg.eigvalsh(r @ s2 @ r)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(w2, 0, None)).sum())


def _naive_sw1(a, b, dirs):
    out = []
    for d in dirs.T:
        pa, pb = sorted(a @ d), sorted(b @ d)
        out.append(np.mean([abs(x - y) for x, y in zip(pa, pb, strict=True)]))
    return float(np.mean(out))


def test_kernel_distance_is_unbiased_for_independent_draws():
    rng = np.random.default_rng(4)
    same = [M.kernel_distance(rng.normal(size=(200, 8)), rng.normal(size=(200, 8))) for _ in range(20)]
    shifted = M.kernel_distance(rng.normal(size=(200, 8)), rng.normal(0.5, 1, size=(200, 8)))
    assert abs(np.mean(same)) < 0.02 * shifted


def test_kernel_distance_matches_naive_double_loop():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(12, 5)), rng.normal(0.5, 1.2, size=(9, 5))
    assert M.kernel_distance(a, b) == pytest.approx(_naive_kid(a, b), rel=1e-10)


def test_frechet_distance_matches_symmetric_form_and_closed_form():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(200, 4)), rng.normal(1.0, 2.0, size=(150, 4))
    assert M.frechet_distance(a, b) == pytest.approx(_naive_fd(a, b), rel=1e-6)
    # 1-D Gaussians: (mu1-mu2)^2 + (s1-s2)^2
    x = np.array([[-1.0], [1.0]] * 50)
    y = x * 3 + 2
    s1, s2 = x.std(ddof=1), y.std(ddof=1)
    assert M.frechet_distance(x, y) == pytest.approx(4 + (s1 - s2) ** 2, rel=1e-9)


def test_sliced_wasserstein_matches_naive_sorting():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(40, 6)), rng.normal(0.3, 1, size=(40, 6))
    got = M.sliced_wasserstein(a, b, np.random.default_rng(7), directions=16, repeats=1)
    d = np.random.default_rng(7).standard_normal((6, 16))
    d /= np.sqrt((d ** 2).sum(0, keepdims=True))
    assert got == pytest.approx(_naive_sw1(a, b, d), rel=1e-5)


def test_coverage_and_pairwise_match_naive():
    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=(15, 2, 2, 1)), rng.normal(size=(10, 2, 2, 1))
    fr, ff = real.reshape(15, -1), fake.reshape(10, -1)
    radius = [sorted(np.linalg.norm(fr[i] - fr[j]) for j in range(15) if j != i)[M.KNN - 1] for i in range(15)]
    covered = [min(np.linalg.norm(fr[i] - f) for f in ff) <= radius[i] for i in range(15)]
    assert M.coverage(real, fake) == pytest.approx(np.mean(covered))
    pairs = [np.linalg.norm(ff[i] - ff[j]) for i in range(10) for j in range(i + 1, 10)]
    assert M.mean_pairwise(fake) == pytest.approx(np.mean(pairs))


def test_identical_sets_score_about_zero(real):
    ev = Evaluator(real, real_count=100, pca_dims=16, seed=0)
    same, _ = ev(ev.real.copy())
    shifted, _ = ev(np.clip(ev.real + 0.5, -1, 1))
    assert same["fd_pca"] == pytest.approx(0, abs=1e-6)
    # the unbiased estimator is slightly negative on the very same points (its cross term keeps k(x, x))
    assert abs(same["kid_pca"]) < 0.05 * shifted["kid_pca"]
    assert same["coverage"] == 1.0 and same["diversity"] == pytest.approx(1.0)
    assert same["memorisation"] == pytest.approx(0, abs=1e-6)  # every sample is a training image
    # SWD of a set against itself is small; patch positions differ between the two draws
    shuffled, _ = ev(ev.real[::-1].copy())
    assert shuffled["swd"] < 40


def test_shifted_and_collapsed_sets_score_clearly_worse(real):
    from scipy import ndimage

    ev = Evaluator(real, real_count=100, pca_dims=16, seed=0)
    base, _ = ev(ev.real.copy())
    brighter, _ = ev(np.clip(ev.real + 0.5, -1, 1))
    blurred, _ = ev(ndimage.gaussian_filter(ev.real, (0, 1.5, 1.5, 0)))
    collapsed, _ = ev(np.repeat(ev.real[:1], 100, axis=0))
    noise, _ = ev(np.random.default_rng(0).uniform(-1, 1, ev.real.shape).astype(np.float32))
    # SWD normalises descriptors per set (as in the paper): it sees structure, not global brightness
    for bad in (blurred, collapsed, noise):
        assert bad["swd"] > 4 * base["swd"]
    # the feature distances see the distribution shift
    for bad in (brighter, collapsed, noise):
        assert bad["fd_pca"] > 10 and bad["kid_pca"] > 1
    assert collapsed["coverage"] < 0.2 and collapsed["diversity"] == pytest.approx(0.0, abs=1e-6)
    assert noise["coverage"] < 0.2 and noise["memorisation"] > 1.0
    assert blurred["diversity"] < 0.9


def test_same_seed_same_values_different_seed_close(real):
    fake = np.random.default_rng(5).uniform(-1, 1, real.shape).astype(np.float32)
    a, _ = Evaluator(real, 64, 16, seed=3)(fake)
    b, _ = Evaluator(real, 64, 16, seed=3)(fake)
    assert a == b
    c, _ = Evaluator(real, 64, 16, seed=4)(fake)
    assert c["swd"] == pytest.approx(a["swd"], rel=0.25)


@pytest.mark.parametrize("size", [25, 24, 12])
def test_pyramid_levels_reconstruct_the_image(size):
    """Each level is the image minus its upsampled coarser version: adding the upsampled coarser level
    back (scipy's own zoom) gives the image again, level by level up to the residual."""
    from scipy import ndimage

    images = faces(size=(size, size)).images[:4]
    levels = M.laplacian_pyramid(images)
    assert [lv.shape[1] for lv in levels] == {25: [25, 13], 24: [24, 12], 12: [12]}[size]
    current = levels[-1].astype(np.float64)
    for band in reversed(levels[:-1]):
        up = ndimage.zoom(current, (1, band.shape[1] / current.shape[1], band.shape[2] / current.shape[2], 1),
                          order=1, mode="nearest")
        current = band + up
    np.testing.assert_allclose(current, images, atol=1e-5)
    if len(levels) > 1:
        assert abs(levels[0].mean()) < 0.05 < levels[0].std()  # band-pass: about zero mean, not empty


def test_a_run_writes_quality_csv_with_its_timing_kept_apart(golden):
    import json

    import pandas as pd

    for pair in ("adam-seed0", "sgd-seed2"):
        rd = golden["base"] / "runs" / pair
        q = pd.read_csv(rd / "quality.csv")
        assert sorted(q.step.unique()) == [0, 20, 40]
        assert set(INFO) - {"fid"} <= set(q.metric)
        assert (q.eval_seconds > 0).all()
        st = json.loads((rd / "status.json").read_text())
        assert st["eval_seconds"] > 0 and st["train_seconds"] > 0
        assert st["train_seconds"] + st["eval_seconds"] <= st["wall_seconds"]
        # training got better than the untrained generator on the distribution metrics
        fd = q[q.metric == "fd_pca"].set_index("step").value
        assert fd[40] < fd[0]


def test_fid_needs_a_local_file(cli, tmp_path):
    r = cli("run", "smoke", "--steps", "2", "--quiet", "--fid-weights", tmp_path / "nope.h5", "--out", tmp_path)
    assert r.code == 2 and "file not found (bench never downloads weights)" in r.err
    (tmp_path / "bad.h5").write_bytes(b"junk")
    r = cli("run", "smoke", "--steps", "2", "--quiet", "--fid-weights", tmp_path / "bad.h5", "--out", tmp_path)
    assert r.code == 2 and "not InceptionV3 weights Keras can load" in r.err


@pytest.mark.integration
def test_fid_from_local_weights(tmp_path):
    """FID from a weights file on disk: identical sets score ~0, noise scores worse."""
    import keras

    keras.utils.set_random_seed(0)
    # a whole-model .keras file at InceptionV3's smallest input keeps the test fast; the code path is
    # the one a 299x299 weights file takes, with the input size read from the model
    model = keras.applications.InceptionV3(include_top=False, weights=None, pooling="avg", input_shape=(75, 75, 3))
    path = tmp_path / "inception.keras"
    model.save(path)
    ev = Evaluator(faces().images[:16], real_count=8, pca_dims=4, seed=0, fid_weights=str(path))
    real = ev.real
    same = ev(real.copy())[0]["fid"]
    noise = ev(np.random.default_rng(0).uniform(-1, 1, real.shape).astype(np.float32))[0]["fid"]
    assert abs(same) < 1e-6 * max(noise, 1e-12) + 1e-9
    assert noise > 1000 * abs(same)


def _naive_swd(real, fake, seed, per_image):
    """SWD written out step by step in float64: scipy's zoom for the pyramid, one patch at a time, both sets
    normalised by the real set's statistics, projected on the same directions; as many samples as real
    images (the first ones)."""
    from scipy import ndimage

    def pyramid(x):
        levels, cur = [], x.astype(np.float64)
        while min(cur.shape[1:3]) // 2 >= M.MIN_LEVEL:
            small = ndimage.gaussian_filter(cur, sigma=(0, 1, 1, 0), mode="reflect")[:, ::2, ::2]
            up = ndimage.zoom(small, (1, cur.shape[1] / small.shape[1], cur.shape[2] / small.shape[2], 1), order=1,
                              mode="nearest")
            levels.append(cur - up)
            cur = small
        return levels + [cur]

    def patches(level, rng):
        n, h, w, c = level.shape
        ys = rng.integers(0, h - M.PATCH + 1, size=(n, per_image))
        xs = rng.integers(0, w - M.PATCH + 1, size=(n, per_image))
        return np.stack([level[i, y: y + M.PATCH, x: x + M.PATCH] for i in range(n)
                         for y, x in zip(ys[i], xs[i], strict=True)])  # (n * p, 7, 7, c)

    out = {}
    for i, (a, b) in enumerate(zip(pyramid(real), pyramid(fake[: len(real)]), strict=True)):
        pa, pb = patches(a, np.random.default_rng([seed, i])), patches(b, np.random.default_rng([seed, i, 1]))
        mean, std = pa.mean(axis=(0, 1, 2)), pa.std(axis=(0, 1, 2)) + 1e-8
        da, db = (((p - mean) / std).reshape(len(p), -1) for p in (pa, pb))
        n = min(len(da), len(db))
        rng = np.random.default_rng([seed, i, 2])
        dists = []
        for _ in range(M.SWD_REPEATS):
            d = rng.standard_normal((da.shape[1], M.SWD_DIRECTIONS))
            d /= np.sqrt((d ** 2).sum(axis=0))
            dists.append(_naive_sw1(da[:n], db[:n], d))
        out[f"swd_{a.shape[1]}px"] = 1e3 * np.mean(dists)
    out["swd"] = np.mean(list(out.values()))
    return out


@pytest.mark.parametrize("shape", [(12, 12, 1), (28, 28, 3)])
def test_every_metric_equals_its_straightforward_definition(shape, monkeypatch):
    """The scorer computes everything about the real images once, in float32 where the estimators' own
    noise is far larger: each metric still equals its definition within float32 tolerance."""
    rng = np.random.default_rng(11)
    train = rng.uniform(-1, 1, (40, *shape)).astype(np.float32)
    fake = np.clip(train[rng.integers(0, 40, 48)] + rng.normal(0, 0.4, (48, *shape)), -1, 1).astype(np.float32)
    ev = Evaluator(train, real_count=30, pca_dims=8, seed=5, patches_per_image=6)
    monkeypatch.setattr(Memorisation, "SAMPLES", 40)  # fewer than the samples: the cut is exercised
    got, _ = ev(fake)
    want = _naive_swd(ev.real, fake, 5, 6)
    for name, value in want.items():
        assert got[name] == pytest.approx(value, rel=1e-5), name
    feats_real, feats_fake = ev.reference.pca(ev.real), ev.reference.pca(fake)
    assert got["fd_pca"] == pytest.approx(_naive_fd(feats_real, feats_fake), rel=1e-6)
    assert got["kid_pca"] == pytest.approx(_naive_kid(feats_real, feats_fake), rel=1e-6, abs=1e-9)
    fr, ff, ft = (x.reshape(len(x), -1).astype(np.float64) for x in (ev.real, fake, train))
    radius = [sorted(np.linalg.norm(fr[i] - fr[j]) for j in range(len(fr)) if j != i)[M.KNN - 1] for i in range(len(fr))]
    assert got["coverage"] == np.mean([min(np.linalg.norm(fr[i] - f) for f in ff) <= radius[i] for i in range(len(fr))])
    nearest = [min(np.linalg.norm(f - t) for t in ft) for f in ff[:40]]  # the first SAMPLES samples
    train_nn = np.median([min(np.linalg.norm(ft[i] - ft[j]) for j in range(len(ft)) if j != i) for i in range(len(ft))])
    assert got["memorisation"] == pytest.approx(np.median(nearest) / train_nn, rel=1e-6)
    div = np.mean([np.linalg.norm(ff[i] - ff[j]) for i in range(len(ff)) for j in range(i + 1, len(ff))])
    real_div = np.mean([np.linalg.norm(fr[i] - fr[j]) for i in range(len(fr)) for j in range(i + 1, len(fr))])
    assert got["diversity"] == pytest.approx(div / real_div, rel=1e-9)
    er, ef = _naive_embedding(ev.real), _naive_embedding(fake)
    scale = er.std(axis=0).mean()
    assert got["rfd"] == pytest.approx(_naive_fd(er / scale, ef / scale), rel=1e-4)
    centre = er.mean(axis=0)
    assert got["rkid"] == pytest.approx(_naive_kid((er - centre) / scale, (ef - centre) / scale), rel=1e-3, abs=1e-6)


def _naive_embedding(images: np.ndarray) -> np.ndarray:
    """bench.quality.embedding written out in float64 with scipy: each 3x3 convolution as scipy's correlate of
    each input channel (numpy's 'reflect' padding is scipy's 'mirror'), ReLU, per channel its mean and
    standard deviation and its mean over each cell of a 3x3 grid, 2x2 average pooling between layers."""
    from scipy import ndimage

    from bench.quality import embedding as E

    channels = images.shape[-1]
    rng = np.random.default_rng([E.SEED, channels])
    weights, c = [], channels
    for k in E.WIDTHS:
        weights.append(rng.standard_normal((3, 3, c, k)) * np.sqrt(2.0 / (9 * c)))
        c = k
    out = []
    for img in images.astype(np.float64):
        x, feats = img, []
        for i, w in enumerate(weights):
            h, wd = x.shape[:2]
            y = np.stack([sum(ndimage.correlate(x[..., ci], w[:, :, ci, k], mode="mirror") for ci in range(x.shape[-1]))
                          for k in range(w.shape[-1])], axis=-1)
            y = np.maximum(y, 0)
            feats += [y.mean(axis=(0, 1)), y.std(axis=(0, 1))]
            for r in np.array_split(np.arange(h), E.GRID):
                for q in np.array_split(np.arange(wd), E.GRID):
                    feats.append(y[r[0]: r[-1] + 1, q[0]: q[-1] + 1].mean(axis=(0, 1)))
            if i < len(weights) - 1 and min(h, wd) >= 2 * E.GRID:
                h2, w2 = h // 2 * 2, wd // 2 * 2
                y = y[:h2, :w2].reshape(h2 // 2, 2, w2 // 2, 2, -1).mean(axis=(1, 3))
            x = y
        out.append(np.concatenate(feats))
    return np.array(out)


def test_scores_are_the_same_on_any_number_of_threads():
    rng = np.random.default_rng(2)
    train = rng.uniform(-1, 1, (60, 16, 16, 3)).astype(np.float32)
    fake = rng.uniform(-1, 1, (80, 16, 16, 3)).astype(np.float32)
    one, _ = Evaluator(train, 50, 8, 3, threads=1)(fake)
    ev = Evaluator(train, 50, 8, 3, threads=4)
    four, _ = ev._score(fake)  # 80 samples: two embedding batches, on two threads
    assert one == four  # bit for bit
    # the work arrays kept between evaluations carry nothing over: other samples (other sizes too), then these
    for other in (rng.uniform(-1, 1, (80, 16, 16, 3)), rng.uniform(-1, 1, (30, 16, 16, 3))):
        assert ev._score(other.astype(np.float32))[0] != one
    assert ev._score(fake)[0] == one


def test_samples_scored_before_are_not_scored_again_and_get_the_same_values():
    """The scorer keeps scores by the samples' bytes: the same samples (another array with the same bytes, as
    every optimizer's untrained generator of a seed gives) are not scored again; any other samples are."""
    rng = np.random.default_rng(2)
    train = rng.uniform(-1, 1, (60, 12, 12, 1)).astype(np.float32)
    fake = rng.uniform(-1, 1, (40, 12, 12, 1)).astype(np.float32)
    ev = Evaluator(train, 30, 8, seed=1)
    fresh = Evaluator(train, 30, 8, seed=1)._score(fake)[0]  # an evaluator with nothing kept
    calls = []
    real_score = ev._score
    ev._score = lambda x: calls.append(1) or real_score(x)
    first, _ = ev(fake)
    again, _ = ev(fake.copy())
    changed = fake.copy()
    changed[0, 0, 0, 0] = np.nextafter(changed[0, 0, 0, 0], 2)
    other, _ = ev(changed)
    assert len(calls) == 2  # the copy was not scored again; one changed value was
    assert first == again == fresh and first is not again  # the same values, not the kept dict itself
    assert other != first


def test_nearest_training_image_in_blocks_on_threads_is_the_brute_force_one():
    """The training set's blocks are cut by its size alone (the same products on any core count), and on threads
    they find the same nearest image, bit for bit, as on one; the distance is the brute-force one (a copy of a
    training image is at 0)."""
    rng = np.random.default_rng(5)
    train = rng.uniform(-1, 1, (2500, 48)).astype(np.float32)  # four blocks
    fake = np.concatenate([rng.uniform(-1, 1, (30, 48)), train[[7, 1500, 2499]]]).astype(np.float32)
    cut = [[(start, len(b)) for start, b in M.NearestTrain(train, threads=k).blocks] for k in (1, 3, 16)]
    assert cut[0] == cut[1] == cut[2] and len(cut[0]) > 1
    assert [len(b) for _, b in M.NearestTrain(train[:100], threads=16).blocks] == [100]  # no block of a few images
    one = M.NearestTrain(train, threads=1)(fake)
    assert np.array_equal(one, M.NearestTrain(train, threads=3)(fake))
    brute = np.sqrt(((fake[:, None, :].astype(np.float64) - train[None].astype(np.float64)) ** 2).sum(-1)).min(1)
    np.testing.assert_allclose(one, brute, rtol=1e-9)
    assert (one[-3:] == 0).all()
