"""bench from Python (a notebook, a script): train, then read runs as tidy pandas tables, and their verdict.

    import bench
    runs = bench.run("smoke", optimizers=["adam", OptimisticAdam], seeds=[0, 1, 2])   # what `bench run` does
    runs = bench.load("results/")                 # a run folder, an experiment folder or a results folder
    runs.metrics                                  # one row per (run, optimizer, seed, iteration)
    verdict = bench.compare("results/smoke")      # the paired verdict of `bench compare`
    verdict.table                                 # one row per (experiment, metric, optimizer pair)

``load`` and ``compare`` only read files: no TensorFlow is imported. Bad input raises ``bench.BenchError`` with the
one-line message the command line prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.analysis.compare import compare as compare_runs
from bench.analysis.verdict import Verdict
from bench.core.errors import BenchError
from bench.store.files import strict, warn
from bench.store.layout import run_dirs
from bench.store.load import load_run
from bench.store.logs import CSV_COLUMNS, QUALITY_COLUMNS

RUN_COLUMNS = ("experiment", "run")  # put in front of every table: which run a row comes from
OptimizerItem = str | type | dict  # bench.run's optimizers: a specification, a class, or a table with a class
PAIR_FIELDS = ("status", "steps_total", "steps_done", "diverged_at", "resumed_from", "started", "finished",
               "train_seconds", "eval_seconds", "wall_seconds")


@dataclass
class Runs:
    """What ``load`` returns. ``metrics``: every metrics.csv row (experiment, run, optimizer, seed, step, the
    three losses and every other logged value, status, timings); ``quality``: every quality.csv row
    (experiment, run, optimizer, seed, step, metric, value, eval_seconds); ``pairs``: one row per
    (run, optimizer, seed) with its status and timings; ``manifests``: "<experiment>/<run>" -> manifest.json."""

    metrics: pd.DataFrame
    quality: pd.DataFrame
    pairs: pd.DataFrame
    manifests: dict[str, dict]
    run_dirs: list[Path]


def load(path: str | Path) -> Runs:
    """Every run folder at or below ``path``, read into tidy DataFrames (unfinished runs included). A run
    folder that cannot be read (a torn manifest, a garbled log) is skipped with a warning when ``path``
    holds several; alone, it raises BenchError naming the file."""
    dirs = run_dirs(_path(path))
    metrics, quality, pairs, manifests, used = [], [], [], {}, []
    for d in dirs:
        try:
            data = load_run(d)
        except BenchError as e:
            if len(dirs) == 1:
                raise
            warn(f"{e}; that run is skipped")
            continue
        used.append(d)
        key = {"experiment": data.experiment, "run": d.name}
        manifests[f"{key['experiment']}/{d.name}"] = data.manifest
        metrics.append(data.metrics.assign(**key))
        quality.append(data.quality.assign(**key))
        for label in data.optimizers:
            for seed in data.seeds:
                record = data.status.get(f"{label}-seed{seed}", {})
                pairs.append({**key, "optimizer": label, "seed": seed,
                              **{f: record.get(f, "missing" if f == "status" else None) for f in PAIR_FIELDS}})
    return Runs(metrics=_tidy(metrics, (*RUN_COLUMNS, *CSV_COLUMNS)),
                quality=_tidy(quality, (*RUN_COLUMNS, *QUALITY_COLUMNS)),
                pairs=pd.DataFrame(pairs, columns=[*RUN_COLUMNS, "optimizer", "seed", *PAIR_FIELDS]),
                manifests=manifests, run_dirs=used)


def _path(path) -> Path:
    if not isinstance(path, (str, Path)) or str(path) == "":
        raise BenchError(f"bench: expected the path of a run folder (or a folder of runs), got {path!r}")
    return Path(path)


def _tidy(frames: list[pd.DataFrame], columns: tuple[str, ...]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=list(columns))
    df = pd.concat(frames, ignore_index=True)
    return df[[c for c in columns if c in df.columns]].astype({"seed": int, "step": int})


@dataclass
class Comparison:
    """What ``compare`` returns: the Verdict objects (one per experiment: ``sentences``, ``comparisons``,
    ``time_to_target``, ``health``...), every comparison as a DataFrame, the leaderboard when the runs span
    experiments, and the whole result as strict JSON (what ``bench compare --json`` writes)."""

    verdicts: list[Verdict]
    table: pd.DataFrame
    leaderboard: dict | None
    json: dict

    @property
    def sentences(self) -> list[str]:
        return [s for v in self.verdicts for s in v.sentences]


COMPARISON_COLUMNS = ("experiment", "metric", "a", "b", "estimate", "ci_low", "ci_high", "p_raw", "p_holm",
                 "p_improvement", "wins", "n_seeds", "label", "confirmatory", "log_ratio")


def compare(*paths: str | Path, primary: str = "", reference: str = "", alpha: float | None = None) -> Comparison:
    """The verdict of the finished runs at or below ``paths`` (as ``bench compare``): ``estimate`` is the mean
    per-seed difference A - B (a log-ratio where ``log_ratio``), ``ci_low``/``ci_high`` its bootstrap interval,
    ``p_holm`` the sign-flip p-value after Holm's correction, ``p_improvement`` the paired probability that A beats B on a seed."""
    if not paths:
        raise BenchError("bench.compare: give at least one run folder (or a folder of runs)")
    result = compare_runs([_path(p) for p in paths], primary, reference, alpha)
    rows = [{"experiment": v.experiment, "metric": c.metric, "a": c.a, "b": c.b, "estimate": c.estimate,
             "ci_low": c.ci[0], "ci_high": c.ci[1], "p_raw": c.p_raw, "p_holm": c.p_holm,
             "p_improvement": c.p_improvement, "wins": c.wins, "n_seeds": len(c.seeds), "label": c.label,
             "confirmatory": c.confirmatory, "log_ratio": c.log_ratio}
            for v in result["objects"] for c in v.comparisons]
    return Comparison(verdicts=list(result["objects"]), table=pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS)),
                      leaderboard=result.get("leaderboard"),
                      json=strict({k: v for k, v in result.items() if k != "objects"}))


