"""``bench sweep``: tune every optimizer with the same budget, then compare tuned against default.

An experiment's ``[sweep]`` table declares a search space per optimizer and one budget
(number of settings tried) that every optimizer gets; the search phase trains each
setting on the search seeds, a criterion (a sample-quality metric or a loss-trend
summary) picks each optimizer's best setting, and the final phase reruns the best and
the experiment's default setting side by side on the final seeds. Both phases are
ordinary run folders (any executor, resumable, with their own reports) inside one
sweep folder; ``sweep.json`` links them and records every trial's score.

    [sweep]
    budget = 4                       # settings per optimizer, the same for all
    method = "random"                # or "grid"
    criterion = "swd"                # swd, fd_pca, kid_pca, coverage, fid, diversity, or e.g. g_loss.final
    goal = "min"                     # needed for loss trends; quality metrics know their direction
    steps = 0                        # iterations per search run; 0 = train.steps
    search_seeds = [0]               # default: the experiment's first seed
    final_seeds = [0, 1, 2]          # default: the experiment's seeds

    [sweep.space.adam]
    learning_rate = { log = [1e-5, 1e-2] }      # log-uniform draws, or a log grid (points = N)
    beta_1 = [0.0, 0.5, 0.9]                    # choices
    generator.learning_rate = { linear = [1e-4, 1e-3] }   # one network only
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import sys
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.config import Experiment, OptimizerSpec, _suggest
from bench.errors import BenchError

SWEEP_FILE = "sweep.json"
QUALITY_CRITERIA = ("swd", "fd_pca", "kid_pca", "coverage", "fid", "diversity", "memorisation")
HIGHER_IS_BETTER = {"coverage", "diversity", "memorisation"}
LOSS_SUMMARIES = ("w1", "w2", "w3", "w4", "final", "slope")
KEYS = ("budget", "method", "seed", "criterion", "goal", "steps", "search_seeds", "final_seeds", "space")
NETWORKS = ("generator", "discriminator")
TUNED = ".tuned"  # label suffix of an optimizer's best setting in the final phase


@dataclass(frozen=True)
class Dim:
    """One hyper-parameter's range: log-uniform, uniform, or a list of choices."""

    key: str  # as in --optimizers: learning_rate, generator.learning_rate, ...
    kind: str  # log | linear | choice
    low: float = 0.0
    high: float = 0.0
    choices: tuple = ()
    points: int = 0  # grid points of a range (grid method)

    @property
    def log(self) -> bool:
        return self.kind == "log"

    def describe(self) -> str:
        if self.kind == "choice":
            return "{" + ", ".join(map(str, self.choices)) + "}"
        return f"{'log ' if self.log else ''}[{self.low:g}, {self.high:g}]"

    def draw(self, rng: np.random.Generator) -> Any:
        if self.kind == "choice":
            return self.choices[int(rng.integers(len(self.choices)))]
        if self.log:
            return _round(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
        return _round(rng.uniform(self.low, self.high))

    def grid(self, n: int) -> list:
        if self.kind == "choice":
            return list(self.choices)
        if n == 1:  # one point of a range: its (geometric) middle
            return [_round(math.sqrt(self.low * self.high) if self.log else (self.low + self.high) / 2)]
        values = np.geomspace(self.low, self.high, n) if self.log else np.linspace(self.low, self.high, n)
        return [_round(v) for v in values]


def _round(v: float) -> float:
    # 4 significant digits: readable in tables and labels, far finer than any optimizer cares about
    return float(f"{float(v):.4g}")


@dataclass(frozen=True)
class SweepConfig:
    budget: int
    method: str
    seed: int
    criterion: str  # normalised: "swd.final", "g_loss.slope", ...
    goal: str  # min | max
    steps: int  # iterations per search run
    search_seeds: tuple[int, ...]
    final_seeds: tuple[int, ...]
    space: dict[str, tuple[Dim, ...]]  # optimizer label -> dims

    def to_dict(self) -> dict:
        return {**{k: getattr(self, k) for k in KEYS if k != "space"},
                "search_seeds": list(self.search_seeds), "final_seeds": list(self.final_seeds),
                "space": {lbl: {d.key: dataclasses.asdict(d) for d in dims} for lbl, dims in self.space.items()}}


@dataclass(frozen=True)
class Trial:
    optimizer: str  # the experiment's label
    index: int
    params: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.optimizer}.t{self.index:02d}"


