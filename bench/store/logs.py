"""The append-only CSV logs of a pair: ``metrics.csv`` (one row per iteration) and ``quality.csv``.

Rows are tidy (one read_csv per file, concatenable across runs) and each is one whole write, flushed
at once and fsynced before the checkpoint that covers it. Resuming verifies every row up to the
checkpoint (``scan_metrics``, ``scan_quality``): a torn, garbled or missing row is found, never skipped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.core.errors import BenchError
from bench.core.metric_table import STEP_METRICS
from bench.store.files import atomic_write_bytes, read_regular, writing

KEY_COLUMNS = ("optimizer", "seed", "step")
TIMING_COLUMNS = ("step_seconds", "elapsed_seconds")
CSV_COLUMNS = (*KEY_COLUMNS, *STEP_METRICS, "status", *TIMING_COLUMNS)
QUALITY_COLUMNS = (*KEY_COLUMNS, "metric", "value", "eval_seconds")


def series_tag(column: str, quality: bool = False) -> str:
    """A CSV column's (or, with ``quality``, a quality metric's) name in TensorBoard and MLflow: grouped by
    kind, so each tool's dashboard shows training, timing and sample quality as sections."""
    if quality:
        return f"quality/{column}"
    return f"time/{column}" if column in TIMING_COLUMNS else f"train/{column}"


def _fmt(v: float) -> str:
    # repr of a float64 round-trips exactly: equal CSV text means equal values.
    return "nan" if v != v else repr(float(v))


class CsvLog:
    """Append-only CSV; each row is one whole ``write``, flushed at once; ``sync()`` makes every row so
    far durable (the pair calls it before each checkpoint, so a checkpoint never covers a lost row).

    Opened with the rows to keep (a resumed pair's verified rows up to its checkpoint): the file is
    rewritten with exactly those, so a resumed run neither loses nor repeats rows.
    """

    def __init__(self, path: Path, columns: tuple[str, ...], keep: list[str] | None = None):
        self.path = path
        with writing(path):
            path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, ("".join([",".join(columns) + "\n", *(keep or [])])).encode())
        with writing(path):
            self._f = open(path, "a", buffering=1 << 16)

    def write_line(self, line: str) -> None:
        with writing(self.path):
            self._f.write(line)
            self._f.flush()

    def sync(self) -> None:
        with writing(self.path):
            self._f.flush()
            os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()


class MetricsLog(CsvLog):
    """``metrics.csv``: one row per iteration."""

    def __init__(self, path: Path, label: str, seed: int, keep: list[str] | None = None):
        super().__init__(path, CSV_COLUMNS, keep)
        self.prefix = f"{label},{seed},"

    def write(self, step: int, values: np.ndarray, status: str, step_seconds: float, elapsed: float) -> None:
        self.write_line(f"{self.prefix}{step}," + ",".join(_fmt(v) for v in values)
                        + f",{status},{step_seconds:.6f},{elapsed:.3f}\n")


class QualityLog(CsvLog):
    """``quality.csv``: (step, metric, value) rows at every evaluation."""

    def __init__(self, path: Path, label: str, seed: int, keep: list[str] | None = None):
        super().__init__(path, QUALITY_COLUMNS, keep)
        self.prefix = f"{label},{seed},"

    def write(self, step: int, values: dict[str, float], seconds: float) -> None:
        self.write_line("".join(f"{self.prefix}{step},{k},{_fmt(v)},{seconds:.4f}\n" for k, v in values.items()))


# ------------------------------------------------------------------ verifying


@dataclass(frozen=True)
class Scan:
    """What a pair's log holds, read line by line until the first line that is not a whole, valid row."""

    good: int  # every step up to this one is present, whole and in order (metrics: each row; quality: each group)
    problem: str  # "" when nothing is wrong; else the first thing that is, with its line number
    rows: list[tuple[int, str]]  # (step, line) of the good rows, in order

    def upto(self, step: int) -> list[str]:
        """The good rows' lines with step <= ``step``."""
        return [line for s, line in self.rows if s <= step]


def _lines(path: Path) -> tuple[str | None, list[str]]:
    """(header, data lines with their newlines); a line that is not UTF-8 becomes "\0" (garbled)."""
    raw = path.read_bytes().split(b"\n")
    lines = [(b + b"\n") for b in raw[:-1]] + ([raw[-1]] if raw[-1] else [])
    text = []
    for b in lines:
        try:
            text.append(b.decode("utf-8"))
        except UnicodeDecodeError:
            text.append("\0")
    return (text[0] if text else None), text[1:]


