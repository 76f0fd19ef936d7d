"""Scoring a sweep's settings from their run folders."""

from __future__ import annotations

import math
from pathlib import Path

from bench.analysis.stats import spread
from bench.analysis.trends import per_seed_metrics
from bench.quality.scores import INFO
from bench.store.load import load_run


def score_run(run_dir: Path, criterion: str, goal: str) -> dict[str, dict]:
    """Criterion per (label, seed) of a finished phase, and its median per label.

    A diverged or failed seed scores the worst possible value: a setting that blows up is
    never "best" because its last good window looked fine.
    """
    data = load_run(run_dir)
    worst = math.inf if goal == "min" else -math.inf
    out = {}
    for label in data.optimizers:
        values, states = [], []
        for seed in data.seeds:
            status = data.pair_status(label, seed)
            v = per_seed_metrics(data, label, seed).get(criterion, math.nan) if status == "finished" else worst
            info = INFO.get(criterion.partition(".")[0])
            if info is not None and info.goal == "ideal" and math.isfinite(v):
                v = abs(v - info.ideal)  # the sweep minimises the distance from the ideal value
            values.append(worst if v != v else float(v))  # NaN (e.g. not scored): worst as well
            states.append(status)
        median, q25, q75 = spread(values, finite_only=False)  # a diverged seed counts, as the worst
        out[label] = {"values": values, "seeds": data.seeds, "status": states, "median": median, "q25": q25, "q75": q75}
    return out
