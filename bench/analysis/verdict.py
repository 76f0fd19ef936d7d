"""Which optimizer is better, by how much, how sure, and how fast: the paired verdict of a run.

bench's runs are paired: seed s fixes the initial weights, every batch and every latent draw for every
optimizer, so for optimizers A and B the per-seed difference d_s = score(A, s) - score(B, s) carries the
comparison (a log-ratio for positive metrics such as RFD and SWD, shown as a percentage; a plain difference
for KID, coverage and the losses; the difference of the distances from the ideal value for diversity-like
metrics). On it (bench.analysis.stats):

- the estimate is the median of d_s, with the interval that inverts the exact sign test (order statistics
  of the d_s): it covers the median difference with probability >= 1 - alpha whatever the differences'
  distribution, and excludes 0 exactly when the test's p < alpha;
- p is that sign test, Holm-adjusted over the optimizer pairs of each metric; the primary metric's pairs are
  the confirmatory family the verdict's sentences use, every other metric is exploratory;
- the probability of improvement is the share of seeds in which A beats B (ties count 1/2), with a Wilson
  score interval;
- the label: identical (every seed ties), underpowered (no outcome could reach p < alpha with this many
  seeds, tied seeds counted, and pairs: checked first), better / worse (Holm p < alpha), equivalent (two
  one-sided sign tests at alpha against +- the metric's margin), else inconclusive.

The primary metric must have passed the validation suite on the run's own data (bench.quality.validation,
recorded in the manifest): a verdict on a metric that failed, or was never validated, is exploratory and
says so in words. A run flagged as failed (diverged, D wins outright, collapse, or did not learn: its final
primary value no better than its own untrained generator's) counts as the worst on every metric for its
seed, whatever its numbers. Every pair's verdict is checked for budget adequacy: whether the sign of its
paired difference held over the last quarter of the evaluations, and whether the reference optimizer was
still improving then (a one-sided sign test on its per-seed slopes); when the answer could still change,
the verdict is provisional and says why.

Against rliable and AlgoPerf: rliable's probability of improvement is Mann-Whitney U / (n_x n_y) over
unpaired runs; here it is paired by seed. AlgoPerf's time to target is the first evaluation that reaches the
target, a miss is infinite, and ratios of times average geometrically with infinity replaced by the budget +
1; the same here, per seed and paired, with the target set where a miss is informative (the reference's
median value at half the budget), and a sign-test interval for the ratio (AlgoPerf reports none, and no test).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from itertools import combinations

import numpy as np
from scipy import stats as sps

from bench.analysis.stats import (
    equivalence_p,
    final_mean,
    holm,
    seeds_needed,
    sign_interval,
    sign_test,
    smallest_p,
    ties,
    wilson,
)
from bench.analysis.summary import COLLAPSE_RATIO, d_wins_at_end, summarize_run
from bench.core.config import CompareConfig, check_compare, check_metric_names
from bench.core.errors import BenchError
from bench.core.metric_table import LOSS_MARGIN, LOSS_TITLES, LOSSES, metric_key
from bench.core.schema import build
from bench.quality.scores import DEFAULT_PRIMARY, INFO, comparable_metrics
from bench.store.files import warn
from bench.store.load import RunData, dig

FINAL_EVALS = 3  # a metric's final value: the mean of its last evaluations
# Up to this many optimizers every pair is compared; beyond it (many runs compared together) each optimizer is
# compared with the reference only (k - 1 pairs, not k (k - 1) / 2): time, memory and output grow linearly.
ALL_PAIRS_MAX = 8
COVERAGE_FLOOR = 0.02  # a run whose final coverage is this low covers (almost) no real image ...
COVERAGE_REACHED = 0.10  # ... has failed when another optimizer covers this much at the same seed (early in
# training every optimizer covers nothing: that alone is no failure, the metrics compare them)
LAST_QUARTER = 0.25  # budget adequacy looks at the last quarter of the evaluations (at least MIN_TAIL of them)
MIN_TAIL = 3
TARGET_AT = 0.5  # time to target: the reference's median value at this share of the budget


@dataclass
class MetricInfo:
    name: str  # "rfd.final", "rfd.best", "g_loss.final"
    title: str  # "RFD", "best RFD", "G loss"
    goal: str  # "min", "max" or "" (a loss: higher or lower, not better or worse)
    log_ratio: bool
    margin: float  # in the units of d (log units for log-ratios)
    digits: int = 3
    ideal: float | None = None  # compared as the distance from this value (diversity, memorisation: 1)


def metric_info(name: str, margins: dict) -> MetricInfo:
    base, _, kind = metric_key(name).partition(".")
    if base in INFO:
        m = INFO[base]
        margin = margins.get(name, margins.get(base, m.margin))
        title = m.header.rstrip(" ↓↑").split(" →")[0]
        if m.goal == "ideal":
            title = f"{title}'s distance from {m.ideal:g}"
        return MetricInfo(f"{base}.{kind}", title if kind == "final" else f"best {title}",
                          "min" if m.goal == "ideal" else m.goal, m.positive,
                          math.log1p(margin) if m.positive else margin, m.digits,
                          m.ideal if m.goal == "ideal" else None)
    return MetricInfo(f"{base}.final", LOSS_TITLES[base], "", False, margins.get(name, margins.get(base, LOSS_MARGIN)))


@dataclass
class Comparison:
    a: str
    b: str
    metric: str
    seeds: list[int]
    d: list[float]
    estimate: float  # the median per-seed difference
    ci: list[float]
    p_raw: float
    p_holm: float
    p_improvement: float
    p_improvement_ci: list[float]
    label: str
    wins: int  # seeds in which A is better (higher, for a loss)
    confirmatory: bool
    log_ratio: bool
    ties: int = 0  # seeds in which A and B are equal (relative 1e-9)
    validated: bool = True  # the metric passed the validation suite on this run's data
    p_equivalence: float = 1.0  # two one-sided sign tests against +- the margin


@dataclass
class Verdict:
    experiment: str
    run: str
    optimizers: list[str]
    seeds: list[int]
    primary: str | None
    config: dict
    health: dict[str, dict[int, list[str]]]
    scores: dict[str, dict[str, dict[int, float]]]
    comparisons: list[Comparison]
    time_to_target: dict
    divergence: dict
    over_training: list[dict]
    sentences: list[str]
    notes: list[str] = field(default_factory=list)
    initial: dict[str, dict[int, float]] = field(default_factory=dict)  # the primary at the first evaluation
    noise: float | None = None  # the primary for uniform noise (scored once per run): normalised scores' zero
    validation: dict = field(default_factory=dict)  # the primary's validation: passed?, why not, the table's passers
    budget: dict = field(default_factory=dict)  # provisional?, why, per pair: did the order hold over the last quarter

    def to_json(self) -> dict:
        d = asdict(self)
        d["health"] = {o: {str(s): r for s, r in v.items()} for o, v in self.health.items()}
        d["scores"] = {o: {m: {str(s): v for s, v in per.items()} for m, per in ms.items()} for o, ms in self.scores.items()}
        d["initial"] = {o: {str(s): v for s, v in per.items()} for o, per in self.initial.items()}
        return d

    def primary_comparisons(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.metric == self.primary]


# ------------------------------------------------------------------ per (optimizer, seed)


def _quality_series(data: RunData) -> dict[tuple[str, int, str], np.ndarray]:
    """(optimizer, seed, metric) -> (steps, values) in step order."""
    q = data.quality
    out = {}
    if not len(q):
        return out
    for (opt, seed, metric), g in q.groupby(["optimizer", "seed", "metric"], sort=False):
        g = g.sort_values("step")
        out[(opt, int(seed), metric)] = np.stack([g.step.to_numpy(float), g.value.to_numpy(float)])
    return out


def _trained(s: np.ndarray | None) -> np.ndarray:
    """A series' values after training began: the evaluation at iteration 0 scores the untrained generator, which
    must neither set a best value nor a target every optimizer "reaches" at once."""
    if s is None:
        return np.array([])
    return s[1][s[0] > 0] if (s[0] > 0).any() else s[1]


def _badness(base: str, values: np.ndarray) -> np.ndarray:
    """Lower is better, whatever the metric's goal."""
    return np.vectorize(INFO[base].badness, otypes=[float])(values) if len(values) else np.asarray(values, float)


