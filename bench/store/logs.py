"""The append-only CSV logs of a pair: ``metrics.csv`` (one row per iteration) and ``quality.csv``.

Rows are tidy (one read_csv per file, concatenable across runs) and each is one whole write,
flushed at once, so a kill leaves at most a torn last line, which resuming drops.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench.core.errors import BenchError
from bench.core.metric_table import STEP_METRICS
from bench.store.files import atomic_write_bytes, writing

KEY_COLUMNS = ("optimizer", "seed", "step")
TIMING_COLUMNS = ("step_seconds", "elapsed_seconds")
CSV_COLUMNS = (*KEY_COLUMNS, *STEP_METRICS, "status", *TIMING_COLUMNS)
QUALITY_COLUMNS = (*KEY_COLUMNS, "metric", "value", "eval_seconds")


def _fmt(v: float) -> str:
    # repr of a float64 round-trips exactly: equal CSV text means equal values.
    return "nan" if v != v else repr(float(v))


class CsvLog:
    """Append-only CSV whose third column is the step; each row is one whole ``write``, flushed at once.

    Opening at ``resume_step`` drops rows past the checkpoint (and any partial last line),
    so a resumed run neither loses nor repeats rows.
    """

    def __init__(self, path: Path, columns: tuple[str, ...], resume_step: int = 0):
        self.path = path
        header = ",".join(columns) + "\n"
        with writing(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            if resume_step and path.exists():
                keep = [header]
                with open(path) as f:
                    next(f, None)
                    for line in f:
                        if not line.endswith("\n"):
                            break  # torn last line from a kill
                        if int(line.split(",", 3)[2]) > resume_step:
                            break
                        keep.append(line)
                atomic_write_bytes(path, "".join(keep).encode())
            else:
                atomic_write_bytes(path, header.encode())
            self._f = open(path, "a", buffering=1 << 16)

    def write_line(self, line: str) -> None:
        with writing(self.path):
            self._f.write(line)
            self._f.flush()

    def close(self) -> None:
        self._f.close()


class MetricsLog(CsvLog):
    """``metrics.csv``: one row per iteration."""

    def __init__(self, path: Path, label: str, seed: int, resume_step: int = 0):
        super().__init__(path, CSV_COLUMNS, resume_step)
        self.prefix = f"{label},{seed},"

    def write(self, step: int, values: np.ndarray, status: str, step_seconds: float, elapsed: float) -> None:
        self.write_line(f"{self.prefix}{step}," + ",".join(_fmt(v) for v in values)
                        + f",{status},{step_seconds:.6f},{elapsed:.3f}\n")


class QualityLog(CsvLog):
    """``quality.csv``: (step, metric, value) rows at every evaluation."""

    def __init__(self, path: Path, label: str, seed: int, resume_step: int = 0):
        super().__init__(path, QUALITY_COLUMNS, resume_step)
        self.prefix = f"{label},{seed},"

    def write(self, step: int, values: dict[str, float], seconds: float) -> None:
        self.write_line("".join(f"{self.prefix}{step},{k},{_fmt(v)},{seconds:.4f}\n" for k, v in values.items()))


# ------------------------------------------------------------------ reading


def _read_log(path: Path, last_column: str) -> pd.DataFrame | None:
    """One of a pair's CSV logs; a torn last line (a kill mid-write) is dropped, not fatal."""
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
