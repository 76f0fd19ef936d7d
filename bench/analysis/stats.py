"""The statistics every summary shares: medians with their interquartile range, the final window."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

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
