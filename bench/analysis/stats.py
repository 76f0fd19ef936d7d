"""The statistics every summary shares: medians with their interquartile range, the final window."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as sps

FINAL_FRACTION = 0.10  # "final" = the last 10% of iterations


def spread(values, finite_only: bool = True) -> tuple[float, float, float]:
    """(median, q25, q75) across seeds: of the finite values (all NaN if none is finite), or of all of
    them with infinities kept (a diverged seed scored as the worst: the quartiles may be infinite)."""
    v = np.asarray([x for x in values if not finite_only or (x == x and math.isfinite(x))], dtype=float)
    if not len(v):
        return (math.nan, math.nan, math.nan)
    with np.errstate(invalid="ignore"):  # inf - inf between two infinite values: NaN, shown as "–"
        q25, q75 = np.percentile(v, [25, 75])
    return (float(np.median(v)), float(q25), float(q75))


def band(frame: pd.DataFrame | pd.core.groupby.SeriesGroupBy, axis: int | None = None):
    """(median, q25, q75) across seeds, per step: of a wide frame (columns = seeds, ``axis=1``)
    or of a grouped series (one group per step). NaN entries are left out."""
    if axis is None:
        return frame.median(), frame.quantile(0.25), frame.quantile(0.75)
    return frame.median(axis=axis), frame.quantile(0.25, axis=axis), frame.quantile(0.75, axis=axis)


def final_window(df: pd.DataFrame, steps_total: int) -> pd.DataFrame:
    """Rows of the last FINAL_FRACTION of the planned iterations (of what exists)."""
    n = max(1, int(math.ceil(steps_total * FINAL_FRACTION)))
    last = df.step.max()
    return df[df.step > last - n]


def final_mean(df: pd.DataFrame, column: str, steps_total: int) -> float:
    """Mean of ``column`` over the final window of the rows that trained (status ok); NaN if none."""
    ok = df[df.status == "ok"]
    win = final_window(ok, steps_total) if len(ok) else ok
    return float(win[column].mean()) if len(win) else math.nan


# ------------------------------------------------------------------ paired inference over seeds
#
# Every comparison here is paired: seed s fixes the initial weights, the batches and the latents of both
# optimizers, so the unit of resampling and of permutation is the seed, and d_s = score(A, s) - score(B, s).

EXACT_MAX = 16  # exact sign-flip test up to 2^16 patterns; Monte Carlo beyond
MONTE_CARLO = 20_000


def sign_flip_p(d: np.ndarray, rng: np.random.Generator | None = None) -> float:
    """Two-sided p of "no difference" for paired differences: under it each d_s is as likely +d_s as -d_s,
    so p is the share of the 2^n sign patterns whose |mean| is at least the observed one (exact up to
    EXACT_MAX seeds, then a Monte Carlo estimate with the (count + 1) / (draws + 1) correction). All-zero
    differences give p = 1."""
    d = np.asarray(d, dtype=np.float64)
    n = len(d)
    if n == 0:
        return 1.0
    observed = abs(d.mean())
    tol = 1e-12 * max(1.0, float(np.abs(d).max()))  # sums in another order: equal up to rounding
    if n <= EXACT_MAX:
        signs = 1 - 2 * ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1)  # every pattern, one per row
        return float((np.abs(signs @ d) / n >= observed - tol).mean())
    rng = rng or np.random.default_rng(0)
    signs = rng.choice([-1.0, 1.0], size=(MONTE_CARLO, n))
    hits = int((np.abs(signs @ d) / n >= observed - tol).sum())
    return (hits + 1) / (MONTE_CARLO + 1)


def smallest_p(n: int) -> float:
    """The smallest two-sided p the sign-flip test can give with n seeds: both all-same-sign patterns."""
    return 2 / 2 ** n if n <= EXACT_MAX else 1 / (MONTE_CARLO + 1)


def seeds_needed(pairs: int, alpha: float) -> int:
    """The fewest seeds with which a difference in every seed is significant after Holm over ``pairs``."""
    n = 1
    while pairs * smallest_p(n) >= alpha:
        n += 1
    return n


def holm(p: list[float]) -> list[float]:
    """Holm's step-down adjustment: sorted ascending, p_(i) -> max over j <= i of min(1, (m - j + 1) p_(j))."""
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


def bootstrap(values: np.ndarray, statistic, reps: int, seed: int, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of ``statistic`` over resamples of the seeds (rows of ``values``), drawn from
    numpy.random.default_rng(seed): the same rows for every column, which keeps paired data paired.
    ``statistic`` maps an array of resampled rows (reps, n, ...) to reps values."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    if n == 0:
        return (math.nan, math.nan)
    index = np.random.default_rng(seed).integers(0, n, size=(reps, n))
    stats = statistic(values[index])
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(stats, [tail, 100 - tail])
    return (float(low), float(high))


def wilson(successes: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion (``successes`` may count a tie as 1/2): unlike a bootstrap of
    the seeds it is never the single point [1, 1] when every seed agrees."""
    if n <= 0:
        return (math.nan, math.nan)
    z = float(sps.norm.ppf(0.5 + level / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(max(p * (1 - p) / n + z * z / (4 * n * n), 0.0))
    return (max(0.0, centre - half), min(1.0, centre + half))
