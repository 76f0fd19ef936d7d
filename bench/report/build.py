"""`bench report`: the pages of every run folder and sweep found below a folder."""

from __future__ import annotations

from pathlib import Path

from bench.core.errors import BenchError
from bench.core.names import SWEEP_FILE
from bench.report.run import build_report
from bench.report.sweep import build_sweep_report
from bench.store.files import warn
from bench.store.layout import run_dirs


def build_reports(folder: Path, out: Path) -> list[Path]:
    """Build the report of ``folder`` (a run or sweep folder) or of every one below it; a sweep's two
    phases are reported with their sweep. Returns the pages written."""
    folder = Path(folder)
    sweeps = sorted({p.parent for pattern in (SWEEP_FILE, f"*/{SWEEP_FILE}", f"*/*/{SWEEP_FILE}")
                     for p in folder.glob(pattern)})
    runs = []
    if not (folder / SWEEP_FILE).exists():
        try:
            runs = [d for d in run_dirs(folder) if d.parent not in sweeps]
        except BenchError:
            if not sweeps:
                raise
    jobs = [(build_report, d) for d in runs] + [(build_sweep_report, d) for d in sweeps]  # a sweep: its phases too
    pages = []
    for build, d in jobs:
        try:
            pages.append(build(d, out))
        except BenchError as e:
            if len(jobs) == 1:
                raise  # a command about that one folder: its problem is the command's
            warn(f"{e}; no report for {d}")  # one of many: the others are still reported
    if not pages:
        raise BenchError(f"{folder}: no report could be written (see the warnings above)")
    return pages
