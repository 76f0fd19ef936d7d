"""Across experiments: which optimizer does better over a set of workloads (rliable's and AlgoPerf's views).

Built from the verdicts of runs of two or more experiments (each verdict as saved in verdict.json, so a
leaderboard needs no run folder). Every optimizer that ran on any of them is listed; one that did not run
on an experiment is marked there, never silently dropped:

- the AlgoPerf performance profile over time to target: per experiment, an optimizer's time is the median
  over seeds of the iterations it needs to reach that experiment's target (infinite when most seeds miss);
  r = t / the fastest optimizer's t, and r > r_max counts as a miss, as does an experiment it did not run
  on; rho(tau) is the share of experiments with r <= tau, and the benchmark score is the area under rho on
  [1, r_max] over (r_max - 1): 1 = fastest everywhere, 0 = never within r_max of the fastest. Computed
  exactly (rho is a step function);
- the interquartile mean of normalised final scores (rliable's aggregate) over the runs an optimizer has: a
  run's primary metric scaled so that 0 is uniform noise scored against its experiment's real images
  (rliable's random baseline; runs made before bench scored noise use their untrained generator instead)
  and 1 the metric's ideal value (0 for a distance); a failed run scores at most 0. Its interval is
  rliable's stratified bootstrap: seeds resampled within each experiment;
- the probability of improvement: over every seed of every experiment both optimizers ran on, the share
  in which A's normalised score beats B's (paired by seed, ties count 1/2; unlike rliable's Mann-Whitney
  over unpaired runs), with a Wilson score interval for that proportion.
"""

from __future__ import annotations

import math
import numbers
from itertools import combinations

import numpy as np
from scipy.stats import trim_mean

from bench.analysis.stats import seeds_needed, wilson
from bench.quality.scores import INFO

R_MAX = 4.0


def _per_seed(d: dict) -> dict[int, float]:
    return {int(s): (math.nan if v is None else float(v)) for s, v in d.items()}


def profile_score(ratios: list[float], r_max: float = R_MAX) -> float:
    """Area under rho on [1, r_max] over (r_max - 1): each experiment adds (r_max - r) for 1 <= r <= r_max."""
    if not ratios:
        return math.nan
    return float(sum(r_max - r for r in ratios if r <= r_max) / (len(ratios) * (r_max - 1)))


def rho(ratios: list[float], taus: np.ndarray) -> np.ndarray:
    return np.array([np.mean([r <= t for r in ratios]) for t in taus]) if ratios else np.full(len(taus), np.nan)


def _number_map(d, keys: list[str]) -> bool:
    return isinstance(d, dict) and all(
        k in d and (d[k] is None or (isinstance(d[k], numbers.Real) and not isinstance(d[k], bool))) for k in keys)


def verdict_problem(v) -> str | None:
    """What makes a saved verdict (verdict.json: it may come from anywhere) unusable here; None when usable."""
    if not isinstance(v, dict):
        return "not an object"
    if not isinstance(v.get("experiment"), str) or not v["experiment"]:
        return "no experiment name"
    opts, seeds = v.get("optimizers"), v.get("seeds")
    if not isinstance(opts, list) or not opts or not all(isinstance(o, str) for o in opts) or len(set(opts)) != len(opts):
        return "no list of optimizers"
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool)
                                                           for s in seeds) or len(set(seeds)) != len(seeds):
        return "no list of seeds"
    primary = v.get("primary")
    if primary is None:
        return None
    if not isinstance(primary, str) or primary.partition(".")[0] not in INFO:
        return f"unknown primary metric {primary!r}"
    keys = [str(s) for s in seeds]
    for o in opts:
        if not _number_map((v.get("scores") or {}).get(o, {}).get(primary) if isinstance(v.get("scores"), dict)
                           and isinstance(v["scores"].get(o), dict) else None, keys):
            return f"no {primary} score per seed for {o}"
        health = v.get("health")
        if not isinstance(health, dict) or not isinstance(health.get(o), dict) or not all(
                isinstance(health[o].get(k, []), list) for k in keys):
            return f"no health record for {o}"
        if v.get("noise") is None and not _number_map((v.get("initial") or {}).get(o) if isinstance(
                v.get("initial"), dict) else None, keys):
            return f"neither a noise score nor an untrained score for {o}"
    if v.get("noise") is not None and not (isinstance(v["noise"], numbers.Real) and not isinstance(v["noise"], bool)):
        return "a noise score that is not a number"
    ttt = v.get("time_to_target")
    if not isinstance(ttt, dict):
        return "no time to target"
    if ttt and ttt.get("target") is not None:
        per = ttt.get("per_seed")
        if not isinstance(per, dict) or not all(isinstance(per.get(o), dict) and all(
                isinstance(per[o].get(k), dict) and _number_map(per[o][k], ["iterations"]) for k in keys) for o in opts):
            return "no time to target per seed"
    return None


def enough_seeds(v: dict) -> bool:
    """Whether a (usable) verdict had seeds enough for its primary comparisons to reach significance: a
    leaderboard built on underpowered runs would rank noise."""
    pairs = [c for c in v.get("comparisons") or [] if isinstance(c, dict) and c.get("confirmatory")]
    alpha = v.get("config", {}).get("alpha", 0.05) if isinstance(v.get("config"), dict) else 0.05
    if not pairs or not isinstance(alpha, numbers.Real) or not 0 < alpha < 1:
        return False
    return len(v["seeds"]) >= seeds_needed(len(pairs), float(alpha))