def health(data: RunData, series: dict, primary: str | None) -> dict[str, dict[int, list[str]]]:
    """Why each (optimizer, seed) counts as failed (empty: healthy)."""
    out: dict[str, dict[int, list[str]]] = {}
    final_cov = {(o, s): series[(o, s, "coverage")][1][-1] for o in data.optimizers for s in data.seeds
                 if (o, s, "coverage") in series and len(series[(o, s, "coverage")][1])}
    base = primary.partition(".")[0] if primary else None
    for opt in data.optimizers:
        out[opt] = {}
        for seed in data.seeds:
            r = summarize_run(data, opt, seed)
            reasons = []
            if r.status == "diverged":
                reasons.append(f"diverged at iteration {r.diverged_at}")
            elif r.status == "failed":
                error = data.status.get(f"{opt}-seed{seed}", {}).get("error")
                reasons.append(f"failed ({error})" if isinstance(error, str) and error else "failed")
            pair = data.pair(opt, seed)
            if d_wins_at_end(pair[pair.status == "ok"], data.steps_total):
                reasons.append("D wins outright")
            cov = final_cov.get((opt, seed), math.nan)
            others = max([c for (o, s), c in final_cov.items() if s == seed and o != opt] or [0.0])
            if cov <= COVERAGE_FLOOR and others >= COVERAGE_REACHED:
                reasons.append(f"coverage {cov:.2f}")
            if not math.isnan(r.diversity) and r.diversity < COLLAPSE_RATIO:
                reasons.append(f"diversity {r.diversity:.2f} (collapse)")
            s = series.get((opt, seed, base)) if base else None
            if s is not None and r.status != "diverged" and (s[0] == 0).any() and (s[0] > 0).any():
                start = float(_badness(base, s[1][s[0] == 0][:1])[0])
                final = float(np.mean(_badness(base, _trained(s)[-FINAL_EVALS:])))
                if math.isfinite(start) and math.isfinite(final) and final >= start:
                    reasons.append(f"did not learn ({base} {np.mean(_trained(s)[-FINAL_EVALS:]):.4g} no better than "
                                   f"its untrained generator's {s[1][s[0] == 0][0]:.4g})")
            out[opt][seed] = reasons
    return out


