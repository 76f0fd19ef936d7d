"""The ``[sweep]`` table of an experiment: its schema, checked by bench.core.schema, and its meaning.

    [sweep]
    budget = 4                       # settings per optimizer, the same for all (required)
    method = "random"                # or "grid"
    criterion = "swd"                # a quality metric, or a loss trend such as g_loss.final
    goal = "min"                     # needed for loss trends; quality metrics know their direction
    steps = 0                        # iterations per search run; 0 = train.steps
    search_seeds = [0]               # default: the experiment's first seed
    final_seeds = [0, 1, 2]          # default: the experiment's seeds

    [sweep.space.adam]
    learning_rate = { log = [1e-5, 1e-2] }      # log-uniform draws, or a log grid (points = N)
    beta_1 = [0.0, 0.5, 0.9]                    # choices
    generator.learning_rate = { linear = [1e-4, 1e-3] }   # one network only

Checked when the experiment is loaded (``bench run`` refuses a malformed table too); whether each
key is a hyper-parameter of the optimizer is checked against Keras by bench.model.optimizers.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.core.errors import BenchError
from bench.core.metric_table import LOSS_SUMMARIES, LOSSES
from bench.core.schema import build, suggest

METHODS = ("random", "grid")


@dataclass(frozen=True)
class RangeTable:
    """``{ log = [low, high] }`` or ``{ linear = [low, high] }``, with grid ``points`` (0: fill the budget)."""

    log: tuple[float, float] | None = None
    linear: tuple[float, float] | None = None
    points: int = 0


@dataclass(frozen=True)
class SweepTable:
    budget: int  # required: the number of settings every optimizer gets
    method: str = "random"
    seed: int = 0
    criterion: str = "swd"
    goal: str = ""
    steps: int = 0
    search_seeds: tuple[int, ...] | None = None
    final_seeds: tuple[int, ...] | None = None
    space: Mapping[str, Any] = field(default_factory=dict)


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
    budget: int  # required: the number of settings every optimizer gets
    method: str
    seed: int
    criterion: str  # normalised: "swd.final", "g_loss.slope", ...
    goal: str  # min | max
    steps: int  # iterations per search run
    search_seeds: tuple[int, ...]
    final_seeds: tuple[int, ...]
    space: dict[str, tuple[Dim, ...]]  # optimizer label -> dims

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "space"}
        return {**d, "search_seeds": list(self.search_seeds), "final_seeds": list(self.final_seeds),
                "space": {lbl: {d.key: dataclasses.asdict(d) for d in dims} for lbl, dims in self.space.items()}}

    def grid_counts(self, label: str) -> list[int]:
        return _grid_counts(self.space[label], self.method, self.budget, label)


# ------------------------------------------------------------------ parsing


def _dim(key: str, value: Any, where: str) -> Dim:
    if isinstance(value, list):
        if not value or any(isinstance(v, (list, Mapping)) for v in value):
            raise BenchError(f"{where}.{key}: a list of choices must be non-empty numbers, strings or true/false")
        return Dim(key, "choice", choices=tuple(value))
    if not isinstance(value, Mapping):
        raise BenchError(f"{where}.{key}: expected {{ log = [low, high] }}, {{ linear = [low, high] }} or a list of "
                         f"choices, got {value!r}")
    r = build(RangeTable, value, f"{where}.{key}")
    if (r.log is None) == (r.linear is None):
        raise BenchError(f"{where}.{key}: give exactly one of log = [low, high] or linear = [low, high]")
    kind = "log" if r.log is not None else "linear"
    low, high = r.log or r.linear
    if not (math.isfinite(low) and math.isfinite(high) and low < high) or (kind == "log" and low <= 0):
        raise BenchError(f"{where}.{key}: need {'0 < ' if kind == 'log' else ''}low < high, got [{low:g}, {high:g}]")
    if r.points < 0:
        raise BenchError(f"{where}.{key}.points: expected a positive integer, got {r.points!r}")
    return Dim(key, kind, low, high, points=r.points)


def _dims(table: Any, where: str, prefix: str = "") -> tuple[Dim, ...]:
    """The ranges of a search space: ``key = range``, or a table of them under a network (``generator.*``) or a
    learning-rate schedule (``learning_rate.decay_steps``), two levels deep at most."""
    if not isinstance(table, Mapping) or not table:
        raise BenchError(f"{where}: expected a table of hyper-parameter ranges, e.g. learning_rate = {{ log = [1e-5, 1e-2] }}")
    dims = []
    for key, value in table.items():
        if isinstance(value, Mapping) and not ({"log", "linear", "points"} & set(value)):
            if not value:
                raise BenchError(f"{where}.{prefix}{key}: an empty table")
            if prefix.count(".") >= 1:
                raise BenchError(f"{where}.{prefix}{key}: too deep (NETWORK.KEY.ARG at most)")
            dims += _dims(value, where, f"{prefix}{key}.")  # generator.learning_rate = ..., learning_rate.decay_steps
        else:
            dims.append(_dim(f"{prefix}{key}", value, where))
    return tuple(dims)


def _seeds(value: tuple[int, ...], where: str) -> tuple[int, ...]:
    if not value or len(set(value)) != len(value) or any(s < 0 or s >= 2**32 for s in value):
        raise BenchError(f"{where}: expected a list of distinct seeds in [0, 2**32), got {list(value)!r}")
    return value


def criteria(quality: Mapping[str, str]) -> list[str]:
    """Every valid criterion: a quality metric's final value or a loss-trend summary."""
    return [f"{q}.final" for q in quality] + [f"{loss}.{w}" for loss in LOSSES for w in LOSS_SUMMARIES]


