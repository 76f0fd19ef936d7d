"""Where things are: run folders under a results folder, pair folders inside a run folder."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.core.errors import BenchError
from bench.core.names import MANIFEST, run_name
from bench.store.files import ensure_writable, inside, os_error, outside, read_json, writer_alive


@dataclass(frozen=True)
class RunFiles:
    """The files of one (optimizer, seed) pair."""

    root: Path

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.csv"

    @property
    def status(self) -> Path:
        return self.root / "status.json"

    @property
    def quality(self) -> Path:
        return self.root / "quality.csv"

    @property
    def samples(self) -> Path:
        return self.root / "samples"

    @classmethod
    def of(cls, run_dir: Path, label: str, seed: int) -> RunFiles:
        return cls(run_dir / "runs" / run_name(label, seed))


def new_run_dir(out: Path, experiment: str, prefix: str = "", reports: Path | None = None) -> Path:
    """A fresh ``<out>/<experiment>/<prefix><timestamp>`` folder; never reuses one another process made.

    With ``reports``, the id is also reserved there (``<reports>/<experiment>/<id>/``): two runs started
    in the same second into different results folders that share a reports folder get different ids,
    so neither report overwrites the other."""
    parent = inside(out, experiment)
    ensure_writable(parent)
    report_parent = inside(reports, experiment) if reports is not None else None
    if report_parent is not None:
        ensure_writable(report_parent)
    stamp = prefix + time.strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        name = stamp if n == 0 else f"{stamp}-{n}"
        path = parent / name
        try:
            path.mkdir()  # atomic: two processes starting in the same second get different folders
        except FileExistsError:
            continue
        except OSError as e:
            raise os_error(e, path) from None
        if report_parent is None:
            return path
        try:
            (report_parent / name).mkdir()  # atomic as well: the id is ours in both folders
            return path
        except FileExistsError:
            path.rmdir()
        except OSError as e:
            path.rmdir()
            raise os_error(e, report_parent / name) from None
    raise BenchError(f"cannot create a run folder under {parent}")


def newest_unfinished(folder: Path, pattern: str, record: str, matches: Callable[[dict], bool]) -> Path | None:
    """The newest folder ``folder/pattern`` whose ``record`` JSON satisfies ``matches`` and that no live
    bench process is writing: what repeating a command picks up again (runs and sweeps alike)."""
    if not folder.is_dir():
        return None
    for d in sorted((p for p in folder.glob(pattern) if p.is_dir()), reverse=True):
        try:
            rec = read_json(d / record)
        except BenchError:
            continue
        if matches(rec) and not writer_alive(d):
            return d
    return None


def run_dirs(folder: Path) -> list[Path]:
    """``folder`` if it is a run folder, else every run folder one or two levels below it; a run folder that
    a symlink leads out of ``folder`` is skipped with a warning (folders bench reads may come from anywhere)."""
    folder = Path(folder)
    if str(folder) == "":
        raise BenchError("an empty path: name a run folder, or a folder holding run folders")
    if (folder / MANIFEST).exists():
        return [folder]
    if folder.exists() and not folder.is_dir():
        raise BenchError(f"{folder}: a file, not a run folder (a folder holding {MANIFEST})")
    if not folder.is_dir():
        raise BenchError(f"{folder}: not found")
    found = sorted({p.parent for pattern in (f"*/{MANIFEST}", f"*/*/{MANIFEST}") for p in folder.glob(pattern)})
    found = [d for d in found if not outside(folder, d / MANIFEST, "that run is skipped")]
    if not found:
        raise BenchError(f"{folder}: no run folders ({MANIFEST}) found")
    return found


def latest_run(folder: Path) -> Path:
    """A run folder as given, or the newest run folder below ``folder``."""
    runs = run_dirs(folder)
    return max(runs, key=lambda p: (p / MANIFEST).stat().st_mtime) if len(runs) > 1 else runs[0]
