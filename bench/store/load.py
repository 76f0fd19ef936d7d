"""A run folder read back into pandas: the manifest, every pair's logs and status."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.core.errors import BenchError
from bench.core.names import MANIFEST, run_name
from bench.store.files import read_json, writer_alive
from bench.store.layout import RunFiles
from bench.store.logs import CSV_COLUMNS, read_metrics, read_quality


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

    def pair(self, label: str, seed: int) -> pd.DataFrame:
        """One pair's metrics rows, in step order."""
        m = self.metrics
        return m[(m.optimizer == label) & (m.seed == seed)].sort_values("step")

    def pair_status(self, label: str, seed: int) -> str:
        return self.status.get(run_name(label, seed), {}).get("status", "missing")


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
    metrics = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(CSV_COLUMNS))
    quality = (pd.concat(qframes, ignore_index=True) if qframes
               else pd.DataFrame(columns=["optimizer", "seed", "step", "metric", "value"]))
    state = manifest.get("status", "running")
    if state == "running":
        state = "in progress" if writer_alive(run_dir) else "interrupted"
    return RunData(run_dir, manifest, metrics, quality, status, optimizers, seeds, state)
