"""The one table of what bench measures: names, directions, titles and formats.

Every layer that names a metric (the CSV writer, the quality scorer, summaries, trend checks,
the sweep's criterion, the report's tables and plots) reads it from here.
"""

from __future__ import annotations

from dataclasses import dataclass

# What the compiled step returns for every iteration, in the order of the CSV columns.
STEP_METRICS = (
    "d_loss_real", "d_loss_fake", "g_loss",
    "d_acc_real", "d_acc_fake",   # fraction D classifies correctly
    "d_x", "d_g_z",               # mean D(x) on the real half batch, mean D(G(z)) on the fake half batch
    "d_grad_norm_real", "d_grad_norm_fake", "g_grad_norm",
)
LOSSES = STEP_METRICS[:3]
LOSS_TITLES = {"d_loss_real": "D loss on real", "d_loss_fake": "D loss on fake", "g_loss": "G loss"}


@dataclass(frozen=True)
class Metric:
    """A sample-quality metric (bench.quality) as every consumer sees it."""

    name: str
    title: str  # plot title
    header: str  # summary-table header, with the direction arrow
    digits: int  # decimals shown in tables
    goal: str  # "min" or "max": which way is better
    positive: bool = False  # always > 0, so two values compare as a ratio
    column: bool = False  # a column of the report's summary table
    trend: bool = False  # a `bench check` trend metric (``<name>.final``)
    # passes the sanity suite on the bundled faces and on CelebA-layout images (tests/test_metrics.py
    # measures it and holds this flag to it): held-out real < blurred real < real plus strong noise <
    # uniform noise, and one image repeated worse than held-out real. Only such a metric may be a
    # verdict's primary metric or a sweep's default criterion.
    sane: bool = False
    ideal: float = 0.0  # the best possible value (normalised scores measure the way from the untrained G to it)
    margin: float = 0.05  # equivalence margin of a verdict: relative (a ratio) for positive metrics, else absolute

    @property
    def arrow(self) -> str:
        return "↓" if self.goal == "min" else "↑"


# Dict order is the order of the report's quality panels.
QUALITY: dict[str, Metric] = {m.name: m for m in (
    Metric("swd", "SWD, Laplacian patches (x1e3) ↓", "SWD ↓", 1, "min", positive=True, column=True, trend=True,
           sane=True),
    Metric("fd_pca", "Frechet distance, PCA ↓", "FD-PCA ↓", 2, "min", positive=True, column=True, trend=True),
    Metric("kid_pca", "kernel distance, PCA ↓", "KID-PCA ↓", 3, "min", column=True, trend=True,  # unbiased: may be < 0
           margin=0.01),
    Metric("coverage", "coverage of real images ↑", "coverage ↑", 2, "max", column=True, trend=True, ideal=1.0),
    Metric("diversity", "diversity / real", "diversity ↑", 2, "max", ideal=1.0),
    Metric("memorisation", "NN distance to training / typical", "memorisation ↑", 2, "max", trend=True, ideal=1.0),
    Metric("fid", "FID (InceptionV3, local weights) ↓", "FID ↓", 1, "min", positive=True, column=True, trend=True),
)}
TABLE_COLUMNS = tuple(m.name for m in QUALITY.values() if m.column)
TREND_METRICS = tuple(m.name for m in QUALITY.values() if m.trend)

# The loss-trend summaries of `bench check` and the sweep's criteria: the mean of each quarter of
# training, the final window's mean, and the slope over the last quarter (bench.analysis.trends).
QUARTERS = 4
LOSS_SUMMARIES = (*(f"w{q + 1}" for q in range(QUARTERS)), "final", "slope")
PRIMARY = "swd"  # the default primary metric: the sane one (FD-PCA and KID-PCA rank blur below strong noise)

# A verdict compares each quality metric's final value (mean of its last evaluations) and its best over
# training, and each loss's final-window mean (no direction: higher or lower, not better or worse).
LOSS_MARGIN = 0.02  # equivalence margin of the final-window losses (absolute, in nats)


def comparable_metrics() -> list[str]:
    return [f"{m}.{kind}" for m in QUALITY for kind in ("final", "best")] + [f"{loss}.final" for loss in LOSSES]


def metric_key(name: str) -> str:
    """``swd`` -> ``swd.final``: a metric named alone means its final value."""
    return name if "." in name else f"{name}.final"
