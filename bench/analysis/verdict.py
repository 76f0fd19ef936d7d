"""Which optimizer is better, by how much, how sure, and how fast: the paired verdict of a run.

bench's runs are paired: seed s fixes the initial weights, every batch and every latent draw for every
optimizer, so for optimizers A and B the per-seed difference d_s = score(A, s) - score(B, s) carries the
comparison (a log-ratio for positive metrics such as SWD and FD, a plain difference for KID, coverage and
the losses). On it:

- the estimate is the mean of d_s (a log-ratio shown as a percentage), with a percentile bootstrap
  interval over seeds: seeds are resampled, both optimizers' scores of a seed stay together;
- p is the exact sign-flip test (all 2^n sign patterns of d_s; Monte Carlo beyond 16 seeds),
  Holm-adjusted over the optimizer pairs of each metric; the primary metric's pairs are the
  confirmatory family the verdict's sentences use, every other metric is exploratory;
- the paired probability of improvement is the share of seeds in which A beats B (ties count 1/2);
- the label: better / worse (Holm p < alpha and the interval excludes 0), equivalent (the interval lies
  inside +- the metric's margin; all-zero differences too), underpowered (no outcome could reach p < alpha
  with this many seeds and pairs: the smallest two-sided p is 2 / 2^n), else inconclusive.

A run flagged as failed (diverged, D wins outright, collapse: coverage or diversity near 0) counts as the
worst on every metric for its seed, whatever its numbers, and the verdict says so in words.

Against rliable and AlgoPerf: rliable's probability of improvement is Mann-Whitney U / (n_x n_y) over
unpaired runs, with X and Y resampled independently; here it is paired by seed. AlgoPerf's time to target is
the first evaluation that reaches the target, a miss is infinite, and ratios of times average geometrically
with infinity replaced by the budget + 1; the same here, per seed and paired, with a bootstrap interval
(AlgoPerf reports none, and no test).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from itertools import combinations

import numpy as np
from scipy import stats as sps

from bench.analysis.stats import bootstrap, final_mean, holm, seeds_needed, sign_flip_p, smallest_p
from bench.analysis.summary import COLLAPSE_RATIO, d_wins_at_end, summarize_run
from bench.core.config import CompareConfig, check_compare
from bench.core.errors import BenchError
from bench.core.metric_table import LOSS_MARGIN, LOSS_TITLES, LOSSES, PRIMARY, QUALITY, metric_key
from bench.core.schema import build
from bench.store.files import warn
from bench.store.load import RunData, dig

FINAL_EVALS = 3
# Up to this many optimizers every pair is compared; beyond it (many runs compared together) each optimizer is
# compared with the reference only (k - 1 pairs, not k (k - 1) / 2): time, memory and output grow linearly.
ALL_PAIRS_MAX = 8  # a metric's final value: the mean of its last evaluations
COVERAGE_FLOOR = 0.02  # a run whose final coverage is this low covers (almost) no real image ...
COVERAGE_REACHED = 0.10  # ... has failed when another optimizer covers this much at the same seed (early in
# training every optimizer covers nothing: that alone is no failure, the metrics compare them)


@dataclass
class MetricInfo:
    name: str  # "swd.final", "swd.best", "g_loss.final"
    title: str  # "SWD", "best SWD", "G loss"
    goal: str  # "min", "max" or "" (a loss: higher or lower, not better or worse)
    log_ratio: bool
    margin: float  # in the units of d (log units for log-ratios)
    digits: int = 3


def metric_info(name: str, margins: dict) -> MetricInfo:
    base, _, kind = metric_key(name).partition(".")
    if base in QUALITY:
        m = QUALITY[base]
        margin = margins.get(name, margins.get(base, m.margin))
        title = m.header.rstrip(" ↓↑")
        return MetricInfo(f"{base}.{kind}", title if kind == "final" else f"best {title}", m.goal, m.positive,
                          math.log1p(margin) if m.positive else margin, m.digits)
    return MetricInfo(f"{base}.final", LOSS_TITLES[base], "", False, margins.get(name, margins.get(base, LOSS_MARGIN)))


@dataclass
class Comparison:
    a: str
    b: str
    metric: str
    seeds: list[int]
    d: list[float]
    estimate: float
    ci: list[float]
    p_raw: float
    p_holm: float
    p_improvement: float
    p_improvement_ci: list[float]
    label: str
    wins: int  # seeds in which A is better (higher, for a loss)
    confirmatory: bool
    log_ratio: bool


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


def health(data: RunData, series: dict) -> dict[str, dict[int, list[str]]]:
    """Why each (optimizer, seed) counts as failed (empty: healthy)."""
    out: dict[str, dict[int, list[str]]] = {}
    final_cov = {(o, s): series[(o, s, "coverage")][1][-1] for o in data.optimizers for s in data.seeds
                 if (o, s, "coverage") in series and len(series[(o, s, "coverage")][1])}
    for opt in data.optimizers:
        out[opt] = {}
        for seed in data.seeds:
            r = summarize_run(data, opt, seed)
            reasons = []
            if r.status == "diverged":
                reasons.append(f"diverged at iteration {r.diverged_at}")
            pair = data.pair(opt, seed)
            if d_wins_at_end(pair[pair.status == "ok"], data.steps_total):
                reasons.append("D wins outright")
            cov = final_cov.get((opt, seed), math.nan)
            others = max([c for (o, s), c in final_cov.items() if s == seed and o != opt] or [0.0])
            if cov <= COVERAGE_FLOOR and others >= COVERAGE_REACHED:
                reasons.append(f"coverage {cov:.2f}")
            if not math.isnan(r.diversity) and r.diversity < COLLAPSE_RATIO:
                reasons.append(f"diversity {r.diversity:.2f} (collapse)")
            out[opt][seed] = reasons
    return out


def scores(data: RunData, series: dict) -> dict[str, dict[str, dict[int, float]]]:
    """Every comparable metric's value per (optimizer, seed), as measured (failures not yet penalised)."""
    out: dict[str, dict[str, dict[int, float]]] = {}
    present = [m for m in QUALITY if any(k[2] == m for k in series)]
    for opt in data.optimizers:
        out[opt] = {}
        for seed in data.seeds:
            for m in present:
                s = series.get((opt, seed, m))
                values = _trained(s)
                final = float(np.mean(values[-FINAL_EVALS:])) if len(values) else math.nan
                finite = values[np.isfinite(values)]
                best = float(finite.min() if QUALITY[m].goal == "min" else finite.max()) if len(finite) else math.nan
                out[opt].setdefault(f"{m}.final", {})[seed] = final
                out[opt].setdefault(f"{m}.best", {})[seed] = best
            df = data.pair(opt, seed)
            for loss in LOSSES:
                out[opt].setdefault(f"{loss}.final", {})[seed] = final_mean(df, loss, data.steps_total) if len(df) else math.nan
    return out