def normalised(v: dict) -> dict[str, dict[int, float]]:
    """0 = uniform noise (else the untrained generator, the first evaluation), 1 = the metric's ideal; a
    failed run <= 0."""
    base = v["primary"].partition(".")[0]
    ideal = INFO[base].ideal
    out = {}
    for opt in v["optimizers"]:
        final = _per_seed(v["scores"][opt][v["primary"]])
        start = ({s: float(v["noise"]) for s in final} if v.get("noise") is not None
                 else _per_seed(v["initial"][opt]))
        out[opt] = {}
        for seed, value in final.items():
            span = start.get(seed, math.nan) - ideal
            score = (start[seed] - value) / span if span and math.isfinite(span) else math.nan
            if v["health"][opt].get(str(seed)) or not math.isfinite(score):
                score = min(score, 0.0) if math.isfinite(score) else 0.0
            out[opt][seed] = score
    return out


def leaderboard(verdicts: list[dict], reps: int = 10_000, seed: int = 0, r_max: float = R_MAX) -> dict:
    # experiments in name order: the same leaderboard whichever order the runs were given or reported in
    usable = sorted((v for v in verdicts if v.get("primary") and (v.get("time_to_target") or {}).get("target") is not None),
                    key=lambda v: v["experiment"])
    notes = [f"{v['experiment']}: no primary metric or no time-to-target target: left out" for v in verdicts
             if v not in usable]
    labels = list(dict.fromkeys(o for v in usable for o in v["optimizers"]))
    experiments = [v["experiment"] for v in usable]
    ran = {e: set(v["optimizers"]) for e, v in zip(experiments, usable, strict=True)}
    shared = any(len(ran[e] & {a, b}) == 2 for a, b in combinations(labels, 2) for e in experiments)
    if len(usable) < 2 or len(labels) < 2 or not shared:
        return {"experiments": experiments, "optimizers": labels, "notes": notes + [
            "a leaderboard needs two or more experiments and two or more optimizers that ran side by side"]}
    missing = {o: [e for e in experiments if o not in ran[e]] for o in labels}
    for o, where in missing.items():
        if where:
            notes.append(f"{o} did not run on {', '.join(where)}: a miss there in the performance profile; its "
                         f"IQM covers {len(experiments) - len(where)} of {len(experiments)} experiments")
    times, ratios = {}, {}
    for v in usable:
        e = v["experiment"]
        per = v["time_to_target"]["per_seed"]
        t = {o: float(np.median([math.inf if per[o][str(s)]["iterations"] is None else per[o][str(s)]["iterations"]
                                 for s in v["seeds"]])) for o in v["optimizers"]}
        fastest = min(max(x, 1.0) for x in t.values())
        times[e] = {o: t.get(o) for o in labels}
        ratios[e] = {o: (max(t[o], 1.0) / fastest if math.isfinite(t[o]) else math.inf) if o in t else None
                     for o in labels}
    taus = np.linspace(1.0, r_max, 61)
    per_opt = {o: [ratios[e][o] if ratios[e][o] is not None else math.inf for e in experiments] for o in labels}
    profile = {o: {"tau": taus.tolist(), "rho": rho(r, taus).tolist(), "score": profile_score(r, r_max)}
               for o, r in per_opt.items()}

    scores = {v["experiment"]: normalised(v) for v in usable}
    rng = np.random.default_rng(seed)
    seeds = {e: sorted(set.intersection(*(set(scores[e][o]) for o in ran[e]))) for e in experiments}
    draws = {e: rng.integers(0, len(seeds[e]), size=(reps, len(seeds[e]))) for e in experiments}  # stratified

    def matrix(e: str, o: str) -> np.ndarray:
        return np.array([scores[e][o][s] for s in seeds[e]])

    iqm = {}
    for o in labels:
        mine = [e for e in experiments if o in ran[e]]
        pooled = np.concatenate([matrix(e, o) for e in mine])
        boot = np.concatenate([matrix(e, o)[draws[e]] for e in mine], axis=1)
        low, high = np.percentile(trim_mean(boot, 0.25, axis=1), [2.5, 97.5])
        iqm[o] = {"value": float(trim_mean(pooled, 0.25)), "ci": [float(low), float(high)],
                  "experiments": len(mine)}

    improvement = []
    for a, b in combinations(labels, 2):
        both = [e for e in experiments if {a, b} <= ran[e]]
        if not both:
            continue
        better = np.concatenate([(matrix(e, a) > matrix(e, b)) + 0.5 * (matrix(e, a) == matrix(e, b)) for e in both])
        low, high = wilson(float(better.sum()), len(better))
        improvement.append({"a": a, "b": b, "value": float(better.mean()), "ci": [low, high], "seeds": len(better),
                            "experiments": both})
    return {"experiments": experiments, "optimizers": labels, "r_max": r_max, "times": times, "ratios": ratios,
            "missing": missing, "profile": profile, "iqm": iqm, "p_improvement": improvement, "normalised": scores,
            "config": {"reps": reps, "seed": seed, "time": "median over seeds of the iterations to each experiment's "
                       "target (AlgoPerf: median over studies); an experiment an optimizer did not run on is a miss",
                       "normalisation": "0 = the primary metric of uniform noise (where a run "
                       "has none: its untrained generator), 1 = its ideal value",
                       "p_improvement": "share of paired seeds (every experiment both ran on) in which A's normalised "
                       "score beats B's, ties 1/2; Wilson score interval"},
            "zero": {v["experiment"]: "uniform noise" if v.get("noise") is not None else "untrained generator"
                     for v in usable},
            "notes": notes}
