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
# optimizers, so the unit of inference is the seed, and d_s = score(A, s) - score(B, s).
#
# The test is the exact sign test on the d_s, its interval the one it inverts: the order statistics
# [d_(r), d_(n+1-r)] of the n differences, r the largest with 2 P(Bin(n, 1/2) <= r - 1) < alpha; the estimate
# is their median. It needs no assumption about the differences' distribution: the interval covers the
# median difference with probability >= 1 - alpha for any continuous distribution (normal, heavy-tailed,
# skewed alike; a mean-based interval covers 85% of lognormal differences at 7 seeds), and the test and
# the interval agree by construction: the interval excludes 0 exactly when p < alpha. A seed where the
# two optimizers tie (equal up to a relative 1e-9) counts against significance: it is the minority's.

TIE = 1e-9  # relative: |a - b| <= TIE * max(|a|, |b|) is a tie (sums in another order differ in the last bits)


def ties(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Which seeds' two values are equal up to the relative tolerance."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.abs(a - b) <= TIE * np.maximum(np.abs(a), np.abs(b))


def sign_test(d: np.ndarray, tied: np.ndarray | None = None) -> float:
    """Two-sided p of the exact sign test of "the median difference is 0"; tied seeds count for the side with
    fewer seeds (conservative: they never make a difference look surer)."""
    d = np.asarray(d, np.float64)
    n = len(d)
    if n == 0:
        return 1.0
    tied = np.zeros(n, bool) if tied is None else np.asarray(tied, bool)
    pos, neg = int(((d > 0) & ~tied).sum()), int(((d < 0) & ~tied).sum())
    return float(min(1.0, 2 * sps.binom.cdf(min(pos, neg) + (n - pos - neg), n, 0.5)))


def order_rank(n: int, alpha: float) -> int:
    """r, the largest with 2 P(Bin(n, 1/2) <= r - 1) < alpha (0: no finite interval with n seeds)."""
    r = 0
    while r < n and 2 * sps.binom.cdf(r, n, 0.5) < alpha:
        r += 1
    return r


def sign_interval(d: np.ndarray, alpha: float) -> tuple[float, float]:
    """The 1 - alpha interval for the median difference that inverts the sign test: the set of shifts t for
    which the sign test of d - t does not reject."""
    d = np.sort(np.asarray(d, np.float64))
    r = order_rank(len(d), alpha)
    if r == 0:
        return (-math.inf, math.inf)
    return (float(d[r - 1]), float(d[len(d) - r]))


def equivalence_p(d: np.ndarray, margin: float) -> float:
    """Two one-sided sign tests (TOST) of "the median difference lies outside (-margin, margin)": the larger
    of their p-values; below alpha, the difference is within the margin."""
    d = np.asarray(d, np.float64)
    n = len(d)
    if n == 0 or margin <= 0:
        return 1.0
    low = sps.binom.cdf(int((d <= -margin).sum()), n, 0.5)  # few seeds at or below -margin: above it
    high = sps.binom.cdf(int((d >= margin).sum()), n, 0.5)  # few at or above +margin: below it
    return float(max(low, high))


def smallest_p(n: int, tied: int = 0) -> float:
    """The smallest two-sided p the sign test can give with n seeds of which ``tied`` tie."""
    return float(min(1.0, 2 * sps.binom.cdf(tied, n, 0.5))) if n else 1.0


def seeds_needed(pairs: int, alpha: float, reversed_seeds: int = 0) -> int:
    """The fewest seeds with which a difference in every seed but ``reversed_seeds`` is significant after
    Holm over ``pairs``."""
    n = reversed_seeds + 1
    while pairs * min(1.0, 2 * sps.binom.cdf(reversed_seeds, n, 0.5)) >= alpha:
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
