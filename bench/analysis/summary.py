"""A run condensed: final-window losses, time per iteration, flags (divergence, D wins, collapse).

Used by the report, the console summary and the trend checks.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.analysis.stats import FINAL_FRACTION, final_mean
from bench.core.metric_table import LOSSES
from bench.core.names import run_name
from bench.quality.metrics import mean_pairwise
from bench.store.files import outside
from bench.store.images import read_array
from bench.store.layout import RunFiles
from bench.store.load import RunData, dig, load_run

D_WINS_LOSS = 0.05  # mean D loss below this ...
D_WINS_FRACTION = 0.20  # ... over a window this long (fraction of the run) = D wins outright
COLLAPSE_RATIO = 0.25  # sample diversity below this fraction of the real images' = collapse


def d_wins_step(df: pd.DataFrame, steps_total: int) -> int | None:
    """First step of a long window where D's mean loss stays near 0, or None."""
    window = max(5, int(steps_total * D_WINS_FRACTION))
    if len(df) < window:
        return None
    d = ((df.d_loss_real + df.d_loss_fake) / 2).rolling(window).mean()
    hit = np.flatnonzero(d.to_numpy() < D_WINS_LOSS)
    return int(df.step.iloc[hit[0]] - window + 1) if len(hit) else None


def d_wins_at_end(df: pd.DataFrame, steps_total: int) -> bool:
    """Whether D still wins outright over the last D_WINS_FRACTION of the run (an early spell that G
    recovers from is normal; one that lasts to the end is a failed run)."""
    window = max(5, int(steps_total * D_WINS_FRACTION))
    if len(df) < window:
        return False
    tail = df.iloc[-window:]
    return bool(((tail.d_loss_real + tail.d_loss_fake) / 2).mean() < D_WINS_LOSS)


def diversity(data: RunData, label: str, seed: int) -> pd.DataFrame:
    """Sample diversity over training: from quality.csv when the run scored quality, else from the
    saved sample grids (mean pairwise distance relative to the real reference grid)."""
    q = quality_series(data, label, seed, "diversity")
    if len(q):
        return q.rename(columns={"value": "diversity"})
    return grid_diversity(data.run_dir, label, seed)


def quality_series(data: RunData, label: str, seed: int, metric: str) -> pd.DataFrame:
    q = data.quality
    q = q[(q.optimizer == label) & (q.seed == seed) & (q.metric == metric)]
    return q[["step", "value"]].sort_values("step").reset_index(drop=True)


def final_quality(data: RunData, label: str, seed: int) -> dict[str, float]:
    """Each quality metric at the last step it was scored."""
    q = data.quality
    q = q[(q.optimizer == label) & (q.seed == seed)]
    if not len(q):
        return {}
    last = q[q.step == q.step.max()]
    return {m: float(v) for m, v in zip(last.metric, last.value, strict=True)}


def grid_diversity(run_dir: Path, label: str, seed: int) -> pd.DataFrame:
    real_path = run_dir / "real.npy"
    folder = RunFiles.of(run_dir, label, seed).samples
    empty = pd.DataFrame(columns=["step", "diversity"])
    if not real_path.exists() or not folder.is_dir() or outside(run_dir, folder):
        return empty
    real = read_array(real_path, run_dir, ndim=None)
    if real is None or len(real) < 2:
        return empty
    scale = mean_pairwise(real)
    rows = []
    for p in sorted(folder.glob("step_*.npy")):
        step = re.fullmatch(r"step_(\d{1,12})\.npy", p.name)
        arr = read_array(p, run_dir, ndim=None) if step else None  # None: cut short by a kill, or not bench's
        if arr is not None and len(arr) > 1 and arr[0].size == real[0].size:
            rows.append((int(step.group(1)), mean_pairwise(arr) / scale))
    return pd.DataFrame(rows, columns=["step", "diversity"]) if rows else empty


@dataclass
class RunSummary:
    optimizer: str
    seed: int
    status: str
    steps_done: int
    diverged_at: int | None
    final: dict[str, float]  # loss -> mean over the final window
    ms_per_step: float
    d_wins_at: int | None
    diversity: float  # at the last sample; nan if none
    collapsed: bool
    quality: dict[str, float]  # final sample-quality metrics (empty if the run did not score them)


def summarize_run(data: RunData, label: str, seed: int) -> RunSummary:
    df = data.pair(label, seed)
    st = data.status.get(run_name(label, seed), {})
    status = st.get("status", "missing")
    if status == "running" and data.state == "interrupted":
        status = "interrupted"
    ok = df[df.status == "ok"]
    div = diversity(data, label, seed)
    last_div = float(div.diversity.iloc[-1]) if len(div) else float("nan")
    return RunSummary(
        optimizer=label, seed=seed, status=status, steps_done=int(df.step.max()) if len(df) else 0,
        diverged_at=dig(st, "diverged_at", int),
        final={k: final_mean(df, k, data.steps_total) for k in LOSSES},
        ms_per_step=float(1000 * df.step_seconds.iloc[1:].median()) if len(df) > 1 else float("nan"),
        d_wins_at=d_wins_step(ok, data.steps_total) if len(ok) else None,
        diversity=last_div,
        collapsed=bool(last_div < COLLAPSE_RATIO) if not math.isnan(last_div) else False,
        quality=final_quality(data, label, seed),
    )


def summarize(data: RunData) -> dict[str, list[RunSummary]]:
    return {label: [summarize_run(data, label, s) for s in data.seeds] for label in data.optimizers}


def console_summary(run_dir: Path) -> str:
    """What `bench run` prints at the end: every pair's final-window losses and time per iteration."""
    data = load_run(run_dir)
    rows = []
    for runs in summarize(data).values():
        for r in runs:
            rows.append({"optimizer": r.optimizer, "seed": r.seed,
                         "status": r.status + (f" at {r.diverged_at}" if r.diverged_at else ""),
                         "D-real": r.final["d_loss_real"], "D-fake": r.final["d_loss_fake"], "G": r.final["g_loss"],
                         "ms/step": r.ms_per_step})
    table = pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3f}")
    return (f"\n{data.experiment}: data {dig(data.manifest, 'data.source', str, '?')}\n"
            f"mean losses over the last {int(FINAL_FRACTION * 100)}% of iterations (before any divergence):\n"
            f"{table}\n\nresults: {run_dir}")