def penalised(values: dict[str, dict[int, float]], failed: dict[str, set[int]], info: MetricInfo) -> dict:
    """A failed run (or one with no finite value) counts as worse than every healthy run on a metric with
    a direction: its value becomes the worst healthy value moved one spread further, or what it measured
    where that is worse still (a penalty never flatters)."""
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


# ------------------------------------------------------------------ the comparisons


def optimizer_pairs(optimizers: list[str], reference: str) -> list[tuple[str, str]]:
    """Every pair of optimizers, or, beyond ALL_PAIRS_MAX of them, each one against the reference."""
    if len(optimizers) <= ALL_PAIRS_MAX:
        return list(combinations(optimizers, 2))
    return [(reference, o) for o in optimizers if o != reference]


def _transform(values: np.ndarray, info: MetricInfo) -> np.ndarray:
    return np.log(np.maximum(values, 1e-300)) if info.log_ratio else values


def compare_pair(a: dict[int, float], b: dict[int, float], info: MetricInfo, cfg: CompareConfig, level: float) -> dict:
    seeds = [s for s in a if s in b and math.isfinite(a[s]) and math.isfinite(b[s])]
    ta = _transform(np.array([a[s] for s in seeds]), info)
    tb = _transform(np.array([b[s] for s in seeds]), info)
    d = ta - tb
    sign = -1.0 if info.goal == "min" else 1.0  # positive: A better (higher, for a loss)
    better = (sign * d > 0).astype(float) + 0.5 * (d == 0)
    if not len(seeds):
        return {"seeds": [], "d": [], "estimate": math.nan, "ci": [math.nan, math.nan], "p_raw": 1.0,
                "p_improvement": math.nan, "p_improvement_ci": [math.nan, math.nan], "wins": 0}
    ci = bootstrap(d, lambda x: x.mean(axis=1), cfg.reps, cfg.seed, level)
    pi_ci = bootstrap(better, lambda x: x.mean(axis=1), cfg.reps, cfg.seed, level)
    return {"seeds": seeds, "d": d.tolist(), "estimate": float(d.mean()), "ci": list(ci), "p_raw": sign_flip_p(d),
            "p_improvement": float(better.mean()), "p_improvement_ci": list(pi_ci), "wins": int((sign * d > 0).sum())}