def run(experiment: str | Path = "faces", optimizers: str | list[OptimizerItem] | None = None,
        seeds: list[int] | tuple[int, ...] | None = None, steps: int | None = None, out: str | Path = "results",
        reports: str | Path | None = None, sets: list[str] | tuple[str, ...] = (), quiet: bool = True,
        no_eval: bool = False, jobs: int | None = None, executor: str = "local") -> Runs:
    """Train an experiment as ``bench run`` does and return what ``load`` returns for its run folder.

    ``optimizers``: the command line's specification (``"adam,oadam.py:OptimisticAdam:learning_rate=2e-4"``), or
    a list whose items are such strings, optimizer classes (``OptimisticAdam``: label = its name, lower-case), or
    tables ``{"class": OptimisticAdam, "label": "oadam", "learning_rate": 2e-4}``. A class defined in a notebook
    is recorded by its source (``inspect``; refused when Python cannot find it) and trains in this process
    (``jobs`` 1, local). ``sets``: ``--set`` assignments (``"train.d_steps=2"``). No report unless ``reports``.
    Every check of ``bench run`` applies: bad input raises BenchError before anything is written.
    """
    import dataclasses
    import shlex

    from bench.core import banner
    from bench.core.config import OptimizerSpec
    from bench.model.optimizers import resolve, source_record_of_class
    from bench.orchestrate.commands import RUN
    from bench.orchestrate.request import Request, resolve_experiment
    from bench.orchestrate.session import start_or_resume

    banner.hide()  # TensorFlow's start-up banner: not in a notebook's output either
    texts, classes = [], []
    for item in (optimizers if isinstance(optimizers, (list, tuple)) else [optimizers] if optimizers else []):
        if isinstance(item, str):
            texts.append(item)
        elif isinstance(item, type) or isinstance(item, dict):
            table = {"class": item} if isinstance(item, type) else dict(item)
            cls = table.pop("class", None)
            if not isinstance(cls, type):
                raise BenchError(f"bench.run: an optimizer table needs 'class': an optimizer class, got {cls!r}")
            label = str(table.pop("label", cls.__name__.lower()))
            classes.append((label, cls, table, source_record_of_class(cls, label)))
        else:
            raise BenchError(f"bench.run: an optimizer is a name, a class or a table, got {item!r}")
    if classes and (executor != "local" or (jobs or 1) > 1) and any(
            record["kind"] == "notebook" for _, _, _, record in classes):
        raise BenchError("bench.run: a class defined in a notebook trains in this process only: jobs=1, "
                         "executor='local' (put it in a file for --jobs or Ray)")
    command = shlex.join(["bench.run", str(experiment), *(["--optimizers", ",".join(texts)] if texts else [])])
    req = Request(experiment=str(experiment), optimizers=",".join(texts) if texts else None,
                  seeds=tuple(seeds) if seeds is not None else None, steps=steps, sets=tuple(sets), no_eval=no_eval,
                  out=Path(out), reports=Path(reports) if reports is not None else None, quiet=quiet, jobs=jobs,
                  executor=executor, command=command)
    exp = resolve_experiment(req)
    if classes:
        chosen = list(exp.optimizers) if texts else []
        chosen += [OptimizerSpec(label=label, name=f"{cls.__module__}:{cls.__name__}", params=params, source=record)
                   for label, cls, params, record in classes]
        exp = dataclasses.replace(exp, optimizers=resolve(tuple(chosen)))  # validated by start_or_resume's prepare
    folder, _ = start_or_resume(req, RUN, resolved=(exp, None))
    return load(folder)