# ------------------------------------------------------------------ parsing


def _dim(key: str, value: Any, where: str) -> Dim:
    if isinstance(value, list):
        if not value or any(isinstance(v, (list, Mapping)) for v in value):
            raise BenchError(f"{where}.{key}: a list of choices must be non-empty numbers, strings or true/false")
        return Dim(key, "choice", choices=tuple(value))
    if not isinstance(value, Mapping):
        raise BenchError(f"{where}.{key}: expected {{ log = [low, high] }}, {{ linear = [low, high] }} or a list of "
                         f"choices, got {value!r}")
    kinds = [k for k in ("log", "linear") if k in value]
    extra = set(value) - {"log", "linear", "points"}
    if len(kinds) != 1 or extra:
        bad = f"unknown key '{sorted(extra)[0]}'{_suggest(sorted(extra)[0], ['log', 'linear', 'points'])}" if extra \
            else "give exactly one of log = [low, high] or linear = [low, high]"
        raise BenchError(f"{where}.{key}: {bad}")
    kind = kinds[0]
    bounds = value[kind]
    if (not isinstance(bounds, list) or len(bounds) != 2
            or not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds)):
        raise BenchError(f"{where}.{key}: {kind} needs [low, high] numbers, got {bounds!r}")
    low, high = float(bounds[0]), float(bounds[1])
    if not low < high or (kind == "log" and low <= 0):
        raise BenchError(f"{where}.{key}: need {'0 < ' if kind == 'log' else ''}low < high, got [{low:g}, {high:g}]")
    points = value.get("points", 0)
    if not isinstance(points, int) or isinstance(points, bool) or points < 0:
        raise BenchError(f"{where}.{key}.points: expected a positive integer, got {points!r}")
    return Dim(key, kind, low, high, points=points)


def _dims(table: Any, where: str) -> tuple[Dim, ...]:
    if not isinstance(table, Mapping) or not table:
        raise BenchError(f"{where}: expected a table of hyper-parameter ranges, e.g. learning_rate = {{ log = [1e-5, 1e-2] }}")
    dims = []
    for key, value in table.items():
        if key in NETWORKS and isinstance(value, Mapping) and not ({"log", "linear"} & set(value)):
            dims += [_dim(f"{key}.{k}", v, where) for k, v in value.items()]  # generator.learning_rate = ...
        else:
            dims.append(_dim(key, value, where))
    return tuple(dims)


def _seeds(value: Any, where: str) -> tuple[int, ...]:
    if (not isinstance(value, list) or not value or len(set(value)) != len(value)
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value)):
        raise BenchError(f"{where}: expected a list of distinct seeds >= 0, got {value!r}")
    return tuple(value)


def normalise_criterion(name: str) -> str:
    return name if "." in name else f"{name}.final"