def label(c: dict, info: MetricInfo, alpha: float, pairs: int) -> str:
    d, (low, high) = np.asarray(c["d"]), c["ci"]
    if not len(d):
        return "inconclusive"
    if np.all(d == 0):
        return "equivalent"
    if c["p_holm"] < alpha and (low > 0 or high < 0):
        up = c["estimate"] > 0
        if not info.goal:
            return "higher" if up else "lower"
        return "better" if up == (info.goal == "max") else "worse"
    if -info.margin <= low and high <= info.margin:
        return "equivalent"
    if min(1.0, pairs * smallest_p(len(d))) >= alpha:
        return "underpowered"
    return "inconclusive"


# ------------------------------------------------------------------ time to target, divergence, over training


def time_to_target(data: RunData, series: dict, primary: str, info: MetricInfo, failed: dict, cfg: CompareConfig,
                   reference: str, level: float, best: dict) -> dict:
    base = primary.partition(".")[0]
    if cfg.target is not None:
        target, rule = float(cfg.target), "declared in [compare]"
    else:
        pool = [best[reference][s] for s in data.seeds if s not in failed[reference] and math.isfinite(best[reference][s])]
        rule = f"median over seeds of {reference}'s best {info.title}"
        if not pool:
            pool = [v for o in data.optimizers for s, v in best[o].items() if s not in failed[o] and math.isfinite(v)]
            rule = f"{reference} failed on every seed, so the median best {info.title} of every healthy run"
        if not pool:
            return {}
        target = float(np.median(pool))
    reach = (lambda v: v <= target) if info.goal == "min" else (lambda v: v >= target)
    budget = data.steps_total
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

    pairs = []
    for a, b in optimizer_pairs(data.optimizers, reference):
        logs = np.log([capped(per[a][s]["iterations"]) / capped(per[b][s]["iterations"]) for s in data.seeds])
        low, high = bootstrap(logs, lambda x: x.mean(axis=1), cfg.reps, cfg.seed, level)
        pairs.append({"a": a, "b": b, "ratio": float(np.exp(logs.mean())), "ci": [float(np.exp(low)), float(np.exp(high))]})
    return {"metric": primary, "target": target, "rule": rule, "budget": budget, "unit": "iterations",
            "per_seed": {o: {str(s): v for s, v in per[o].items()} for o in per}, "optimizers": summary, "pairs": pairs}


def divergence(data: RunData, reference: str) -> dict:
    diverged = {o: {s for s in data.seeds if data.pair_status(o, s) == "diverged"} for o in data.optimizers}
    out = {"fraction": {o: len(diverged[o]) / len(data.seeds) for o in data.optimizers}, "pairs": []}
    for a, b in optimizer_pairs(data.optimizers, reference):
        only_a, only_b = len(diverged[a] - diverged[b]), len(diverged[b] - diverged[a])
        if only_a + only_b:  # exact McNemar: of the seeds where exactly one diverged, is it as often either?
            p = float(sps.binomtest(only_a, only_a + only_b, 0.5).pvalue)
            out["pairs"].append({"a": a, "b": b, "only_a": only_a, "only_b": only_b, "p_mcnemar": p})
    return out