def normalise_criterion(name: str) -> str:
    return name if "." in name else f"{name}.final"


def parse_sweep(exp: Any, quality: Mapping[str, str], where: str = "sweep", selected: bool = False,
                lenient: bool = False) -> SweepConfig:
    """Validate ``exp.sweep`` against the experiment ``exp`` (a bench.core.config.Experiment); ``quality``:
    the sample-quality metrics a criterion may name, each with its goal (bench.quality.scores.goals(), which
    this layer does not import).

    ``selected``: the experiment's optimizers are the ones to sweep (after ``--optimizers``), so
    each needs a search space; otherwise the file is checked on its own (every space names one
    of the file's optimizers). ``lenient``: spaces of optimizers the experiment does not run are
    skipped (a run of some of a file's optimizers).
    """
    if not exp.sweep:
        raise BenchError(f"experiment '{exp.name}' has no [sweep] table; add one (see `bench sweep --help`)")
    t = build(SweepTable, exp.sweep, where)
    if t.budget < 1:
        raise BenchError(f"{where}.budget: expected an integer >= 1, got {t.budget!r}")
    if t.seed < 0 or t.steps < 0:
        bad = "seed" if t.seed < 0 else "steps"
        raise BenchError(f"{where}.{bad}: expected an integer >= 0, got {getattr(t, bad)!r}")
    if t.method not in METHODS:
        raise BenchError(f"{where}.method: expected 'random' or 'grid', got {t.method!r}")
    criterion = normalise_criterion(t.criterion)
    head = criterion.partition(".")[0]
    valid = criteria(quality)
    if criterion not in valid:
        raise BenchError(f"{where}.criterion: unknown criterion '{criterion}'{suggest(criterion, valid)}; "
                         f"a quality metric ({', '.join(quality)}) or LOSS.{{{','.join(LOSS_SUMMARIES)}}}")
    goals, quality = quality, head in quality
    goal = t.goal
    if goal not in ("", "min", "max"):
        raise BenchError(f"{where}.goal: expected 'min' or 'max', got {goal!r}")
    if not goal:
        if not quality:
            raise BenchError(f"{where}.goal: a loss criterion ({criterion}) has no natural direction; say goal = \"min\" or \"max\"")
        goal = goals[head]
    # (only when sweeping: `bench run smoke --no-eval` must not trip over the sweep's criterion)
    if selected and quality and not exp.eval.enabled:
        raise BenchError(f"{where}.criterion {head} needs the sample-quality metrics; drop --no-eval / eval.enabled = false, "
                         f"or pick a loss criterion such as g_loss.final")
    if selected and head == "fid" and not exp.eval.fid_weights:
        raise BenchError(f"{where}.criterion fid needs --fid-weights FILE (local InceptionV3 weights)")
    search_seeds = _seeds(t.search_seeds, f"{where}.search_seeds") if t.search_seeds is not None else exp.seeds[:1]
    final_seeds = _seeds(t.final_seeds, f"{where}.final_seeds") if t.final_seeds is not None else exp.seeds
    if not isinstance(t.space, Mapping) or not t.space:
        raise BenchError(f"{where}.space: give at least one optimizer's search space, e.g. [sweep.space.adam]")
    labels = [o.label for o in exp.optimizers]
    space = {}
    for label, table in t.space.items():
        if label not in labels:
            if selected or lenient:
                continue  # an optimizer left out with --optimizers
            raise BenchError(f"{where}.space.{label}: no optimizer '{label}' in the experiment{suggest(label, labels)}")
        space[label] = _dims(table, f"{where}.space.{label}")
    if selected:
        missing = [lbl for lbl in labels if lbl not in space]
        if missing:
            raise BenchError(f"optimizer '{missing[0]}' has no search space; add [sweep.space.{missing[0]}] or leave it "
                             f"out of --optimizers (spaces exist for: {', '.join(t.space) or 'none'})")
    sw = SweepConfig(t.budget, t.method, t.seed, criterion, goal, t.steps or exp.train.steps, search_seeds,
                     final_seeds, space)
    for label in space:
        _grid_counts(space[label], sw.method, sw.budget, f"{where}.space.{label}")
    return sw


def _grid_counts(dims: tuple[Dim, ...], method: str, budget: int, where: str) -> list[int]:
    """Points per dimension of a grid; their product must be the budget (equal for every optimizer)."""
    if method != "grid":
        return []
    counts = [len(d.choices) if d.kind == "choice" else d.points for d in dims]
    free = [i for i, c in enumerate(counts) if c == 0]
    fixed = math.prod(c for c in counts if c)
    if len(free) == 1 and budget % fixed == 0:
        counts[free[0]] = budget // fixed
    elif free:
        raise BenchError(f"{where}: grid ranges need points = N (only one may be left out, to fill the budget)")
    if math.prod(counts) != budget:
        raise BenchError(f"{where}: the grid has {' x '.join(map(str, counts))} = {math.prod(counts)} settings but "
                         f"budget = {budget}; every optimizer must get the same budget")
    return counts
