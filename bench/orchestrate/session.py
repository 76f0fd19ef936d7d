"""The one start-or-resume path of `bench run` and `bench sweep`.

Resolve what to train (from the command line, or from the folder given to ``--resume``), check
everything, pick up an unfinished folder with the identical configuration unless ``--fresh``,
then open the executor, create the folder if needed, hold its lock while executing, and let the
caller write the report whatever happened.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.core.config import Experiment
from bench.model.optimizers import check_unchanged
from bench.orchestrate.request import (
    Request,
    RunOptions,
    check_same_experiment,
    refuse_changes_on_resume,
    run_options,
)
from bench.orchestrate.run import Prepared, executor_session, prepare
from bench.store.files import ensure_writable, read_json, refuse_links_out, run_lock
from bench.store.layout import new_run_dir, newest_unfinished


@dataclass(frozen=True)
class Kind:
    """What differs between a run folder and a sweep folder."""

    what: str  # "run" or "sweep", in messages
    record: str  # the folder's record file (manifest.json, sweep.json)
    prefix: str  # folder name prefix
    resolve: Callable[[Request], tuple[Experiment, Any]]  # from the command line: the experiment and extras
    from_record: Callable[[dict, Path], tuple[Experiment, Any]]  # from a folder's record (--resume)
    matches: Callable[[dict, Experiment, Any], bool]  # a record this command would continue
    execute: Callable[[Experiment, Any, Path, RunOptions, Prepared, dict | None], Any]


def start_or_resume(req: Request, kind: Kind, after: Callable[[Path], None] | None = None,
                    resolved: tuple[Experiment, Any] | None = None, prepared: Prepared | None = None) -> tuple[Path, Any]:
    """Run ``kind`` for ``req``; ``after(folder)`` runs at the end even on failure (the report).
    ``resolved`` / ``prepared``: done already (several experiments, all checked before the first runs).
    Returns the folder and what ``kind.execute`` returned."""
    opts = run_options(req)
    record = None
    if req.resume is not None:
        folder = req.resume
        refuse_changes_on_resume(req, kind.what)
        record = read_json(folder / kind.record)
        exp, extra = kind.from_record(record, folder)
        check_same_experiment(req, exp, folder, kind.what)
        check_unchanged(exp.optimizers)  # the user's code it started with, or no resume
    else:
        exp, extra = resolved or kind.resolve(req)
    prepared = prepared or prepare(exp)  # every check that can fail runs before anything is written
    ensure_writable(req.out if req.resume is None else folder)
    if req.resume is None:
        folder = None if req.fresh else newest_unfinished(
            req.out / exp.name, f"{kind.prefix}*", kind.record, lambda rec: kind.matches(rec, exp, extra))
        if folder is not None:
            record = read_json(folder / kind.record)
            print(f"resuming the unfinished {kind.what} with the same configuration: {folder} (--fresh starts anew)",
                  file=sys.stderr)
    if folder is not None:
        refuse_links_out(folder)  # a resumed folder may come from anywhere: nothing is written through a link out
    with executor_session(opts):  # one Ray session for the whole command: workers keep TensorFlow loaded
        if folder is None:
            folder = new_run_dir(req.out, exp.name, kind.prefix, req.reports)
        with run_lock(folder):  # refused (another process writes the folder): no report either, nothing written
            try:
                result = kind.execute(exp, extra, folder, opts, prepared, record)
            finally:
                if after is not None:
                    after(folder)
    return folder, result
