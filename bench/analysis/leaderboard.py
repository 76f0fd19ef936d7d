"""Across experiments: which optimizer does better over a set of workloads (rliable's and AlgoPerf's views).

Built from the verdicts of runs of two or more experiments that share optimizer labels (each verdict as
saved in verdict.json, so a leaderboard needs no run folder):

- the AlgoPerf performance profile over time to target: per experiment, an optimizer's time is the median
  over seeds of the iterations it needs to reach that experiment's target (infinite when most seeds miss);
  r = t / the fastest optimizer's t, and r > r_max counts as a miss; rho(tau) is the share of experiments
  with r <= tau, and the benchmark score is the area under rho on [1, r_max] over (r_max - 1): 1 = fastest
  everywhere, 0 = never within r_max of the fastest. Computed exactly (rho is a step function);
- the interquartile mean of normalised final scores (rliable's aggregate): a run's primary metric scaled so
  that 0 is uniform noise scored against its experiment's real images (rliable's random baseline; runs made
  before bench scored noise use their untrained generator instead) and 1 the metric's ideal value (0 for a
  distance); a failed run scores at most 0. Its interval is rliable's stratified bootstrap: seeds resampled within each experiment;
- the probability of improvement over experiments: per experiment, the share of seeds in which A beats B
  (paired by seed, unlike rliable's Mann-Whitney over unpaired runs), averaged over experiments, with the
  same stratified bootstrap.
"""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
from scipy.stats import trim_mean

from bench.core.metric_table import QUALITY

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


def normalised(v: dict) -> dict[str, dict[int, float]]:
    """0 = uniform noise (else the untrained generator, the first evaluation), 1 = the metric's ideal; a
    failed run <= 0."""
    base = v["primary"].partition(".")[0]
    ideal = QUALITY[base].ideal
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
    usable = sorted((v for v in verdicts if v.get("primary") and v.get("time_to_target")), key=lambda v: v["experiment"])
    labels = [o for o in usable[0]["optimizers"] if all(o in v["optimizers"] for v in usable)] if usable else []
    notes = [f"{v['experiment']}: no primary metric scored (no time to target): left out" for v in verdicts
             if v not in usable]
    if len(usable) < 2 or len(labels) < 2:
        return {"experiments": [v["experiment"] for v in usable], "optimizers": labels, "notes": notes + [
            "a leaderboard needs two or more experiments sharing two or more optimizers"]}
    experiments = [v["experiment"] for v in usable]
    times, ratios = {}, {}
    for v in usable:
        t = {o: float(np.median([v["time_to_target"]["per_seed"][o][str(s)]["iterations"]
                                 if v["time_to_target"]["per_seed"][o][str(s)]["iterations"] is not None else math.inf
                                 for s in v["seeds"]])) for o in labels}
        fastest = min(max(x, 1.0) for x in t.values())
        times[v["experiment"]] = t
        ratios[v["experiment"]] = {o: (max(x, 1.0) / fastest if math.isfinite(x) else math.inf) for o, x in t.items()}
    taus = np.linspace(1.0, r_max, 61)
    per_opt = {o: [ratios[e][o] for e in experiments] for o in labels}
    profile = {o: {"tau": taus.tolist(), "rho": rho(r, taus).tolist(), "score": profile_score(r, r_max)}
               for o, r in per_opt.items()}

    scores = {v["experiment"]: normalised(v) for v in usable}
    seeds = {e: sorted(set.intersection(*(set(scores[e][o]) for o in labels))) for e in experiments}
    rng = np.random.default_rng(seed)
    draws = {e: rng.integers(0, len(seeds[e]), size=(reps, len(seeds[e]))) for e in experiments}  # stratified

    def matrix(e: str, o: str) -> np.ndarray:
        return np.array([scores[e][o][s] for s in seeds[e]])

    iqm = {}
    for o in labels:
        pooled = np.concatenate([matrix(e, o) for e in experiments])
        boot = np.concatenate([matrix(e, o)[draws[e]] for e in experiments], axis=1)
        low, high = np.percentile(trim_mean(boot, 0.25, axis=1), [2.5, 97.5])
        iqm[o] = {"value": float(trim_mean(pooled, 0.25)), "ci": [float(low), float(high)]}

    improvement = []
    for a, b in combinations(labels, 2):
        better = {e: (matrix(e, a) > matrix(e, b)) + 0.5 * (matrix(e, a) == matrix(e, b)) for e in experiments}
        value = float(np.mean([better[e].mean() for e in experiments]))
        boot = np.mean([better[e][draws[e]].mean(axis=1) for e in experiments], axis=0)
        low, high = np.percentile(boot, [2.5, 97.5])
        improvement.append({"a": a, "b": b, "value": value, "ci": [float(low), float(high)]})
    return {"experiments": experiments, "optimizers": labels, "r_max": r_max, "times": times, "ratios": ratios,
            "profile": profile, "iqm": iqm, "p_improvement": improvement, "normalised": scores,
            "config": {"reps": reps, "seed": seed, "time": "median over seeds of the iterations to each experiment's "
                       "target (AlgoPerf: median over studies)", "normalisation": "0 = the primary metric of uniform noise (where a run "
                       "has none: its untrained generator), 1 = its ideal value"},
            "zero": {v["experiment"]: "uniform noise" if v.get("noise") is not None else "untrained generator"
                     for v in usable},
            "notes": notes}