def scores(data: RunData, series: dict) -> dict[str, dict[str, dict[int, float]]]:
    """Every comparable metric's value per (optimizer, seed), as measured (failures not yet penalised):
    a quality metric's final value (the mean of its last evaluations) and its best over training."""
    out: dict[str, dict[str, dict[int, float]]] = {}
    present = [m for m in INFO if any(k[2] == m for k in series)]
    for opt in data.optimizers:
        out[opt] = {}
        for seed in data.seeds:
            for m in present:
                values = _trained(series.get((opt, seed, m)))
                final = float(np.mean(values[-FINAL_EVALS:])) if len(values) else math.nan
                finite = values[np.isfinite(values)]
                best = float(finite[int(np.argmin(_badness(m, finite)))]) if len(finite) else math.nan
                out[opt].setdefault(f"{m}.final", {})[seed] = final
                out[opt].setdefault(f"{m}.best", {})[seed] = best
            df = data.pair(opt, seed)
            for loss in LOSSES:
                out[opt].setdefault(f"{loss}.final", {})[seed] = final_mean(df, loss, data.steps_total) if len(df) else math.nan
    return out


def penalised(values: dict[str, dict[int, float]], failed: dict[str, set[int]], info: MetricInfo) -> dict:
    """A failed run (or one with no finite value) counts as worse than every healthy run on a metric with
    a direction: its value becomes the worst healthy value moved one spread further, or what it measured
    where that is worse still (a penalty never flatters). Values here are already distances from the ideal
    for ideal-value metrics."""
    if not info.goal:
        return values
    healthy = [v for o, per in values.items() for s, v in per.items() if s not in failed[o] and math.isfinite(v)]
    pool = healthy or [v for per in values.values() for v in per.values() if math.isfinite(v)] or [1.0]
    worst = max(pool) if info.goal == "min" else min(pool)
    spread = max(max(pool) - min(pool), abs(worst) * 0.1, 1e-9)
    penalty = worst + spread if info.goal == "min" else worst - spread
    worse = max if info.goal == "min" else min

    def value(failed_run: bool, v: float) -> float:
        if not math.isfinite(v):
            return penalty
        return worse(v, penalty) if failed_run else v

    return {o: {s: value(s in failed[o], v) for s, v in per.items()} for o, per in values.items()}


def _compared(values: dict[int, float], info: MetricInfo) -> dict[int, float]:
    """What is compared: the value, or its distance from the ideal value."""
    if info.ideal is None:
        return values
    return {s: abs(v - info.ideal) if math.isfinite(v) else v for s, v in values.items()}


# ------------------------------------------------------------------ the comparisons


def optimizer_pairs(optimizers: list[str], reference: str) -> list[tuple[str, str]]:
    """Every pair of optimizers, or, beyond ALL_PAIRS_MAX of them, each one against the reference."""
    if len(optimizers) <= ALL_PAIRS_MAX:
        return list(combinations(optimizers, 2))
    return [(reference, o) for o in optimizers if o != reference]


def _transform(values: np.ndarray, info: MetricInfo) -> np.ndarray:
    return np.log(values) if info.log_ratio else values


def compare_pair(a: dict[int, float], b: dict[int, float], info: MetricInfo, alpha: float) -> dict:
    seeds = [s for s in a if s in b and math.isfinite(a[s]) and math.isfinite(b[s])]
    va, vb = np.array([a[s] for s in seeds]), np.array([b[s] for s in seeds])
    d = _transform(va, info) - _transform(vb, info)
    tied = ties(va, vb)
    d[tied] = 0.0  # equal up to rounding: exactly no difference, for the test and its interval alike
    sign = -1.0 if info.goal == "min" else 1.0  # positive: A better (higher, for a loss)
    better = (sign * d > 0).astype(float) + 0.5 * (d == 0)
    if not len(seeds):
        return {"seeds": [], "d": [], "estimate": math.nan, "ci": [math.nan, math.nan], "p_raw": 1.0,
                "p_improvement": math.nan, "p_improvement_ci": [math.nan, math.nan], "wins": 0, "ties": 0,
                "p_equivalence": 1.0}
    low, high = sign_interval(d, alpha)
    pi_low, pi_high = wilson(float(better.sum()), len(d), 1 - alpha)
    return {"seeds": seeds, "d": d.tolist(), "estimate": float(np.median(d)), "ci": [low, high],
            "p_raw": sign_test(d), "p_improvement": float(better.mean()), "p_improvement_ci": [pi_low, pi_high],
            "wins": int((sign * d > 0).sum()), "ties": int((d == 0).sum()),
            "p_equivalence": equivalence_p(d, info.margin)}