def whole_lines(path: Path, columns: tuple[str, ...]) -> list[str]:
    """A log's data lines that are whole (newline-ended, every field there), for exporters: a pair cut short by
    a kill may end in a torn line, which is left out. No file: no lines."""
    if not path.is_file():
        return []
    return [ln for ln in _lines(path)[1] if ln.endswith("\n") and ln.count(",") == len(columns) - 1]


def _number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def scan_metrics(path: Path, label: str, seed: int) -> Scan:
    """Verify ``metrics.csv`` row by row: rows 1, 2, 3, ... of this pair, each whole (newline-ended,
    every column, numbers that parse) and none after a diverged row."""
    if not path.exists():
        return Scan(0, "", [])
    header, lines = _lines(path)
    if header != ",".join(CSV_COLUMNS) + "\n":
        return Scan(0, f"{path}: line 1 is not bench's header", [])
    rows: list[tuple[int, str]] = []
    for n, line in enumerate(lines, start=2):
        step = len(rows) + 1
        f = line.rstrip("\n").split(",")
        whole = line.endswith("\n") and "\0" not in line and len(f) == len(CSV_COLUMNS)
        if not whole or f[0] != label or f[1] != str(seed) or f[2] != str(step) or f[-3] not in ("ok", "diverged") \
                or not all(_number(v) for v in f[3:-3] + f[-2:]) or (rows and rows[-1][1].split(",")[-3] == "diverged"):
            what = "torn (cut short)" if not line.endswith("\n") else "garbled" if not whole else "not the expected row"
            return Scan(len(rows), f"{path}: line {n} (iteration {step}) is {what}", rows)
        rows.append((step, line))
    return Scan(len(rows), "", rows)


def scan_quality(path: Path, label: str, seed: int, steps: list[int], upto: int) -> Scan:
    """Verify ``quality.csv`` against the evaluation steps it should hold up to iteration ``upto``
    (ascending): one whole group of rows per step, each with the same metrics as the first. ``good`` is
    the step before the first group that is missing or damaged, or ``upto`` when none is."""
    groups: dict[int, list[tuple[str, str]]] = {}
    damaged = ""
    if path.exists():
        header, lines = _lines(path)
        if header != ",".join(QUALITY_COLUMNS) + "\n":
            lines, damaged = [], f"{path}: line 1 is not bench's header"
        last = -1
        for n, line in enumerate(lines, start=2):
            f = line.rstrip("\n").split(",")
            if (not line.endswith("\n") or "\0" in line or len(f) != len(QUALITY_COLUMNS) or f[0] != label
                    or f[1] != str(seed) or not f[2].isdigit() or int(f[2]) < last or not _number(f[4])
                    or not _number(f[5])):
                damaged = f"{path}: line {n} is {'torn (cut short)' if not line.endswith(chr(10)) else 'garbled'}"
                groups.pop(last, None)  # the damaged line may belong to the group before it
                break
            last = int(f[2])
            groups.setdefault(last, []).append((f[3], line))
    names: list[str] | None = None
    rows: list[tuple[int, str]] = []
    for step in steps:
        group = groups.get(step, [])
        if not group or (names is not None and [m for m, _ in group] != names):
            return Scan(step - 1, damaged or f"{path}: the evaluation at iteration {step} is missing or incomplete", rows)
        names = names or [m for m, _ in group]
        rows += [(step, line) for _, line in group]
    return Scan(upto, "", rows)


# ------------------------------------------------------------------ reading

_NUMBER_WORDS = {"nan", "inf", "-inf", "+inf", "infinity", "-infinity", "+infinity"}


