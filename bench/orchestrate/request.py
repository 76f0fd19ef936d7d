"""A command line's request, and the experiment it resolves to (file, then options, then ``--set``)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.core import config
from bench.core.config import Experiment
from bench.core.errors import BenchError
from bench.core.sweep_table import parse_sweep
from bench.execute.pair import PROGRESS_EVERY
from bench.model.optimizers import merge_inline, resolve
from bench.model.runtime import available_cores
from bench.quality.scores import comparable_metrics, goals


@dataclass(frozen=True)
class Request:
    """What `bench run` / `bench sweep` were asked to do (None: not given, the experiment decides)."""

    experiment: str | None = None
    optimizers: str | None = None
    seeds: tuple[int, ...] | None = None
    steps: int | None = None
    batch_size: int | None = None
    data: str | None = None
    dataset: str | None = None
    limit: int | None = None
    threads: int | None = None
    xla: bool | None = None
    sets: tuple[str, ...] = ()
    no_eval: bool = False
    no_tensorboard: bool = False
    fid_weights: str | None = None
    out: Path = Path("results")
    reports: Path | None = Path("reports")  # None: no report
    on_pair: Callable[[Path, str, int], None] | None = None  # told (run folder, label, seed) as each pair ends
    resume: Path | None = None
    fresh: bool = False
    quiet: bool = False
    progress_every: float = PROGRESS_EVERY
    jobs: int | None = None
    executor: str = "local"
    address: str | None = None
    command: str = "bench"  # as typed, recorded in the manifest

    # the options that change what is trained (refused beside --resume, which trains what the folder says)
    CONFIG_OPTIONS = ("optimizers", "seeds", "steps", "batch_size", "data", "dataset", "limit", "threads", "xla",
                      "fid_weights")


@dataclass
class RunOptions:
    """How to run what the experiment says: where the pairs go, and how loud."""

    quiet: bool = False
    progress_every: float = PROGRESS_EVERY  # seconds between progress lines when stderr is not a terminal
    jobs: int = 1  # parallel worker processes (bench.execute.local); with Ray: tasks in flight (0 = no cap)
    executor: str = "local"  # local | ray
    address: str | None = None  # Ray cluster address; None starts a local Ray
    command: str = "bench"
    on_pair: Callable[[Path, str, int], None] | None = None  # after each pair is recorded (in this process)


def run_options(req: Request) -> RunOptions:
    if req.address and req.executor != "ray":
        raise BenchError("--address is for --executor ray")
    jobs = req.jobs if req.jobs is not None else (0 if req.executor == "ray" else 1)
    if not (req.progress_every > 0 and math.isfinite(req.progress_every)):
        raise BenchError(f"--progress-every must be a positive number of seconds, not {req.progress_every:g}")
    return RunOptions(quiet=req.quiet, progress_every=req.progress_every, jobs=jobs, executor=req.executor, address=req.address, command=req.command,
                      on_pair=req.on_pair)


def _table(raw: dict, key: str, where: Path) -> dict:
    value = raw.setdefault(key, {})
    if not isinstance(value, dict):
        raise BenchError(f"{where}: [{key}] must be a table")
    return value


def resolve_experiment(req: Request) -> Experiment:
    """The experiment file, with the request's options and ``--set`` assignments applied, validated."""
    path = config.resolve_experiment_path(req.experiment)
    raw = config.load_raw(path)
    data, train, ev = (_table(raw, k, path) for k in ("data", "train", "eval"))
    for key, value in (("path", req.data), ("source", req.dataset), ("limit", req.limit)):
        if value is not None:
            data[key] = config.absolute_path(value) if key == "path" else value
    for key, value in (("steps", req.steps), ("batch_size", req.batch_size), ("threads", req.threads),
                       ("jit_compile", req.xla)):
        if value is not None:
            train[key] = value
    if req.seeds is not None:
        raw["seeds"] = list(req.seeds)
    if req.no_eval:
        ev["enabled"] = False
    if req.no_tensorboard:
        train["tensorboard"] = False
    if req.fid_weights is not None:
        ev["fid_weights"] = config.absolute_path(req.fid_weights)
    for assignment in req.sets:
        config.apply_override(raw, assignment)
    if req.executor == "ray":
        # a fixed count: Ray reserves that many CPUs per task, on nodes whose core counts may differ
        train["threads"] = req.threads or train.get("threads", 0) or 1
    elif (req.jobs or 1) > 1:
        cores = available_cores()
        threads = req.threads or train.get("threads", 0) or max(1, cores // req.jobs)
        if threads * req.jobs > cores:
            raise BenchError(f"--jobs {req.jobs} x {threads} threads each would oversubscribe the {cores} cores; "
                             f"use --threads {max(1, cores // req.jobs)} or fewer jobs")
        train["threads"] = threads  # part of the identity: bits depend on the thread count
    exp = config.experiment_from_dict(raw, str(path))
    config.check_metric_names(exp.compare, comparable_metrics())
    if exp.sweep:  # a malformed [sweep] fails here, for `bench run` too
        parse_sweep(exp, goals(), f"{path}: sweep")
    if req.optimizers is not None:
        exp = dataclasses.replace(exp, optimizers=merge_inline(exp.optimizers, req.optimizers))
    # every user's class read and hashed now: from here on the run uses exactly this code (TOML references were
    # made relative to the experiment file; inline ones are relative to the working directory)
    return dataclasses.replace(exp, optimizers=resolve(exp.optimizers))


def refuse_changes_on_resume(req: Request, what: str) -> None:
    """--resume takes the configuration from the folder; a setting given beside it would be ignored."""
    changed = [f"--{k.replace('_', '-')}" for k in Request.CONFIG_OPTIONS if getattr(req, k) is not None]
    changed += ["--no-eval"] if req.no_eval else []
    changed += ["--no-tensorboard"] if req.no_tensorboard else []
    if changed or req.sets:
        raise BenchError(f"--resume continues a {what} exactly as it was configured; drop {', '.join(changed or ['--set'])}")


def check_same_experiment(req: Request, exp: Experiment, folder: Path, what: str) -> None:
    """``bench run NAME --resume FOLDER``: the folder must hold a run of NAME."""
    if req.experiment is not None:
        asked = config.experiment_from_dict(config.load_raw(config.resolve_experiment_path(req.experiment)),
                                            req.experiment)
        if asked.name != exp.name:
            raise BenchError(f"{folder} is a {what} of experiment '{exp.name}', not '{asked.name}'")
