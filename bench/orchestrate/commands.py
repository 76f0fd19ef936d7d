"""`bench run` and `bench sweep` as the two kinds of folder the start-or-resume path handles."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bench.core.names import MANIFEST, SWEEP_FILE
from bench.core.sweep_table import parse_sweep
from bench.orchestrate import run as R
from bench.orchestrate import sweep as SW
from bench.orchestrate.request import Request, resolve_experiment
from bench.orchestrate.session import Kind, start_or_resume
from bench.quality.scores import goals


def _resolve_sweep(req: Request):
    exp = resolve_experiment(req)
    return exp, parse_sweep(exp, goals(), f"{exp.name}: sweep", selected=True)


RUN = Kind(
    what="run", record=MANIFEST, prefix="",
    resolve=lambda req: (resolve_experiment(req), None),
    from_record=lambda manifest, folder: (R.experiment_from_manifest(manifest, folder), None),
    matches=lambda manifest, exp, _: R.is_resumable(manifest, exp),
    execute=lambda exp, _, folder, opts, prepared, manifest: R.execute(exp, folder, opts, prepared, manifest),
)

SWEEP = Kind(
    what="sweep", record=SWEEP_FILE, prefix="sweep-",
    resolve=_resolve_sweep,
    from_record=SW.experiment_of,
    matches=SW.is_resumable,
    execute=SW.run_sweep,
)


def run(req: Request, after: Callable[[Path], None] | None = None) -> tuple[Path, dict]:
    """Train every (optimizer, seed) pair of the requested experiment; returns the folder and its manifest."""
    return start_or_resume(req, RUN, after)


def run_many(reqs: list[Request], after: Callable[[Path], None] | None = None) -> list[tuple[Path, dict]]:
    """Several experiments one after another, each into its own run folder; every experiment, data set and
    optimizer is checked before the first one trains."""
    if len(reqs) == 1:  # one experiment (or --resume, whose experiment is the folder's): the plain path
        return [run(reqs[0], after)]
    exps = [resolve_experiment(r) for r in reqs]
    ready = [R.prepare(e) for e in exps]
    return [start_or_resume(r, RUN, after, (e, None), p) for r, e, p in zip(reqs, exps, ready, strict=True)]


def sweep(req: Request, after: Callable[[Path], None] | None = None) -> tuple[Path, dict]:
    """Both phases of the requested experiment's sweep; returns the folder and sweep.json's record."""
    return start_or_resume(req, SWEEP, after)
