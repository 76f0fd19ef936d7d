"""The registry of sample-quality metrics: one class per metric (bench.quality.scores.base.Metric), one
entry here. Dict order is the order of the report's quality panels and of quality.csv's rows.

Which of them a run's verdict may rest on is not declared here: it is measured, per data set, by the
validation suite (bench.quality.validation), and every run records the result.
"""

from __future__ import annotations

from bench.core.metric_table import LOSSES
from bench.quality.scores.base import Batch, Info, Metric, Reference
from bench.quality.scores.fid import Fid
from bench.quality.scores.neighbours import Coverage, Diversity, Memorisation
from bench.quality.scores.pca import PcaFrechet, PcaKernel
from bench.quality.scores.rfd import RandomFrechet
from bench.quality.scores.rkid import RandomKernel
from bench.quality.scores.swd import SlicedWasserstein

METRICS: dict[str, type[Metric]] = {cls.info.name: cls for cls in (
    RandomFrechet, SlicedWasserstein, PcaFrechet, PcaKernel, RandomKernel, Coverage, Diversity, Memorisation, Fid)}
INFO: dict[str, Info] = {name: cls.info for name, cls in METRICS.items()}
# The primary metric when an experiment declares none and the validation suite has not ruled (the first that
# passes on the run's data is used otherwise): the one that passed on every data set bench ships.
DEFAULT_PRIMARY = "rfd"
TABLE_COLUMNS = tuple(m.name for m in INFO.values() if m.column)
TREND_METRICS = tuple(m.name for m in INFO.values() if m.trend)
# Each metric's definition (Info.version): recorded with every run and baseline, so that values of two
# definitions are never checked against each other as if they were one
VERSIONS: dict[str, int] = {name: info.version for name, info in INFO.items()}


def comparable_metrics() -> list[str]:
    """Every metric a verdict compares: each quality metric's final and best value, each loss's final window."""
    return [f"{m}.{kind}" for m in INFO for kind in ("final", "best")] + [f"{loss}.final" for loss in LOSSES]


def goals() -> dict[str, str]:
    """name -> "min" or "max" for the sweep's criteria (an ideal-value metric: its distance from the ideal, "min")."""
    return {name: ("min" if info.goal == "ideal" else info.goal) for name, info in INFO.items()}


__all__ = ["Batch", "Info", "Metric", "Reference", "METRICS", "INFO", "DEFAULT_PRIMARY", "TABLE_COLUMNS",
           "TREND_METRICS", "VERSIONS", "comparable_metrics", "goals"]