def label(c: dict, info: MetricInfo, alpha: float, pairs: int) -> str:
    d = np.asarray(c["d"])
    if not len(d):
        return "inconclusive"
    if c.get("both_failed"):
        return "both failed"
    if np.all(d == 0):
        return "identical"
    if min(1.0, pairs * smallest_p(len(d), c["ties"])) >= alpha:
        return "underpowered"  # first: with too few seeds, neither a difference nor an equivalence can be shown
    if c["p_holm"] < alpha:
        up = c["estimate"] > 0
        if not info.goal:
            return "higher" if up else "lower"
        return "better" if up == (info.goal == "max") else "worse"
    if c["p_equivalence"] < alpha:
        return "equivalent"
    return "inconclusive"


# ------------------------------------------------------------------ time to target, divergence, over training


def _value_at(s: np.ndarray, step: float) -> float:
    """A series' value at the evaluation nearest ``step`` (after iteration 0)."""
    trained = s[:, s[0] > 0]
    if not trained.shape[1]:
        return math.nan
    return float(trained[1][int(np.argmin(np.abs(trained[0] - step)))])


def time_to_target(data: RunData, series: dict, primary: str, info: MetricInfo, failed: dict, cfg: CompareConfig,
                   reference: str, alpha: float, pairs: list[tuple[str, str]]) -> dict:
    """Iterations until the primary first reaches the target. The target is declared ([compare] target), or the
    reference optimizer's median value at half the budget (its healthy seeds): the reference reaches it about
    half-way, so missing it within the whole budget means being more than twice as slow, which a miss's budget
    + 1 then says."""
    base = primary.partition(".")[0]
    budget = data.steps_total
    if cfg.target is not None:
        target, rule = float(cfg.target), "declared in [compare]"
    else:
        at = TARGET_AT * budget
        pool = [_value_at(series[(reference, s, base)], at) for s in data.seeds
                if (reference, s, base) in series and s not in failed[reference]]
        pool = [v for v in pool if math.isfinite(v)]
        if not pool:
            return {"metric": primary, "target": None, "budget": budget, "optimizers": {}, "pairs": [], "per_seed": {},
                    "unit": "iterations", "rule": f"none: {reference}, the reference, failed on every seed, so no "
                    "target was set from it (declare [compare] target, or another reference)"}
        target = float(np.median(pool))
        rule = f"{reference}'s median {info.title} at iteration {int(at)} (half the budget)"
    if info.ideal is not None:
        def reach(v: float) -> bool:
            return abs(v - info.ideal) <= abs(target - info.ideal)
    elif info.goal == "min":
        def reach(v: float) -> bool:
            return v <= target
    else:
        def reach(v: float) -> bool:
            return v >= target
    per: dict[str, dict[int, dict]] = {}
    for opt in data.optimizers:
        per[opt] = {}
        for seed in data.seeds:
            s = series.get((opt, seed, base))
            hit = math.inf
            if s is not None and seed not in failed[opt]:
                trained = s[:, s[0] > 0]
                idx = [i for i, v in enumerate(trained[1]) if math.isfinite(v) and reach(v)]
                hit = float(trained[0][idx[0]]) if idx else math.inf
            seconds = math.inf
            if math.isfinite(hit):
                df = data.pair(opt, seed)
                seconds = float(df[df.step <= hit].step_seconds.sum())
            per[opt][seed] = {"iterations": hit, "seconds": seconds}
    summary = {}
    for opt in data.optimizers:
        its = [per[opt][s]["iterations"] for s in data.seeds]
        secs = [per[opt][s]["seconds"] for s in data.seeds]
        summary[opt] = {"reached": sum(math.isfinite(t) for t in its), "of": len(its),
                        "median_iterations": float(np.median(its)), "median_seconds": float(np.median(secs))}

    def capped(t: float) -> float:  # AlgoPerf's rule for a miss: the budget plus one
        return budget + 1.0 if not math.isfinite(t) else t

    ratios = []
    for a, b in pairs:
        logs = np.log([capped(per[a][s]["iterations"]) / capped(per[b][s]["iterations"]) for s in data.seeds])
        low, high = sign_interval(logs, alpha)
        ratios.append({"a": a, "b": b, "ratio": float(np.exp(np.median(logs))), "ci": [math.exp(low), math.exp(high)]})
    return {"metric": primary, "target": target, "rule": rule, "budget": budget, "unit": "iterations",
            "per_seed": {o: {str(s): v for s, v in per[o].items()} for o in per}, "optimizers": summary,
            "pairs": ratios}