def parse_sweep(exp: Experiment, where: str = "sweep", selected: bool = False) -> SweepConfig:
    """Validate ``exp.sweep`` against the experiment.

    ``selected``: the experiment's optimizers are the ones to sweep (after ``--optimizers``), so
    each needs a search space; otherwise the file is checked on its own (every space names one
    of the file's optimizers).
    """
    raw = exp.sweep
    if not raw:
        raise BenchError(f"experiment '{exp.name}' has no [sweep] table; add one (see `bench sweep --help`)")
    for key in raw:
        if key not in KEYS:
            raise BenchError(f"{where}: unknown key '{key}'{_suggest(key, KEYS)}")

    def integer(key: str, default: int, low: int) -> int:
        v = raw.get(key, default)
        if not isinstance(v, int) or isinstance(v, bool) or v < low:
            raise BenchError(f"{where}.{key}: expected an integer >= {low}, got {v!r}")
        return v

    if "budget" not in raw:
        raise BenchError(f"{where}: budget is required: the number of settings every optimizer gets")
    budget = integer("budget", 0, 1)
    method = raw.get("method", "random")
    if method not in ("random", "grid"):
        raise BenchError(f"{where}.method: expected 'random' or 'grid', got {method!r}")
    criterion = raw.get("criterion", "swd")
    if not isinstance(criterion, str):
        raise BenchError(f"{where}.criterion: expected a string, got {criterion!r}")
    criterion = normalise_criterion(criterion)
    head, _, tail = criterion.partition(".")
    from bench.summary import LOSSES

    valid = [f"{q}.final" for q in QUALITY_CRITERIA] + [f"{loss}.{w}" for loss in LOSSES for w in LOSS_SUMMARIES]
    if criterion not in valid:
        raise BenchError(f"{where}.criterion: unknown criterion '{criterion}'{_suggest(criterion, valid)}; "
                         f"a quality metric ({', '.join(QUALITY_CRITERIA)}) or LOSS.{{{','.join(LOSS_SUMMARIES)}}}")
    quality = head in QUALITY_CRITERIA
    goal = raw.get("goal", "")
    if goal not in ("", "min", "max"):
        raise BenchError(f"{where}.goal: expected 'min' or 'max', got {goal!r}")
    if not goal:
        if not quality:
            raise BenchError(f"{where}.goal: a loss criterion ({criterion}) has no natural direction; say goal = \"min\" or \"max\"")
        goal = "max" if head in HIGHER_IS_BETTER else "min"
    # (only when sweeping: `bench run smoke --no-eval` must not trip over the sweep's criterion)
    if selected and quality and not exp.eval.enabled:
        raise BenchError(f"{where}.criterion {head} needs the sample-quality metrics; drop --no-eval / eval.enabled = false, "
                         f"or pick a loss criterion such as g_loss.final")
    if selected and head == "fid" and not exp.eval.fid_weights:
        raise BenchError(f"{where}.criterion fid needs --fid-weights FILE (local InceptionV3 weights)")
    steps = integer("steps", 0, 0) or exp.train.steps
    search_seeds = _seeds(raw["search_seeds"], f"{where}.search_seeds") if "search_seeds" in raw else exp.seeds[:1]
    final_seeds = _seeds(raw["final_seeds"], f"{where}.final_seeds") if "final_seeds" in raw else exp.seeds
    space_raw = raw.get("space")
    if not isinstance(space_raw, Mapping) or not space_raw:
        raise BenchError(f"{where}.space: give at least one optimizer's search space, e.g. [sweep.space.adam]")
    labels = [o.label for o in exp.optimizers]
    space = {}
    for label, table in space_raw.items():
        if label not in labels:
            if selected:
                continue  # an optimizer left out with --optimizers
            raise BenchError(f"{where}.space.{label}: no optimizer '{label}' in the experiment{_suggest(label, labels)}")
        space[label] = _dims(table, f"{where}.space.{label}")
    if selected:
        missing = [lbl for lbl in labels if lbl not in space]
        if missing:
            raise BenchError(f"optimizer '{missing[0]}' has no search space; add [sweep.space.{missing[0]}] or leave it "
                             f"out of --optimizers (spaces exist for: {', '.join(space_raw) or 'none'})")
    sw = SweepConfig(budget, method, integer("seed", 0, 0), criterion, goal, steps, search_seeds, final_seeds, space)
    for label in space:  # every setting must build: unknown keys and out-of-range values fail now
        _check_space(exp.optimizer(label), sw, f"{where}.space.{label}")
    return sw


def _check_space(spec: OptimizerSpec, sw: SweepConfig, where: str) -> None:
    from bench import optimizers

    accepted = optimizers.hyperparameters(spec.name) if spec.name in optimizers.registry() else None
    for d in sw.space[spec.label]:
        key = d.key.partition(".")[2] if d.key.partition(".")[0] in NETWORKS else d.key
        if accepted is not None and key not in accepted:
            raise BenchError(f"{where}.{d.key}: {spec.name} has no hyper-parameter '{key}'{_suggest(key, accepted)}")
    _grid_counts(sw.space[spec.label], sw, where)


def _grid_counts(dims: tuple[Dim, ...], sw: SweepConfig, where: str) -> list[int]:
    """Points per dimension of a grid; their product must be the budget (equal for every optimizer)."""
    if sw.method != "grid":
        return []
    counts = [len(d.choices) if d.kind == "choice" else d.points for d in dims]
    free = [i for i, c in enumerate(counts) if c == 0]
    fixed = math.prod(c for c in counts if c)
    if len(free) == 1 and sw.budget % fixed == 0:
        counts[free[0]] = sw.budget // fixed
    elif free:
        raise BenchError(f"{where}: grid ranges need points = N (only one may be left out, to fill the budget)")
    if math.prod(counts) != sw.budget:
        raise BenchError(f"{where}: the grid has {' x '.join(map(str, counts))} = {math.prod(counts)} settings but "
                         f"budget = {sw.budget}; every optimizer must get the same budget")
    return counts


