"""``bench sweep``: tune every optimizer with the same budget, then compare tuned against default.

An experiment's ``[sweep]`` table (bench.core.sweep_table) declares a search space per optimizer
and one budget that every optimizer gets; the search phase trains each setting on the search
seeds, the criterion picks each optimizer's best setting, and the final phase reruns the best
and the experiment's default setting side by side on the final seeds. Both phases are ordinary
run folders (any executor, resumable, with their own reports) inside one sweep folder;
``sweep.json`` links them and records every trial's score.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import sys
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.analysis.trials import score_run
from bench.core.config import Experiment, experiment_from_dict
from bench.core.errors import BenchError
from bench.core.names import MANIFEST, SWEEP_FILE, TUNED, fmt_params, now
from bench.core.sweep_table import SweepConfig, parse_sweep
from bench.model.optimizers import validate, with_params
from bench.orchestrate.request import RunOptions
from bench.orchestrate.run import Prepared, execute, trained_config
from bench.quality.scores import goals
from bench.store.files import atomic_write_json, read_json, run_lock


@dataclass(frozen=True)
class Trial:
    optimizer: str  # the experiment's label
    index: int
    params: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.optimizer}.t{self.index:02d}"


def make_trials(exp: Experiment, sw: SweepConfig) -> list[Trial]:
    """Exactly ``budget`` settings per optimizer, a pure function of the sweep table and its seed."""
    trials = []
    for label, dims in sw.space.items():
        if sw.method == "grid":
            axes = [d.grid(n) for d, n in zip(dims, sw.grid_counts(label), strict=True)]
            settings = [dict(zip([d.key for d in dims], combo, strict=True)) for combo in itertools.product(*axes)]
        else:
            # per optimizer, from its own label: adding an optimizer does not change another's draws
            rng = np.random.default_rng([sw.seed, zlib.crc32(label.encode())])
            settings = [{d.key: d.draw(rng) for d in dims} for _ in range(sw.budget)]
        trials += [Trial(label, i, s) for i, s in enumerate(settings)]
    return trials


def pick_best(trials: list[Trial], scores: Mapping[str, dict], goal: str) -> dict[str, Trial]:
    """Each optimizer's best trial by median criterion; ties go to the earlier trial."""
    best: dict[str, Trial] = {}
    sign = 1 if goal == "min" else -1
    for t in trials:
        cur = best.get(t.optimizer)
        if cur is None or sign * scores[t.label]["median"] < sign * scores[cur.label]["median"]:
            best[t.optimizer] = t
    return best


def search_experiment(exp: Experiment, sw: SweepConfig, trials: list[Trial]) -> Experiment:
    specs = tuple(with_params(exp.optimizer(t.optimizer), t.params, t.label, f"sweep.space.{t.optimizer}")
                  for t in trials)
    return _derived(exp, "search", sw.search_seeds, sw.steps, specs)


def final_experiment(exp: Experiment, sw: SweepConfig, best: Mapping[str, Mapping[str, Any]]) -> Experiment:
    specs = []
    for label in sw.space:
        specs += [exp.optimizer(label), with_params(exp.optimizer(label), best[label], label + TUNED, "sweep")]
    return _derived(exp, "final", sw.final_seeds, exp.train.steps, tuple(specs))


def _derived(exp: Experiment, phase: str, seeds: tuple[int, ...], steps: int, specs) -> Experiment:
    t = exp.train
    # intervals are clipped to the phase's length so that short search runs still sample and checkpoint
    train = dataclasses.replace(t, steps=steps, sample_every=min(t.sample_every, steps),
                                checkpoint_every=min(t.checkpoint_every, steps))
    ev = exp.eval
    if ev.every and ev.every % train.sample_every:
        ev = dataclasses.replace(ev, every=0)
    return dataclasses.replace(exp, description=f"{exp.description} [sweep {phase} phase]".strip(), seeds=seeds,
                               train=train, eval=ev, optimizers=specs, sweep={})


# ------------------------------------------------------------------ the sweep itself


def sweep_record(exp: Experiment, sw: SweepConfig) -> dict:
    """What identifies a sweep: the experiment as run plus the sweep table (for resuming)."""
    # through JSON, so that it compares equal to what sweep.json holds (tuples become lists)
    return json.loads(json.dumps({"config": exp.to_dict(), "sweep": sw.to_dict()}))


def is_resumable(rec: dict, exp: Experiment, sw: SweepConfig) -> bool:
    want = sweep_record(exp, sw)
    return (rec.get("status") != "finished" and rec.get("sweep") == want["sweep"]
            and trained_config(rec.get("config")) == trained_config(want["config"]))