def divergence(data: RunData, pairs: list[tuple[str, str]]) -> dict:
    diverged = {o: {s for s in data.seeds if data.pair_status(o, s) == "diverged"} for o in data.optimizers}
    out = {"fraction": {o: len(diverged[o]) / len(data.seeds) for o in data.optimizers}, "pairs": []}
    for a, b in pairs:
        only_a, only_b = len(diverged[a] - diverged[b]), len(diverged[b] - diverged[a])
        if only_a + only_b:  # exact McNemar: of the seeds where exactly one diverged, is it as often either?
            p = float(sps.binomtest(only_a, only_a + only_b, 0.5).pvalue)
            out["pairs"].append({"a": a, "b": b, "only_a": only_a, "only_b": only_b, "p_mcnemar": p})
    return out


def over_training(data: RunData, series: dict, primary: str, info: MetricInfo, alpha: float,
                  pairs: list[tuple[str, str]]) -> list:
    """Per pair: the median paired difference of the primary metric at each evaluation, its sign-test band,
    and the share of seeds in which each optimizer is ahead."""
    base = primary.partition(".")[0]
    out = []
    sign = -1.0 if info.goal == "min" else 1.0
    for a, b in pairs:
        rows = []
        steps = sorted({int(t) for s in data.seeds if (a, s, base) in series for t in series[(a, s, base)][0]})
        for step in steps:
            va, vb = [], []
            for s in data.seeds:
                sa, sb = series.get((a, s, base)), series.get((b, s, base))
                if sa is None or sb is None:
                    continue
                x, y = sa[1][sa[0] == step], sb[1][sb[0] == step]
                if len(x) and len(y) and np.isfinite(x[0]) and np.isfinite(y[0]):
                    va.append(x[0])
                    vb.append(y[0])
            if not va:
                continue
            ca = np.array(list(_compared(dict(enumerate(va)), info).values()))
            cb = np.array(list(_compared(dict(enumerate(vb)), info).values()))
            if info.log_ratio and (ca <= 0).any() | (cb <= 0).any():
                continue
            d = _transform(ca, info) - _transform(cb, info)
            d[ties(ca, cb)] = 0.0
            low, high = sign_interval(d, alpha)
            rows.append({"step": step, "median": float(np.median(d)), "ci": [low, high],
                         "a_ahead": float((sign * d > 0).mean()), "b_ahead": float((sign * d < 0).mean()),
                         "seeds": len(d)})
        out.append({"a": a, "b": b, "log_ratio": info.log_ratio, "rows": rows})
    return out


def budget_adequacy(data: RunData, series: dict, primary: str, comparisons: list[Comparison], trained: list,
                    reference: str, failed: dict, alpha: float) -> dict:
    """Could the answer still change with a longer budget? Per pair: did the sign of the median paired
    difference hold over the last quarter of the evaluations (else, where it last changed); and is the
    reference still improving over that quarter (per seed, the least-squares slope of its primary's badness;
    one-sided sign test across seeds that the slopes are negative)."""
    base = primary.partition(".")[0]
    reasons, per_pair = [], []
    by_pair = {(c.a, c.b): c for c in comparisons}
    for p in trained:
        c = by_pair.get((p["a"], p["b"]))
        rows = p["rows"]
        if c is None or not rows:
            continue
        tail = max(MIN_TAIL, math.ceil(LAST_QUARTER * len(rows)))
        final_sign = np.sign(rows[-1]["median"])
        changed = [r["step"] for r in rows if np.sign(r["median"]) != final_sign]
        held = not any(np.sign(r["median"]) != final_sign for r in rows[-tail:])
        entry = {"a": c.a, "b": c.b, "held": held, "tail_from": rows[-tail]["step"] if len(rows) >= tail else rows[0]["step"],
                 "last_change": changed[-1] if changed else None}
        per_pair.append(entry)
        if not held and c.label in ("better", "worse"):
            reasons.append(f"the order of {c.a} and {c.b} last changed at iteration {changed[-1]}, within the last "
                           f"quarter of the evaluations")
    slopes = []
    for s in data.seeds:
        ser = series.get((reference, s, base))
        if ser is None or s in failed.get(reference, set()):
            continue
        tr = ser[:, ser[0] > 0]
        tail = max(MIN_TAIL, math.ceil(LAST_QUARTER * tr.shape[1]))
        x, y = tr[0][-tail:], _badness(base, tr[1][-tail:])
        if len(x) >= 2 and np.isfinite(y).all():
            slopes.append(float(np.polyfit(x, y, 1)[0]))
    trend = {}
    if slopes:
        slopes_a = np.asarray(slopes)
        falling = int((slopes_a < 0).sum())
        # one-sided sign test of "the reference's badness is falling": few seeds not falling
        p = float(sps.binom.cdf(len(slopes) - falling, len(slopes), 0.5))
        trend = {"optimizer": reference, "falling": falling, "of": len(slopes), "p": p, "improving": p < alpha,
                 "median_slope_per_1000": float(np.median(slopes_a) * 1000)}
        if p < alpha:
            reasons.append(f"{reference}, the reference, was still improving over the last quarter ({base} falling in "
                           f"{falling} of {len(slopes)} seeds, one-sided sign test p = {p:.3g})")
    steps = data.steps_total
    return {"provisional": bool(reasons), "reasons": reasons, "pairs": per_pair, "reference_trend": trend,
            "suggest_steps": 2 * steps if reasons else None,
            "rule": "provisional when a significant order changed within the last quarter of the evaluations, or the "
                    "reference's primary was still improving there (one-sided sign test on per-seed slopes, alpha)"}