def make_trials(exp: Experiment, sw: SweepConfig) -> list[Trial]:
    """Exactly ``budget`` settings per optimizer, a pure function of the sweep table and its seed."""
    import itertools

    trials = []
    for label, dims in sw.space.items():
        if sw.method == "grid":
            axes = [d.grid(n) for d, n in zip(dims, _grid_counts(dims, sw, label), strict=True)]
            settings = [dict(zip([d.key for d in dims], combo, strict=True)) for combo in itertools.product(*axes)]
        else:
            # per optimizer, from its own label: adding an optimizer does not change another's draws
            rng = np.random.default_rng([sw.seed, zlib.crc32(label.encode())])
            settings = [{d.key: d.draw(rng) for d in dims} for _ in range(sw.budget)]
        trials += [Trial(label, i, s) for i, s in enumerate(settings)]
    return trials


def search_experiment(exp: Experiment, sw: SweepConfig, trials: list[Trial]) -> Experiment:
    from bench.optimizers import with_params

    specs = tuple(with_params(exp.optimizer(t.optimizer), t.params, t.label, f"sweep.space.{t.optimizer}")
                  for t in trials)
    return _derived(exp, "search", sw.search_seeds, sw.steps, specs)


def final_experiment(exp: Experiment, sw: SweepConfig, best: Mapping[str, Mapping[str, Any]]) -> Experiment:
    from bench.optimizers import with_params

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


# ------------------------------------------------------------------ scoring


def score_run(run_dir: Path, sw: SweepConfig) -> dict[str, dict]:
    """Criterion per (label, seed) of a finished phase, and its median per label.

    A diverged or failed seed scores the worst possible value: a setting that blows up is
    never "best" because its last good window looked fine.
    """
    from bench import summary as S
    from bench.trends import per_seed_metrics

    data = S.load_run(run_dir)
    worst = math.inf if sw.goal == "min" else -math.inf
    out = {}
    for label in data.optimizers:
        values, states = [], []
        for seed in data.seeds:
            status = data.status.get(f"{label}-seed{seed}", {}).get("status", "missing")
            v = per_seed_metrics(data, label, seed).get(sw.criterion, math.nan) if status == "finished" else worst
            values.append(worst if v != v else float(v))  # NaN (e.g. not scored): worst as well
            states.append(status)
        with np.errstate(invalid="ignore"):  # inf - inf between two diverged seeds: NaN, shown as "–"
            q25, q75 = np.percentile(values, [25, 75])
        out[label] = {"values": values, "seeds": data.seeds, "status": states,
                      "median": float(np.median(values)), "q25": float(q25), "q75": float(q75)}
    return out


def pick_best(trials: list[Trial], scores: Mapping[str, dict], goal: str) -> dict[str, Trial]:
    """Each optimizer's best trial by median criterion; ties go to the earlier trial."""
    best: dict[str, Trial] = {}
    sign = 1 if goal == "min" else -1
    for t in trials:
        cur = best.get(t.optimizer)
        if cur is None or sign * scores[t.label]["median"] < sign * scores[cur.label]["median"]:
            best[t.optimizer] = t
    return best


# ------------------------------------------------------------------ the sweep itself


def _now() -> str:
    return dt.datetime.now(dt.UTC).astimezone().isoformat(timespec="seconds")


def sweep_record(exp: Experiment, sw: SweepConfig) -> dict:
    """What identifies a sweep: the experiment as run plus the sweep table (for resuming)."""
    import json

    # through JSON, so that it compares equal to what sweep.json holds (tuples become lists)
    return json.loads(json.dumps({"config": exp.to_dict(), "sweep": sw.to_dict()}))