def over_training(data: RunData, series: dict, primary: str, info: MetricInfo, cfg: CompareConfig, level: float,
                  reference: str) -> list:
    """Per pair: the mean paired difference of the primary metric at each evaluation, a bootstrap band, and
    the share of seeds in which each optimizer is ahead."""
    base = primary.partition(".")[0]
    out = []
    sign = -1.0 if info.goal == "min" else 1.0
    for a, b in optimizer_pairs(data.optimizers, reference):
        rows = []
        steps = sorted({int(t) for s in data.seeds if (a, s, base) in series for t in series[(a, s, base)][0]})
        for step in steps:
            d = []
            for s in data.seeds:
                sa, sb = series.get((a, s, base)), series.get((b, s, base))
                if sa is None or sb is None:
                    continue
                va, vb = sa[1][sa[0] == step], sb[1][sb[0] == step]
                if len(va) and len(vb) and np.isfinite(va[0]) and np.isfinite(vb[0]):
                    d.append(float(_transform(va[:1], info)[0] - _transform(vb[:1], info)[0]))
            if not d:
                continue
            d = np.array(d)
            low, high = bootstrap(d, lambda x: x.mean(axis=1), min(cfg.reps, 2000), cfg.seed, level)
            rows.append({"step": step, "mean": float(d.mean()), "ci": [low, high], "a_ahead": float((sign * d > 0).mean()),
                         "b_ahead": float((sign * d < 0).mean()), "seeds": len(d)})
        out.append({"a": a, "b": b, "log_ratio": info.log_ratio, "rows": rows})
    return out


# ------------------------------------------------------------------ the verdict


def choose_primary(requested: str, available: set[str]) -> tuple[str | None, list[str]]:
    """The primary metric: the one asked for, else the table's default, else the first metric that passed
    the sanity suite and was scored, else the first scored one (with a note saying so)."""
    notes = []
    if requested:
        key = metric_key(requested)
        if key not in available:
            raise BenchError(f"primary metric {requested!r} was not scored in this run; scored: "
                             f"{', '.join(sorted(available)) or 'none (--no-eval)'}")
        if not QUALITY.get(key.partition('.')[0], QUALITY[PRIMARY]).sane:
            notes.append(f"primary metric {key} has not passed the metric sanity suite (held-out real < blurred < "
                         "noisy < uniform noise): read its verdict with care")
        return key, notes
    for candidate in [f"{PRIMARY}.final"] + [f"{m}.final" for m, q in QUALITY.items() if q.sane]:
        if candidate in available:
            return candidate, notes
    scored = [f"{m}.final" for m in QUALITY if f"{m}.final" in available]
    if scored:
        notes.append(f"no metric that passed the sanity suite was scored ({PRIMARY} needs images): the primary "
                     f"metric is {scored[0]}; declare [compare] primary to choose another")
        return scored[0], notes
    notes.append("no sample-quality metric was scored (--no-eval): the losses are compared, with no verdict on quality")
    return None, notes