# ------------------------------------------------------------------ the verdict


def validation_of(manifest: dict) -> dict | None:
    """The validation table a run recorded (None: a run made before bench validated its metrics)."""
    table = dig(manifest, "validation", dict)
    if table is None or not isinstance(table.get("passed"), list) or not isinstance(table.get("metrics"), dict):
        return None
    if not all(isinstance(m, str) for m in table["passed"]):  # garbled: nothing counts as validated
        return None
    return table


def _why_failed(table: dict | None, base: str) -> str:
    if table is None:
        return "this run recorded no validation of its metrics (made before bench validated them)"
    entry = table["metrics"].get(base)
    if not isinstance(entry, dict):
        return f"{base} was not part of this run's validation"
    failed = [f"{name} ({c.get('detail', '')})" for name, c in (entry.get("checks") or {}).items()
              if isinstance(c, dict) and not c.get("pass")]
    return f"{base} failed the validation suite on these data: " + ("; ".join(failed[:2]) or "see the table")


def choose_primary(requested: str, available: set[str], table: dict | None) -> tuple[str | None, list[str]]:
    """The primary metric: the one asked for, else the first metric (DEFAULT_PRIMARY first) that passed the
    validation suite on this run's data and was scored, else the default one (exploratory, said so)."""
    notes = []
    if requested:
        key = metric_key(requested)
        if key not in available:
            raise BenchError(f"primary metric {requested!r} was not scored in this run; scored: "
                             f"{', '.join(sorted(available)) or 'none (--no-eval)'}")
        return key, notes
    passed = [m for m in (table or {}).get("passed", []) if isinstance(m, str)]
    for m in [DEFAULT_PRIMARY, *INFO]:
        if m in passed and f"{m}.final" in available:
            return f"{m}.final", notes
    for m in [DEFAULT_PRIMARY, *INFO]:
        if f"{m}.final" in available:
            return f"{m}.final", notes
    notes.append("no sample-quality metric was scored (--no-eval): the losses are compared, with no verdict on quality")
    return None, notes


