"""Read a run folder into pandas and condense it: final-window levels, flags, diversity.

Used by the report and by the trend checks; reads only files under ``results/`` and
never imports TensorFlow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.errors import BenchError
from bench.metrics import mean_pairwise
from bench.results import MANIFEST, RunFiles, csv_columns, read_json, run_name, writer_alive

LOSSES = ("d_loss_real", "d_loss_fake", "g_loss")
LOSS_TITLES = {"d_loss_real": "D loss on real", "d_loss_fake": "D loss on fake", "g_loss": "G loss"}
FINAL_FRACTION = 0.10  # "final" = the last 10% of iterations
D_WINS_LOSS = 0.05  # mean D loss below this ...
D_WINS_FRACTION = 0.20  # ... over a window this long (fraction of the run) = D wins outright
COLLAPSE_RATIO = 0.25  # sample diversity below this fraction of the real images' = collapse


@dataclass
class RunData:
    run_dir: Path
    manifest: dict
    metrics: pd.DataFrame  # every (optimizer, seed) row, concatenated
    quality: pd.DataFrame  # every quality.csv row (step, metric, value), concatenated; may be empty
    status: dict[str, dict]  # run name -> status.json (or {"status": "missing"})
    optimizers: list[str]
    seeds: list[int]
    state: str  # finished | finished-with-divergence | in progress | interrupted

    @property
    def steps_total(self) -> int:
        return int(self.manifest["config"]["train"]["steps"])


def _read_log(path: Path, last_column: str) -> pd.DataFrame | None:
    """One of a run's CSV logs; a torn last line (a kill mid-write) is dropped, not fatal."""
    if not path.exists():
        return None
    try:
        df = pd.read_csv(path, on_bad_lines="skip")
    except (pd.errors.EmptyDataError, pd.errors.ParserError, OSError, UnicodeDecodeError) as e:
        raise BenchError(f"{path}: unreadable CSV ({e})") from None
    if "step" not in df.columns or last_column not in df.columns:
        raise BenchError(f"{path}: not a bench log (no step/{last_column} columns)")
    return df.dropna(subset=[last_column])


def read_metrics(path: Path) -> pd.DataFrame | None:
    return _read_log(path, "status")


def read_quality(path: Path) -> pd.DataFrame | None:
    return _read_log(path, "value")


def load_run(run_dir: Path) -> RunData:
    run_dir = Path(run_dir)
    if not (run_dir / MANIFEST).exists():
        raise BenchError(f"{run_dir}: no {MANIFEST}; not a bench run folder")
    manifest = read_json(run_dir / MANIFEST)
    try:
        optimizers = list(manifest["config"]["optimizers"])
        seeds = [int(s) for s in manifest["config"]["seeds"]]
    except (KeyError, TypeError, ValueError):
        raise BenchError(f"{run_dir}/{MANIFEST}: no configuration with optimizers and seeds") from None
    frames, qframes, status = [], [], {}
    for label in optimizers:
        for seed in seeds:
            files = RunFiles.of(run_dir, label, seed)
            df = read_metrics(files.metrics)
            if df is not None and len(df):
                frames.append(df)
            q = read_quality(files.quality)
            if q is not None and len(q):
                qframes.append(q)
            status[run_name(label, seed)] = read_json(files.status) if files.status.exists() else {"status": "missing"}
    metrics = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(csv_columns()))
    quality = (pd.concat(qframes, ignore_index=True) if qframes
               else pd.DataFrame(columns=["optimizer", "seed", "step", "metric", "value"]))
    state = manifest.get("status", "running")
    if state == "running":
        state = "in progress" if writer_alive(run_dir) else "interrupted"
    return RunData(run_dir, manifest, metrics, quality, status, optimizers, seeds, state)


# ------------------------------------------------------------------ per-run numbers


def final_window(df: pd.DataFrame, steps_total: int) -> pd.DataFrame:
    """Rows of the last FINAL_FRACTION of the planned iterations (of what exists)."""
    n = max(1, int(math.ceil(steps_total * FINAL_FRACTION)))
    last = df.step.max()
    return df[df.step > last - n]


def d_wins_step(df: pd.DataFrame, steps_total: int) -> int | None:
    """First step of a long window where D's mean loss stays near 0, or None."""
    window = max(5, int(steps_total * D_WINS_FRACTION))
    if len(df) < window:
        return None
    d = ((df.d_loss_real + df.d_loss_fake) / 2).rolling(window).mean()
    hit = np.flatnonzero(d.to_numpy() < D_WINS_LOSS)
    return int(df.step.iloc[hit[0]] - window + 1) if len(hit) else None


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
    if not real_path.exists() or not folder.exists():
        return pd.DataFrame(columns=["step", "diversity"])
    real = mean_pairwise(np.load(real_path))
    rows = []
    for p in sorted(folder.glob("step_*.npy")):
        try:
            rows.append((int(p.stem[5:]), mean_pairwise(np.load(p)) / real))
        except (OSError, ValueError):
            continue  # a sample file cut short by a kill
    return pd.DataFrame(rows, columns=["step", "diversity"])


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
    df = data.metrics[(data.metrics.optimizer == label) & (data.metrics.seed == seed)].sort_values("step")
    st = data.status.get(run_name(label, seed), {})
    status = st.get("status", "missing")
    if status == "running" and data.state == "interrupted":
        status = "interrupted"
    ok = df[df.status == "ok"]
    win = final_window(ok, data.steps_total) if len(ok) else ok
    div = diversity(data, label, seed)
    last_div = float(div.diversity.iloc[-1]) if len(div) else float("nan")
    quality = final_quality(data, label, seed)
    return RunSummary(
        optimizer=label, seed=seed, status=status, steps_done=int(df.step.max()) if len(df) else 0,
        diverged_at=st.get("diverged_at"),
        final={k: float(win[k].mean()) if len(win) else float("nan") for k in LOSSES},
        ms_per_step=float(1000 * df.step_seconds.iloc[1:].median()) if len(df) > 1 else float("nan"),
        d_wins_at=d_wins_step(ok, data.steps_total) if len(ok) else None,
        diversity=last_div,
        collapsed=bool(last_div < COLLAPSE_RATIO) if not math.isnan(last_div) else False,
        quality=quality,
    )


def summarize(data: RunData) -> dict[str, list[RunSummary]]:
    return {label: [summarize_run(data, label, s) for s in data.seeds] for label in data.optimizers}


def spread(values: list[float]) -> tuple[float, float, float]:
    """(median, q25, q75) ignoring NaN; all NaN if nothing is finite."""
    v = np.asarray([x for x in values if x == x and math.isfinite(x)], dtype=float)
    if not len(v):
        return (math.nan, math.nan, math.nan)
    return (float(np.median(v)), float(np.percentile(v, 25)), float(np.percentile(v, 75)))
