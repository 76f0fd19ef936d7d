"""A run folder read back into pandas: the manifest, every pair's logs and status.

A run folder is untrusted input (a CI artifact, a colleague's results, a shared disk): the manifest's
fields are checked before any becomes a path or a number, a pair folder or file that a symlink leads out
of the run folder is skipped with a warning, and a garbled file is a BenchError naming it (and its line).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.core.errors import BenchError
from bench.core.names import MANIFEST, PLAIN_NAME, run_name
from bench.store.files import outside, read_json, writer_alive
from bench.store.layout import RunFiles
from bench.store.logs import CSV_COLUMNS, QUALITY_COLUMNS, read_metrics, read_quality

# an optimizer label names a folder (runs/<label>-seed<seed>): from a manifest, it must be a plain name
LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")


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
    steps_total: int = 0  # the planned iterations per pair (config.train.steps)
    experiment: str = ""

    def pair(self, label: str, seed: int) -> pd.DataFrame:
        """One pair's metrics rows, in step order."""
        m = self.metrics
        return m[(m.optimizer == label) & (m.seed == seed)].sort_values("step")

    def pair_status(self, label: str, seed: int) -> str:
        return self.status.get(run_name(label, seed), {}).get("status", "missing")


@dataclass(frozen=True)
class Plan:
    """What a manifest says a run holds, checked: its experiment, optimizer labels, seeds and step count."""

    experiment: str
    optimizers: list[str]
    seeds: list[int]
    steps: int


def manifest_plan(manifest: dict, where: Path) -> Plan:
    """The fields of a manifest every reader relies on, checked (BenchError naming the file otherwise)."""
    def bad(what: str) -> BenchError:
        return BenchError(f"{where}: {what}; not a bench manifest bench can read")

    config = manifest.get("config")
    if not isinstance(config, dict):
        raise bad("no configuration")
    labels = config.get("optimizers")
    if not isinstance(labels, (dict, list)) or not labels:
        raise bad("no optimizers in its configuration")
    labels = [str(x) for x in labels]
    for label in labels:
        if not LABEL.match(label):
            raise bad(f"optimizer label {label!r} is not a plain name")
    if len(set(labels)) != len(labels):
        raise bad("an optimizer label is listed twice")
    seeds = config.get("seeds")
    if not isinstance(seeds, list) or not seeds or not all(
            isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**32 for s in seeds) or len(set(seeds)) != len(seeds):
        raise bad("its seeds are not a list of distinct integers in [0, 2**32)")
    train = config.get("train")
    steps = train.get("steps") if isinstance(train, dict) else None
    if not isinstance(steps, int) or isinstance(steps, bool) or not 0 < steps < 2**53:
        raise bad("config.train.steps is not a positive integer")
    experiment = manifest.get("experiment")
    if not isinstance(experiment, str) or not PLAIN_NAME.match(experiment):
        raise bad("its experiment name is not a plain name")
    return Plan(experiment, labels, list(seeds), steps)


def load_run(run_dir: Path) -> RunData:
    run_dir = Path(run_dir)
    if not (run_dir / MANIFEST).exists():
        raise BenchError(f"{run_dir}: no {MANIFEST}; not a bench run folder")
    manifest = read_json(run_dir / MANIFEST)
    plan = manifest_plan(manifest, run_dir / MANIFEST)
    frames, qframes, status = [], [], {}
    for label in plan.optimizers:
        for seed in plan.seeds:
            files = RunFiles.of(run_dir, label, seed)
            name = run_name(label, seed)
            if files.root.exists() and outside(run_dir, files.root, "that pair is treated as missing"):
                status[name] = {"status": "missing"}
                continue
            df = None if outside(run_dir, files.metrics) else read_metrics(files.metrics, label, seed)
            if df is not None and len(df):
                frames.append(df)
            q = None if outside(run_dir, files.quality) else read_quality(files.quality, label, seed)
            if q is not None and len(q):
                qframes.append(q)
            record = {"status": "missing"}
            if files.status.exists() and not outside(run_dir, files.status):
                record = read_json(files.status)
                if not isinstance(record.get("status", ""), str):
                    raise BenchError(f"{files.status}: 'status' is not a string")
            status[name] = record
    metrics = pd.concat(frames, ignore_index=True) if frames else _empty(CSV_COLUMNS)
    quality = pd.concat(qframes, ignore_index=True) if qframes else _empty(QUALITY_COLUMNS)
    state = manifest.get("status", "running")
    if not isinstance(state, str):
        state = "running"
    if state == "running":
        state = "in progress" if writer_alive(run_dir) else "interrupted"
    return RunData(run_dir, manifest, metrics, quality, status, plan.optimizers, plan.seeds, state, plan.steps,
                   plan.experiment)


def _empty(columns: tuple[str, ...]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=float if c not in ("optimizer", "status", "metric") else object)
                         for c in columns})


def finite_or_nan(value) -> float:
    """A number from an untrusted record, as a float (NaN when it is none)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


def dig(record, path: str, kind: type | tuple[type, ...] = object, default=None):
    """``record["a"]["b"]...`` for ``path`` "a.b...", or ``default`` when a level is missing or not a table, or
    the value is not of ``kind``: a field of an untrusted record (a manifest, a status, a verdict)."""
    node = record
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return default
        node = node[key]
    if kind is not object and (not isinstance(node, kind) or (isinstance(node, bool) and bool not in (
            kind if isinstance(kind, tuple) else (kind,)))):
        return default
    return node


def display(record, skeleton):
    """A copy of an untrusted record shaped like ``skeleton`` for a page to show: every field the skeleton
    names is there (its default when missing or of another shape), lists hold scalars, anything else that
    is not a plain scalar is shown as text. Extra fields of the record are kept the same way."""
    if isinstance(skeleton, dict):
        source = record if isinstance(record, dict) else {}
        out = {k: display(source.get(k), v) for k, v in skeleton.items()}
        for k, v in source.items():
            if k not in out and isinstance(k, str):
                out[k] = display(v, {} if isinstance(v, dict) else [] if isinstance(v, list) else "")
        return out
    if isinstance(skeleton, list):
        return [_scalar(v) for v in record] if isinstance(record, list) else list(skeleton)
    if record is None:
        return skeleton
    return _scalar(record)


def _scalar(v):
    return v if isinstance(v, (str, int, float, bool)) or v is None else str(v)