def verdict(data: RunData, cfg: CompareConfig | None = None, primary: str = "", reference: str = "",
            alpha: float | None = None) -> Verdict:
    """The verdict of one finished run folder (bench.store.load.RunData)."""
    cfg = cfg or CompareConfig()
    alpha = cfg.alpha if alpha is None else alpha
    if data.state in ("in progress", "interrupted"):
        raise BenchError(f"{data.run_dir}: the run is {data.state}; finish it (bench run --resume) before comparing")
    if len(data.optimizers) < 1:
        raise BenchError(f"{data.run_dir}: no optimizers to compare")
    series = _quality_series(data)
    raw = scores(data, series)
    available = {m for o in raw for m in raw[o]}
    quality_keys = {m for m in available if not m.startswith(LOSSES)}
    declared = []
    if not primary and cfg.primary and metric_key(cfg.primary) not in quality_keys:
        # the experiment file's choice, on a run that did not score it (--no-eval): a note, not an error;
        # a primary asked for on the command line must exist
        declared = [f"[compare] primary {cfg.primary} was not scored in this run (--no-eval?): using the default"]
        cfg = replace(cfg, primary="")
    table = validation_of(data.manifest)
    primary_key, notes = choose_primary(primary or cfg.primary, quality_keys, table)
    notes = declared + notes
    base = primary_key.partition(".")[0] if primary_key else None
    validated = bool(base and table is not None and base in table["passed"])
    if primary_key and not validated:
        notes.append(f"no validated metric: {_why_failed(table, base)}; every comparison below is exploratory "
                     "(see the validation table)")
    hl = health(data, series, primary_key)
    failed = {o: {s for s, r in per.items() if r} for o, per in hl.items()}
    reference = reference or cfg.reference or data.optimizers[0]
    if reference not in data.optimizers:
        raise BenchError(f"reference optimizer {reference!r} is not in the run ({', '.join(data.optimizers)})")
    metrics = ([primary_key] if primary_key else []) + [m for m in sorted(available, key=_order) if m != primary_key]
    pairs = optimizer_pairs(data.optimizers, reference)
    if len(pairs) < len(data.optimizers) * (len(data.optimizers) - 1) // 2:
        notes.append(f"{len(data.optimizers)} optimizers: each is compared with the reference, {reference}, "
                     f"({len(pairs)} pairs, Holm over them) rather than every pair with every other")
    comparisons = []
    infos = {m: metric_info(m, dict(cfg.margins)) for m in metrics}
    passed = set((table or {}).get("passed", []))
    for m in metrics:
        info = infos[m]
        values = {o: _compared(raw[o][m], info) for o in data.optimizers}
        if info.log_ratio:
            low = [(v, o, s) for o in data.optimizers for s, v in values[o].items() if math.isfinite(v) and v <= 0]
            if low:  # a ratio of them means nothing: compared as differences, said so (never clipped)
                v0, o0, s0 = low[0]
                infos[m] = info = replace(info, log_ratio=False, margin=0.0)
                notes.append(f"{m} has values that are not positive ({v0:g} for {o0} seed {s0}): compared as plain "
                             "differences, not as ratios, and never called equivalent")
        values = penalised(values, failed, info)
        rows = [compare_pair(values[a], values[b], info, alpha) for a, b in pairs]
        for (a, b), r in zip(pairs, rows, strict=True):
            r["both_failed"] = bool(r["seeds"]) and all(s in failed[a] and s in failed[b] for s in r["seeds"])
        adjusted = holm([r["p_raw"] for r in rows])
        m_base = m.partition(".")[0]
        for (a, b), r, p in zip(pairs, rows, adjusted, strict=True):
            r["p_holm"] = p
            lab = label(r, info, alpha, len(pairs))
            r.pop("both_failed")
            comparisons.append(Comparison(a=a, b=b, metric=m, label=lab,
                                          confirmatory=m == primary_key and validated, log_ratio=info.log_ratio,
                                          validated=m_base in LOSSES or m_base in passed, **r))
    ttt, trained, budget = {}, [], {}
    if primary_key:
        info = infos[primary_key]
        ttt = time_to_target(data, series, primary_key, info, failed, cfg, reference, alpha, pairs)
        trained = over_training(data, series, primary_key, info, alpha, pairs)
        budget = budget_adequacy(data, series, primary_key, [c for c in comparisons if c.metric == primary_key],
                                 trained, reference, failed, alpha)
    config = {"seeds": data.seeds, "metrics": {m: {"direction": i.goal or "none", "log_ratio": i.log_ratio,
                                                   "margin": i.margin, "ideal": i.ideal} for m, i in infos.items()},
              "primary": primary_key, "reference": reference, "alpha": alpha,
              "correction": "holm (within each metric, over the optimizer pairs)",
              "estimate": "median of the per-seed differences",
              "interval": f"{100 * (1 - alpha):g}% interval inverting the exact sign test (order statistics of the "
                          "per-seed differences): it excludes 0 exactly when p < alpha",
              "test": "exact two-sided sign test on the per-seed differences; tied seeds (relative 1e-9) counted "
                      "against significance",
              "equivalence": "two one-sided sign tests against +- the margin, at alpha, after the underpowered check",
              "p_improvement": "share of seeds A wins (ties 1/2), Wilson score interval",
              "target_rule": ttt.get("rule", ""), "budget_rule": budget.get("rule", ""),
              "failed_rule": "diverged, D wins outright to the end (D's mean loss < 0.05 over the last 20%), final "
              f"coverage <= {COVERAGE_FLOOR} where another optimizer covers >= {COVERAGE_REACHED} at the same seed, "
              f"diversity < {COLLAPSE_RATIO}, or did not learn (final primary no better than at iteration 0): worst "
              "on every metric with a direction"}
    initial = {}
    if primary_key:
        initial = {o: {s: float(series[(o, s, base)][1][0]) if (o, s, base) in series else math.nan for s in data.seeds}
                   for o in data.optimizers}
    noise = None
    if primary_key:
        value = dig(data.manifest, f"eval.noise.{base}", (int, float))
        noise = float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None
    v = Verdict(data.experiment, data.run_dir.name, data.optimizers, data.seeds, primary_key, config,
                hl, raw, comparisons, ttt, divergence(data, pairs), trained, [], notes, initial, noise,
                {"metric": base, "passed": validated, "why": "" if validated else (_why_failed(table, base) if base else ""),
                 "passed_metrics": sorted(passed)},
                budget)
    v.sentences = sentences(v, infos, alpha, len(pairs))
    return v


def _order(metric: str) -> tuple:
    base, _, kind = metric.partition(".")
    names = [*INFO, *LOSSES]
    return (base in LOSSES, names.index(base) if base in names else 99, kind != "final")


# ------------------------------------------------------------------ in words


def fmt_effect(value: float, log_ratio: bool, digits: int = 3) -> str:
    if value == math.inf:
        return "+∞%" if log_ratio else "+∞"
    if value == -math.inf:
        return "−100%" if log_ratio else "−∞"
    if not math.isfinite(value):
        return "–"
    if not log_ratio:
        return f"{value:+.{digits}g}"
    if value > 20:  # more than e^20 times: a percentage of hundreds of digits says nothing more
        return f"×{math.exp(min(value, 700)):.3g}"
    return f"{100 * math.expm1(value):+.0f}%"


def _effect(c: Comparison, flip: bool = False) -> str:
    est, (low, high) = c.estimate, c.ci
    if flip:
        est, low, high = -est, -high, -low
    return f"median {fmt_effect(est, c.log_ratio)} [{fmt_effect(low, c.log_ratio)}, {fmt_effect(high, c.log_ratio)}]"


