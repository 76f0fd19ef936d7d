"""`bench export tensorboard RUN_DIR`: event files for runs made before, or with --no-tensorboard."""

from __future__ import annotations

from pathlib import Path

from bench.core.errors import BenchError
from bench.export.pairs import pairs
from bench.store.files import warn
from bench.store.layout import run_dirs
from bench.store.load import dig
from bench.store.tensorboard import export_pair


def export(folder: Path) -> list[Path]:
    """Every pair of every run folder at or below ``folder``; returns the pair folders written. The
    events are rebuilt from the CSVs and sample grids, replacing any that were there."""
    written = []
    runs = run_dirs(folder)
    for run_dir in runs:
        try:
            found = list(pairs(run_dir))
        except BenchError as e:
            if len(runs) == 1:
                raise
            warn(f"{e}; that run is not exported")
            continue
        for pair in found:
            written.append(export_pair(pair.files.root, pair.hparams, pair.session,
                                       str(dig(pair.status, "status", str, "")), pair.time("started")))
    if not written:
        raise BenchError(f"{folder}: no pair has logged a row yet; nothing to export")
    return written
