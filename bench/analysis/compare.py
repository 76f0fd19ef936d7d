"""`bench compare`: the verdict of any set of finished runs, and a leaderboard when they span experiments.

Runs of one experiment are compared together (their optimizers side by side, on their common seeds: the
design stays paired); runs of two or more experiments get a verdict each and, where they share optimizer
labels, the leaderboard of bench.analysis.leaderboard.

Each run is compared once: a run named twice (by any path, or a copy of the same run in another results
folder) is dropped with a note, and every label is unique, so no optimizer is ever compared with itself.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd

from bench.analysis.leaderboard import R_MAX, leaderboard
from bench.analysis.verdict import Verdict, config_of, fmt_effect, verdict
from bench.core.errors import BenchError
from bench.store.layout import run_dirs
from bench.store.load import RunData, dig, load_run


def merge(runs: list[RunData]) -> RunData:
    """Runs of one experiment as one: the same step count, their common seeds, every optimizer (a label
    two runs share is told apart by its run id, and by a number when two runs share an id too)."""
    first = runs[0]
    if len(runs) == 1:
        return first
    steps = {r.steps_total for r in runs}
    if len(steps) > 1:
        raise BenchError(f"runs of {first.experiment} with different step counts ({sorted(steps)}): "
                         "their iterations do not line up")
    seeds = sorted(set.intersection(*(set(r.seeds) for r in runs)))
    if not seeds:
        raise BenchError(f"runs of {first.experiment} share no seed: a paired comparison needs common seeds")
    seen: dict[str, int] = {}
    for r in runs:
        for o in r.optimizers:
            seen[o] = seen.get(o, 0) + 1
    metrics, quality, status, labels = [], [], {}, []
    taken: set[str] = set()
    for r in runs:
        rename = {}
        for o in r.optimizers:
            name = f"{o}@{r.run_dir.name}" if seen[o] > 1 else o
            base, n = name, 2
            while name in taken:  # the same run id in two results folders
                name, n = f"{base}#{n}", n + 1
            taken.add(name)
            rename[o] = name
        metrics.append(_keep(r.metrics, seeds, rename))
        if len(r.quality):
            quality.append(_keep(r.quality, seeds, rename))
        for o in r.optimizers:
            for s in seeds:
                status[f"{rename[o]}-seed{s}"] = r.status.get(f"{o}-seed{s}", {"status": "missing"})
        labels += [rename[o] for o in r.optimizers]
    return replace(first, metrics=pd.concat(metrics, ignore_index=True),
                   quality=pd.concat(quality, ignore_index=True) if quality else first.quality.iloc[:0],
                   status=status, optimizers=labels, seeds=seeds)


def _keep(df: pd.DataFrame, seeds: list[int], rename: dict[str, str]) -> pd.DataFrame:
    return df[df.seed.isin(seeds)].assign(optimizer=df.optimizer.map(rename))


def _same_run(data: RunData) -> tuple:
    """What makes two run folders copies of one run (an artifact downloaded twice, a results folder copied)."""
    m = data.manifest
    return (data.experiment, data.run_dir.name, str(dig(m, "identity", str, "")), str(dig(m, "started", str, "")))


def unique_runs(paths: list[Path]) -> tuple[list[Path], list[str]]:
    """Every run folder at or below ``paths``, each once; notes for those named again."""
    out, notes, seen = [], [], {}
    for p in paths:
        for d in run_dirs(Path(p)):
            key = d.resolve()
            if key in seen:
                notes.append(f"{d} is the run {seen[key]} again: compared once")
                continue
            seen[key] = d
            out.append(d)
    return out, notes


def compare(paths: list[Path], primary: str = "", reference: str = "", alpha: float | None = None) -> dict:
    """The verdicts (one per experiment) and the leaderboard of the finished runs at or below ``paths`` (run,
    experiment or results folders), as strict-JSON-ready data, with the Verdict objects under ``"objects"``."""
    if not paths:
        raise BenchError("give at least one run folder (or a folder of runs)")
    dirs, notes = unique_runs(paths)
    by_experiment: dict[str, list[RunData]] = {}
    copies: dict[tuple, Path] = {}
    for d in dirs:
        data = load_run(d)
        if data.state in ("in progress", "interrupted"):
            raise BenchError(f"{d}: the run is {data.state}; finish it (bench run --resume) before comparing")
        key = _same_run(data)
        if key in copies:
            notes.append(f"{d} holds the same run as {copies[key]} (a copy): compared once")
            continue
        copies[key] = d
        by_experiment.setdefault(data.experiment, []).append(data)
    verdicts: list[Verdict] = []
    for runs in by_experiment.values():
        data = merge(runs)
        v = verdict(data, config_of(data.manifest), primary, reference, alpha)
        v.notes[:0] = notes
        v.sentences[:0] = notes
        notes = []  # said once, in the first verdict
        verdicts.append(v)
    config = {**verdicts[0].config, "seeds": sorted({s for v in verdicts for s in v.seeds}),
              "experiments": list(by_experiment), "r_max": R_MAX}
    used = [str(r.run_dir) for runs in by_experiment.values() for r in runs]
    out = {"config": config, "runs": used, "verdicts": [v.to_json() for v in verdicts], "objects": verdicts}
    out["comparisons"] = [c for v in out["verdicts"] for c in v["comparisons"]]
    out["time_to_target"] = {v["experiment"]: v["time_to_target"] for v in out["verdicts"]}
    if len(verdicts) > 1:
        out["leaderboard"] = leaderboard(out["verdicts"])
    return out


def text(result: dict) -> str:
    """What `bench compare` prints: each experiment's sentences and primary table, then the leaderboard."""
    lines = []
    for v in result["objects"]:
        lines.append(f"{v.experiment} ({v.run}): {len(v.optimizers)} optimizers x {len(v.seeds)} seeds, "
                     f"primary {v.primary or 'none'}")
        lines += [f"  {s}" for s in v.sentences]
        rows = [{"A": c.a, "B": c.b, "metric": c.metric, "label": c.label,
                 "A - B [interval]": f"{fmt_effect(c.estimate, c.log_ratio)} [{fmt_effect(c.ci[0], c.log_ratio)}, "
                                     f"{fmt_effect(c.ci[1], c.log_ratio)}]", "p (Holm)": f"{c.p_holm:.3g}",
                 "P(A better)": f"{c.p_improvement:.2f}"} for c in v.comparisons if c.metric == v.primary]
        if rows:
            lines += ["", *("  " + ln for ln in pd.DataFrame(rows).to_string(index=False).splitlines()), ""]
    board = result.get("leaderboard")
    if board and board.get("profile"):
        lines.append(f"leaderboard over {', '.join(board['experiments'])}:")
        for o in board["optimizers"]:
            iqm = board["iqm"][o]
            lines.append(f"  {o:<12} performance-profile score {board['profile'][o]['score']:.2f}; IQM of normalised "
                         f"final scores {iqm['value']:.3f} [{iqm['ci'][0]:.3f}, {iqm['ci'][1]:.3f}]")
        lines += [f"  P({p['a']} better than {p['b']}) = {p['value']:.2f} [{p['ci'][0]:.2f}, {p['ci'][1]:.2f}]"
                  for p in board["p_improvement"]]
    elif board:
        lines += [f"leaderboard: {n}" for n in board.get("notes", [])]
    return "\n".join(lines)