def sentences(v: Verdict, infos: dict, alpha: float, pairs: int) -> list[str]:
    out = list(v.notes)
    n = len(v.seeds)
    for opt in v.optimizers:
        bad = {s: r for s, r in v.health[opt].items() if r}
        if bad:
            kinds = dict.fromkeys(reason for r in bad.values() for reason in r)
            shown = [k for k in kinds if not k.startswith(("coverage", "diverged", "diversity", "did not learn", "failed"))]
            for prefix in ("failed", "diverged", "coverage", "diversity", "did not learn"):
                same = [k for k in kinds if k.startswith(prefix)]
                if same:
                    shown.append(same[0] if len(same) == 1 else f"{same[0]} (and {len(same) - 1} more)")
            out.append(f"{opt} failed in {len(bad)} of {n} seeds: {', '.join(shown)}; it counts as the worst there")
    if not v.primary:
        return out
    info = infos[v.primary]
    tag = "" if v.validation.get("passed") else "exploratory: "
    provisional = "provisional: " if v.budget.get("provisional") else ""
    underpowered = [c for c in v.primary_comparisons() if c.label == "underpowered"]
    for c in v.primary_comparisons():
        m = f"(sign test, Holm, {pairs} pair{'s' if pairs > 1 else ''})"
        head = f"{tag}{provisional if c.label in ('better', 'worse') else ''}"
        if c.label in ("better", "worse"):
            win, lose, flip = (c.a, c.b, False) if c.label == "better" else (c.b, c.a, True)
            wins = c.wins if c.label == "better" else len(c.seeds) - c.wins - c.ties
            out.append(f"{head}{win} beats {lose} on {info.title} in {wins} of {len(c.seeds)} seeds: {_effect(c, flip)}, "
                       f"p = {c.p_holm:.3g} {m}")
        elif c.label == "equivalent":
            margin = f"{100 * math.expm1(info.margin):.0f}%" if info.log_ratio else f"{info.margin:g}"
            out.append(f"{head}{c.a} and {c.b} are equivalent on {info.title}: {_effect(c)}, within ±{margin} "
                       f"(two one-sided sign tests, p = {c.p_equivalence:.3g})")
        elif c.label == "both failed":
            out.append(f"{head}{c.a} and {c.b} both failed on every seed: nothing to compare on {info.title}")
        elif c.label == "identical":
            out.append(f"{head}{c.a} and {c.b} are identical on {info.title} in every seed")
        elif c.label == "inconclusive":
            lead, wins, flip = ((c.a, c.wins, False) if 2 * c.wins >= len(c.seeds) - c.ties
                                else (c.b, len(c.seeds) - c.wins - c.ties, True))
            out.append(f"{head}{c.a} vs {c.b} on {info.title}: inconclusive; {lead} is ahead in {wins} of {len(c.seeds)} "
                       f"seeds ({_effect(c, flip)}) but p = {c.p_holm:.3g} {m} is not below {alpha:g}")
        else:
            out.append(f"{head}{c.a} vs {c.b} on {info.title}: {c.label} ({_effect(c)}, p = {c.p_holm:.3g} {m})")
    if underpowered:
        k = seeds_needed(pairs, alpha)
        out.append(f"underpowered: {n} seed{'s' if n > 1 else ''} cannot reach p < {alpha:g} with {pairs} pair"
                   f"{'s' if pairs > 1 else ''} (sign test, Holm); run --seeds {','.join(map(str, range(k)))} "
                   f"or more for a decisive verdict ({seeds_needed(pairs, alpha, 1)} to stay decisive with one "
                   "seed reversed)")
    if v.budget.get("provisional"):
        out.append(f"provisional: {'; '.join(v.budget['reasons'])}: the answer could still change; try "
                   f"--steps {v.budget['suggest_steps']}")
    t = v.time_to_target
    if t and t.get("target") is not None:
        parts = [f"{o} {s['reached']}/{s['of']}" + (f", median {s['median_iterations']:.0f} iterations"
                                                   if math.isfinite(s["median_iterations"]) else "")
                 for o, s in t["optimizers"].items()]
        op = "≤" if info.goal == "min" and info.ideal is None else "≥" if info.ideal is None else "as close as"
        out.append(f"time to target ({info.title} {op} {t['target']:.4g}: {t['rule']}): " + "; ".join(parts))
    elif t:
        out.append(f"time to target: {t['rule']}")
    return out


def config_of(manifest: dict) -> CompareConfig:
    """The [compare] table a run was made with (defaults for runs made before it existed, or with a table
    that does not check: a run folder may come from anywhere)."""
    try:
        cfg = build(CompareConfig, dig(manifest, "config.compare", dict, {}), "compare")
        check_compare(cfg)
        check_metric_names(cfg, comparable_metrics())
        return cfg
    except BenchError as e:
        warn(f"the run's [compare] table is unusable ({e}); using the defaults")
        return CompareConfig()