def verdict(data: RunData, cfg: CompareConfig | None = None, primary: str = "", reference: str = "",
            alpha: float | None = None) -> Verdict:
    """The verdict of one finished run folder (bench.store.load.RunData)."""
    cfg = cfg or CompareConfig()
    alpha = cfg.alpha if alpha is None else alpha
    level = 1 - alpha
    if data.state in ("in progress", "interrupted"):
        raise BenchError(f"{data.run_dir}: the run is {data.state}; finish it (bench run --resume) before comparing")
    if len(data.optimizers) < 1:
        raise BenchError(f"{data.run_dir}: no optimizers to compare")
    series = _quality_series(data)
    hl = health(data, series)
    failed = {o: {s for s, r in per.items() if r} for o, per in hl.items()}
    raw = scores(data, series)
    available = {m for o in raw for m in raw[o]}
    quality_keys = {m for m in available if not m.startswith(LOSSES)}
    declared = []
    if not primary and cfg.primary and metric_key(cfg.primary) not in quality_keys:
        # the experiment file's choice, on a run that did not score it (--no-eval): a note, not an error;
        # a primary asked for on the command line must exist
        declared = [f"[compare] primary {cfg.primary} was not scored in this run (--no-eval?): using the default"]
        cfg = replace(cfg, primary="")
    primary_key, notes = choose_primary(primary or cfg.primary, quality_keys)
    notes = declared + notes
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
    for m in metrics:
        info = infos[m]
        if info.log_ratio:
            low = [(v, o, s) for o in data.optimizers for s, v in raw[o][m].items() if math.isfinite(v) and v <= 0]
            if low:  # a ratio of them means nothing: compared as differences, said so (never clipped)
                v0, o0, s0 = low[0]
                infos[m] = info = replace(info, log_ratio=False, margin=0.0)
                notes.append(f"{m} has values that are not positive ({v0:g} for {o0} seed {s0}): compared as plain "
                             "differences, not as ratios, and never called equivalent")
        values = penalised({o: raw[o][m] for o in data.optimizers}, failed, info)
        rows = [compare_pair(values[a], values[b], info, cfg, level) for a, b in pairs]
        adjusted = holm([r["p_raw"] for r in rows])
        for (a, b), r, p in zip(pairs, rows, adjusted, strict=True):
            r["p_holm"] = p
            comparisons.append(Comparison(a=a, b=b, metric=m, label=label(r, info, alpha, len(pairs)),
                                          confirmatory=m == primary_key, log_ratio=info.log_ratio, **r))
    ttt = {}
    trained = {}
    if primary_key:
        info = infos[primary_key]
        best_key = primary_key.partition(".")[0] + ".best"
        ttt = time_to_target(data, series, primary_key, info, failed, cfg, reference, level,
                             {o: raw[o].get(best_key, {}) for o in data.optimizers})
        trained = over_training(data, series, primary_key, info, cfg, level, reference)
    config = {"seeds": data.seeds, "metrics": {m: {"direction": i.goal or "none", "log_ratio": i.log_ratio,
                                                   "margin": i.margin} for m, i in infos.items()},
              "primary": primary_key, "reference": reference, "alpha": alpha, "correction": "holm (within each metric, "
              "over the optimizer pairs)", "interval": f"percentile bootstrap over seeds, {100 * level:g}%",
              "bootstrap": {"reps": cfg.reps, "seed": cfg.seed}, "test": "exact sign-flip on the per-seed differences",
              "target_rule": ttt.get("rule", ""), "failed_rule": "diverged, D wins outright to the end (D's mean loss < 0.05 over the last 20%), final coverage <= "
              f"{COVERAGE_FLOOR} where another optimizer covers >= {COVERAGE_REACHED} at the same seed, or diversity < "
              f"{COLLAPSE_RATIO}: worst on every metric with a direction"}
    initial = {}
    if primary_key:
        base = primary_key.partition(".")[0]
        initial = {o: {s: float(series[(o, s, base)][1][0]) if (o, s, base) in series else math.nan for s in data.seeds}
                   for o in data.optimizers}
    noise = None
    if primary_key:
        value = dig(data.manifest, f"eval.noise.{primary_key.partition('.')[0]}", (int, float))
        noise = float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None
    v = Verdict(data.experiment, data.run_dir.name, data.optimizers, data.seeds, primary_key, config,
                hl, raw, comparisons, ttt, divergence(data, reference), trained, [], notes, initial, noise)
    v.sentences = sentences(v, infos, alpha, len(pairs))
    return v


def _order(metric: str) -> tuple:
    base, _, kind = metric.partition(".")
    names = [*QUALITY, *LOSSES]
    return (base in LOSSES, names.index(base) if base in names else 99, kind != "final")


# ------------------------------------------------------------------ in words


