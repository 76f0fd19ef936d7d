"""`bench report`: the pages of every run folder and sweep found below a folder."""

from __future__ import annotations

from pathlib import Path

from bench.core.errors import BenchError
from bench.core.names import SWEEP_FILE
from bench.report.run import build_report
from bench.report.sweep import build_sweep_report
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
    pages = [build_report(run_dir, out) for run_dir in runs]
    pages += [build_sweep_report(sweep_dir, out) for sweep_dir in sweeps]  # its page and its phases' reports
    return pages