def _read_log(path: Path, columns: tuple[str, ...], label: str | None, seed: int | None,
              numeric: tuple[str, ...], words: dict[str, set[str]]) -> pd.DataFrame | None:
    """One of a pair's CSV logs, checked line by line: bench's header, every field of every row, numbers
    that parse, this pair's optimizer and seed. A torn last line (a kill mid-write) is dropped; anything
    else that is wrong is a BenchError naming the file and line (a run folder may come from anywhere)."""
    if not path.exists():
        return None
    try:
        raw = read_regular(path)
    except OSError as e:
        raise BenchError(f"{path}: unreadable ({e.strerror or e})") from None
    if raw and not raw.endswith(b"\n"):
        raw = raw[: raw.rfind(b"\n") + 1]  # the torn last line of a writer killed mid-row
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise BenchError(f"{path}: line {line} is not UTF-8 text; not a bench log") from None
    if "\0" in text:
        line = text[: text.index("\0")].count("\n") + 1
        raise BenchError(f"{path}: line {line} holds NUL bytes (garbled); resume the run to recompute it")
    lines = text.split("\n")[:-1] if text else []
    if not lines or lines[0] != ",".join(columns):
        raise BenchError(f"{path}: line 1 is not bench's header ({','.join(columns[:4])},...)")
    rows = [ln.split(",") for ln in lines[1:]]
    for n, fields in enumerate(rows, start=2):
        if len(fields) != len(columns):
            raise BenchError(f"{path}: line {n} has {len(fields)} fields, expected {len(columns)} (garbled)")
    df = pd.DataFrame(rows, columns=list(columns))
    for col in numeric:
        parsed = pd.to_numeric(df[col], errors="coerce")
        bad = parsed.isna() & ~df[col].str.strip().str.lower().isin(_NUMBER_WORDS)
        if bad.any():
            n = int(bad.to_numpy().argmax()) + 2
            raise BenchError(f"{path}: line {n}: {col} = {df[col].iloc[n - 2][:40]!r} is not a number (garbled)")
        df[col] = parsed.astype(float)
    for col, allowed in words.items():
        bad = ~df[col].isin(allowed)
        if bad.any():
            n = int(bad.to_numpy().argmax()) + 2
            raise BenchError(f"{path}: line {n}: {col} = {df[col].iloc[n - 2][:40]!r} is not one of "
                             f"{', '.join(sorted(allowed))} (garbled)")
    for col in (c for c in ("seed", "step") if c in df.columns):
        values = df[col].to_numpy()
        whole = (values == values.round()) & (values >= 0) & (values < 2**53) if len(values) else values
        if len(values) and not whole.all():
            n = int((~whole).argmax()) + 2
            raise BenchError(f"{path}: line {n}: {col} is not a whole number >= 0 (garbled)")
        df[col] = df[col].astype("int64")
    if label is not None and len(df):
        other = (df.optimizer != label) | (df.seed != seed)
        if other.any():
            n = int(other.to_numpy().argmax()) + 2
            raise BenchError(f"{path}: line {n} belongs to {df.optimizer.iloc[n - 2]!r} seed {df.seed.iloc[n - 2]}, "
                             f"not this pair ({label!r} seed {seed})")
    return df


def read_metrics(path: Path, label: str | None = None, seed: int | None = None) -> pd.DataFrame | None:
    numeric = tuple(c for c in CSV_COLUMNS if c not in ("optimizer", "status"))
    return _read_log(path, CSV_COLUMNS, label, seed, numeric, {"status": {"ok", "diverged"}})


def read_quality(path: Path, label: str | None = None, seed: int | None = None) -> pd.DataFrame | None:
    df = _read_log(path, QUALITY_COLUMNS, label, seed, ("seed", "step", "value", "eval_seconds"), {})
    if df is not None and len(df):
        names = df.metric.str.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,63}")
        if not names.all():
            n = int((~names).to_numpy().argmax()) + 2
            raise BenchError(f"{path}: line {n}: {df.metric.iloc[n - 2][:40]!r} is not a metric name (garbled)")
    return df


# ------------------------------------------------------------------ learning-rate schedules

LEARNING_RATES = "learning_rates.csv"  # beside manifest.json: (optimizer, network, step, learning_rate)
LR_COLUMNS = ("optimizer", "network", "step", "learning_rate")


def write_learning_rates(path: Path, rows: list[tuple[str, str, int, float]]) -> None:
    atomic_write_bytes(path, ("".join([",".join(LR_COLUMNS) + "\n",
                                       *(f"{o},{n},{s},{_fmt(v)}\n" for o, n, s, v in rows)])).encode())


def read_learning_rates(path: Path) -> pd.DataFrame | None:
    """The run's learning-rate table (None when it trained at constant rates), checked like the other logs."""
    df = _read_log(path, LR_COLUMNS, None, None, ("step", "learning_rate"), {"network": {"generator", "discriminator"}})
    if df is None:
        return None
    df["step"] = df["step"].astype("int64")
    return df