def fmt_effect(value: float, log_ratio: bool, digits: int = 3) -> str:
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
    return f"{fmt_effect(est, c.log_ratio)} [{fmt_effect(low, c.log_ratio)}, {fmt_effect(high, c.log_ratio)}]"


def sentences(v: Verdict, infos: dict, alpha: float, pairs: int) -> list[str]:
    out = list(v.notes)
    n = len(v.seeds)
    for opt in v.optimizers:
        bad = {s: r for s, r in v.health[opt].items() if r}
        if bad:
            kinds = dict.fromkeys(reason for r in bad.values() for reason in r)
            shown = [k for k in kinds if not k.startswith(("coverage", "diverged", "diversity"))]
            for prefix in ("diverged", "coverage", "diversity"):
                same = [k for k in kinds if k.startswith(prefix)]
                if same:
                    shown.append(same[0] if len(same) == 1 else f"{same[0]} (and {len(same) - 1} more)")
            out.append(f"{opt} failed in {len(bad)} of {n} seeds: {', '.join(shown)}; it counts as the worst there")
    if not v.primary:
        return out
    info = infos[v.primary]
    underpowered = [c for c in v.primary_comparisons() if c.label == "underpowered"]
    for c in v.primary_comparisons():
        m = f"(Holm, {pairs} pair{'s' if pairs > 1 else ''})"
        if c.label in ("better", "worse"):
            win, lose, flip = (c.a, c.b, False) if c.label == "better" else (c.b, c.a, True)
            wins = c.wins if c.label == "better" else len(c.seeds) - c.wins - int(np.sum(np.asarray(c.d) == 0))
            out.append(f"{win} beats {lose} on {info.title} in {wins} of {len(c.seeds)} seeds: {_effect(c, flip)}, "
                       f"p = {c.p_holm:.3g} {m}")
        elif c.label == "equivalent":
            margin = f"{100 * math.expm1(info.margin):.0f}%" if info.log_ratio else f"{info.margin:g}"
            out.append(f"{c.a} and {c.b} are equivalent on {info.title}: {_effect(c)}, within ±{margin}")
        elif c.label == "inconclusive":
            ties = int(np.sum(np.asarray(c.d) == 0))
            lead, wins, flip = ((c.a, c.wins, False) if 2 * c.wins >= len(c.seeds) - ties
                                else (c.b, len(c.seeds) - c.wins - ties, True))
            out.append(f"{c.a} vs {c.b} on {info.title}: inconclusive; {lead} is ahead in {wins} of {len(c.seeds)} "
                       f"seeds ({_effect(c, flip)}) but p = {c.p_holm:.3g} {m} is not below {alpha:g}")
        else:
            out.append(f"{c.a} vs {c.b} on {info.title}: {c.label} ({_effect(c)}, p = {c.p_holm:.3g} {m})")
    if underpowered:
        k = seeds_needed(pairs, alpha)
        out.append(f"underpowered: {n} seed{'s' if n > 1 else ''} cannot reach p < {alpha:g} with {pairs} pair"
                   f"{'s' if pairs > 1 else ''} (Holm); run --seeds {','.join(map(str, range(k)))} "
                   f"or more for a decisive verdict")
    t = v.time_to_target
    if t:
        parts = [f"{o} {s['reached']}/{s['of']}" + (f", median {s['median_iterations']:.0f} iterations"
                                                   if math.isfinite(s["median_iterations"]) else "")
                 for o, s in t["optimizers"].items()]
        op = "≤" if info.goal == "min" else "≥"
        out.append(f"time to target ({info.title} {op} {t['target']:.4g}, the {t['rule']}): " + "; ".join(parts))
    return out


def config_of(manifest: dict) -> CompareConfig:
    """The [compare] table a run was made with (defaults for runs made before it existed, or with a table
    that does not check: a run folder may come from anywhere)."""
    try:
        cfg = build(CompareConfig, dig(manifest, "config.compare", dict, {}), "compare")
        check_compare(cfg)
        return cfg
    except BenchError as e:
        warn(f"the run's [compare] table is unusable ({e}); using the defaults")
        return CompareConfig()