def run_sweep(exp: Experiment, sw: SweepConfig, sweep_dir: Path, opts, prepared, record: dict | None = None) -> dict:
    """Search, score, pick, then final; ``sweep.json`` is rewritten after each phase. Returns it."""
    from bench import optimizers, results, runner

    say = (lambda *a: None) if opts.quiet else (lambda *a: print(*a, file=sys.stderr))
    trials = make_trials(exp, sw)
    search = search_experiment(exp, sw, trials)
    optimizers.validate(search.optimizers)
    rec = record or {}
    rec.update({"schema": 1, "experiment": exp.name, "sweep_id": sweep_dir.name, **sweep_record(exp, sw),
                "status": "search", "started": rec.get("started", _now()), "command": rec.get("command", opts.command),
                "phases": {"search": f"{sweep_dir.name}-search", "final": f"{sweep_dir.name}-final"},
                "trials": rec.get("trials") or [{"label": t.label, "optimizer": t.optimizer, "index": t.index,
                                                  "params": t.params} for t in trials]})
    path = sweep_dir / SWEEP_FILE
    results.atomic_write_json(path, rec)

    def phase(name: str, sub: Experiment) -> dict:
        run_dir = sweep_dir / rec["phases"][name]
        run_dir.mkdir(exist_ok=True)
        manifest = results.read_json(run_dir / results.MANIFEST) if (run_dir / results.MANIFEST).exists() else None
        n = len(sub.optimizers) * len(sub.seeds)
        say(f"sweep {name} phase: {n} runs ({len(sub.optimizers)} settings x {len(sub.seeds)} seeds, "
            f"{sub.train.steps} iterations each) -> {run_dir}")
        try:
            with results.run_lock(run_dir):
                m = runner.execute(sub, run_dir, opts, prepared, manifest)
        except BenchError as e:
            if e.exit_code == 130:
                raise BenchError(f"interrupted; continue with: bench sweep --resume {sweep_dir}", exit_code=130) from None
            raise
        if m["status"] == "finished-with-failures":
            failed = [k for k, r in m["runs"].items() if r["status"] == "failed"]
            raise BenchError(f"{len(failed)} {name} run(s) failed ({', '.join(failed)}); "
                             f"continue with: bench sweep --resume {sweep_dir}", exit_code=1)
        return score_run(run_dir, sw)

    scores = phase("search", search)
    best = pick_best(trials, scores, sw.goal)
    for t in rec["trials"]:
        t["score"] = scores[t["label"]]
    rec["best"] = {lbl: {"trial": t.label, "params": t.params, "score": scores[t.label]["median"]}
                   for lbl, t in best.items()}
    rec["status"] = "final"
    results.atomic_write_json(path, rec)
    for label, t in best.items():
        say(f"  best {label}: {t.label} {_fmt_params(t.params)}  ({sw.criterion} {scores[t.label]['median']:.4g})")

    final = final_experiment(exp, sw, {lbl: t.params for lbl, t in best.items()})
    fscores = phase("final", final)
    rec["final"] = {lbl: {"default": fscores[lbl], "tuned": fscores[lbl + TUNED]} for lbl in sw.space}
    rec["status"] = "finished"
    rec["finished"] = _now()
    results.atomic_write_json(path, rec)
    return rec


def _fmt_params(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def find_resumable(out: Path, exp: Experiment, sw: SweepConfig) -> Path | None:
    """The newest unfinished sweep of the identical experiment and sweep table, if any."""
    from bench.results import newest_unfinished

    want = sweep_record(exp, sw)
    return newest_unfinished(out / exp.name, "sweep-*", SWEEP_FILE,
                             lambda rec: rec.get("status") != "finished" and {k: rec.get(k) for k in want} == want)


def summary_text(rec: dict) -> str:
    """The console summary: per optimizer, default against tuned on the final seeds."""
    import pandas as pd

    sw = rec["sweep"]
    rows = []
    for label, f in rec.get("final", {}).items():
        best = rec["best"][label]
        rows.append({"optimizer": label, "default": f["default"]["median"], "tuned": f["tuned"]["median"],
                     "best setting": _fmt_params(best["params"]), "found by": best["trial"]})
    table = pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.4g}") if rows else "(no final phase)"
    return (f"\n{rec['experiment']} sweep: {sw['criterion']} ({'lower' if sw['goal'] == 'min' else 'higher'} is better), "
            f"{sw['budget']} settings per optimizer, median over final seeds {sw['final_seeds']}:\n{table}")