def experiment_of(rec: dict, sweep_dir: Path) -> tuple[Experiment, SweepConfig]:
    """The experiment and sweep table a sweep folder was made with."""
    if "config" not in rec or "sweep_table" not in rec:
        raise BenchError(f"{sweep_dir}/{SWEEP_FILE}: not a bench sweep record")
    exp = experiment_from_dict({**rec["config"], "sweep": rec["sweep_table"]}, f"{sweep_dir}/{SWEEP_FILE}")
    return exp, parse_sweep(exp, goals(), "sweep", selected=True)


def run_sweep(exp: Experiment, sw: SweepConfig, sweep_dir: Path, opts: RunOptions, prepared: Prepared,
              record: dict | None = None) -> dict:
    """Search, score, pick, then final; ``sweep.json`` is rewritten after each phase. Returns it."""
    say = (lambda *a: None) if opts.quiet else (lambda *a: print(*a, file=sys.stderr))
    trials = make_trials(exp, sw)
    search = search_experiment(exp, sw, trials)
    validate(search.optimizers)
    rec = dict(record or {})
    # the table as swept: spaces of optimizers left out with --optimizers would not validate on --resume
    rec["sweep_table"] = {**exp.sweep, "space": {k: v for k, v in exp.sweep["space"].items() if k in sw.space}}
    rec.update({"schema": 1, "experiment": exp.name, "sweep_id": sweep_dir.name, **sweep_record(exp, sw),
                "status": "search", "started": rec.get("started", now()), "command": rec.get("command", opts.command),
                "phases": {"search": f"{sweep_dir.name}-search", "final": f"{sweep_dir.name}-final"},
                "trials": rec.get("trials") or [{"label": t.label, "optimizer": t.optimizer, "index": t.index,
                                                  "params": t.params} for t in trials]})
    path = sweep_dir / SWEEP_FILE
    atomic_write_json(path, rec)

    def phase(name: str, sub: Experiment) -> dict:
        run_dir = sweep_dir / rec["phases"][name]
        run_dir.mkdir(exist_ok=True)
        manifest = read_json(run_dir / MANIFEST) if (run_dir / MANIFEST).exists() else None
        n = len(sub.optimizers) * len(sub.seeds)
        say(f"sweep {name} phase: {n} runs ({len(sub.optimizers)} settings x {len(sub.seeds)} seeds, "
            f"{sub.train.steps} iterations each) -> {run_dir}")
        try:
            with run_lock(run_dir):
                m = execute(sub, run_dir, opts, prepared, manifest)
        except BenchError as e:
            if e.exit_code == 130:
                raise BenchError(f"interrupted; continue with: bench sweep --resume {sweep_dir}", exit_code=130) from None
            raise
        if m["status"] == "finished-with-failures":
            failed = [k for k, r in m["runs"].items() if r["status"] == "failed"]
            raise BenchError(f"{len(failed)} {name} run(s) failed ({', '.join(failed)}); "
                             f"continue with: bench sweep --resume {sweep_dir}", exit_code=1)
        return score_run(run_dir, sw.criterion, sw.goal)

    scores = phase("search", search)
    best = pick_best(trials, scores, sw.goal)
    for t in rec["trials"]:
        t["score"] = scores[t["label"]]
    rec["best"] = {lbl: {"trial": t.label, "params": t.params, "score": scores[t.label]["median"]}
                   for lbl, t in best.items()}
    rec["status"] = "final"
    atomic_write_json(path, rec)
    for label, t in best.items():
        say(f"  best {label}: {t.label} {fmt_params(t.params)}  ({sw.criterion} {scores[t.label]['median']:.4g})")

    final = final_experiment(exp, sw, {lbl: t.params for lbl, t in best.items()})
    fscores = phase("final", final)
    rec["final"] = {lbl: {"default": fscores[lbl], "tuned": fscores[lbl + TUNED]} for lbl in sw.space}
    rec["status"] = "finished"
    rec["finished"] = now()
    atomic_write_json(path, rec)
    return rec


def summary_text(rec: dict) -> str:
    """The console summary: per optimizer, default against tuned on the final seeds."""
    import pandas as pd

    sw = rec["sweep"]
    rows = []
    for label, f in rec.get("final", {}).items():
        best = rec["best"][label]
        rows.append({"optimizer": label, "default": f["default"]["median"], "tuned": f["tuned"]["median"],
                     "best setting": fmt_params(best["params"]), "found by": best["trial"]})
    table = pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.4g}") if rows else "(no final phase)"
    return (f"\n{rec['experiment']} sweep: {sw['criterion']} ({'lower' if sw['goal'] == 'min' else 'higher'} is better), "
            f"{sw['budget']} settings per optimizer, median over final seeds {sw['final_seeds']}:\n{table}")
