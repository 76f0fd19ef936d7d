"""The validation suite: does each metric rank known image sets correctly on the data it will judge?

A metric may rank optimizers only after it ranks, on the same real images, sets whose order is known:

- the six disturbances of the FID paper (Heusel et al. 2017, appendix) applied to held-out real images, each
  at four increasing levels: Gaussian noise, Gaussian blur, implanted black rectangles, swirl, salt-and-pepper
  noise, and real images mixed with another data set's (the LFW non-face crops scikit-image ships);
- the failure states GANs really show: the experiment's own untrained generator (its samples of the fixed
  evaluation latents, three seeds), saturated salt-and-pepper samples (every pixel at -1 or 1, as often
  white as the mean image is bright there), contrast pulled towards the mean image (to a quarter), the mean
  image repeated, one real image repeated, and a quarter of the held-out images only (dropped modes);
- held-out real images (as many as the metric's real reference holds, none of them in it): the reference.

Every set has as many images as the held-out set. With b(X) a metric's badness on set X (its value where
lower is better, minus it where higher is, the distance from its ideal value for diversity-like metrics),
the **passing rule** is, exactly:

1. *held-out best*: b(held-out) < b(X) for every other set X of the suite;
2. *<disturbance> rises*: for each disturbance, b(held-out) < b(level 1) < b(level 2) < b(level 3) < b(level 4);
3. *<failure> worse*: for each failure state F, b(F) > b(held-out) + s, where s, the seed-to-seed spread, is
   the range of b(held-out) over three seeds of the split of the real images into the metric's reference
   and the held-out set (the metric's own noise where real images are; the untrained generator's spread
   is measured far from there, where distances are large and vary in proportion);
4. *untrained worse than mild*: b(untrained, every seed) > b(level 1) of every disturbance.

A metric passes when every check passes. The table (metric x check, with the values) goes into the
manifest, the report and `bench validate`; a run's verdict rests only on a metric that passed.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy import ndimage

VERSION = 2  # of the suite itself: its sets, levels and rule (part of the cache key)
DISTURBANCES = {  # name -> four levels, mildest first
    "noise": (0.15, 0.3, 0.45, 0.6),  # Gaussian noise, standard deviation on the [-1, 1] scale
    "blur": (1.0, 1.5, 2.0, 3.0),  # Gaussian blur, sigma in pixels of a 25-pixel image (scaled with the size,
    # never below half: a blur of a third of a pixel is no blur)
    "rectangles": (1, 2, 4, 8),  # black squares of a quarter of the side, at random places
    "swirl": (1.0, 2.0, 4.0, 8.0),  # swirl strength, radius the image's side (scikit-image)
    "salt_pepper": (0.03, 0.06, 0.12, 0.25),  # share of pixels set to -1 or 1
    "mixed": (0.1, 0.25, 0.5, 0.75),  # share of images replaced by another data set's
}
FAILURES = ("saturated", "low_contrast", "mean_image", "one_image", "quarter")
UNTRAINED_SEEDS = (0, 1, 2)
SPLIT_SEEDS = 3  # seeds of the real/held-out split whose held-out scores give the seed-to-seed spread
RULE = ("passes when: held-out real scores best of every set; each disturbance scores worse at every level, its "
        "mildest worse than held-out; every failure state scores worse than held-out by more than the seed-to-seed "
        "spread (of the held-out score over three splits of the real images); the untrained generator (every seed) "
        "scores worse than the mildest level of every disturbance")


def _swirl(images: np.ndarray, strength: float) -> np.ndarray:
    from skimage.transform import swirl

    side = max(images.shape[1:3])
    return np.stack([swirl(x, strength=strength, radius=side, mode="reflect", preserve_range=True)
                     for x in images]).astype(np.float32)


def disturbed(held: np.ndarray, other: np.ndarray, seed: int) -> dict[str, list[np.ndarray]]:
    """Each disturbance of the held-out images at its four levels (random parts from ``seed``)."""
    rng = np.random.default_rng([seed, 0xD1])
    n, h, w, _ = held.shape
    scale = max(min(h, w) / 25, 0.5)
    out: dict[str, list[np.ndarray]] = {k: [] for k in DISTURBANCES}
    for sigma in DISTURBANCES["noise"]:
        out["noise"].append(np.clip(held + rng.normal(0, sigma, held.shape), -1, 1).astype(np.float32))
    for sigma in DISTURBANCES["blur"]:
        out["blur"].append(ndimage.gaussian_filter(held, (0, sigma * scale, sigma * scale, 0), mode="reflect"))
    size = max(2, min(h, w) // 4)
    for count in DISTURBANCES["rectangles"]:
        x = held.copy()
        for i in range(n):
            for _ in range(count):
                y0, x0 = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
                x[i, y0: y0 + size, x0: x0 + size] = -1.0
        out["rectangles"].append(x)
    for strength in DISTURBANCES["swirl"]:
        out["swirl"].append(_swirl(held, strength))
    for share in DISTURBANCES["salt_pepper"]:
        x = held.copy()
        hit = rng.random(held.shape[:3]) < share
        x[hit] = rng.choice(np.array([-1.0, 1.0], np.float32), size=(int(hit.sum()), 1))
        out["salt_pepper"].append(x)
    for share in DISTURBANCES["mixed"]:
        x = held.copy()
        k = int(round(share * n))
        x[rng.choice(n, k, replace=False)] = other[rng.choice(len(other), k, replace=len(other) < k)]
        out["mixed"].append(x)
    return out


def failure_states(held: np.ndarray, real: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([seed, 0xFA])
    n = len(held)
    mean = real.mean(axis=0, keepdims=True)
    quarter = max(1, n // 4)
    return {
        "saturated": np.where(rng.random(held.shape) < (mean + 1) / 2, 1.0, -1.0).astype(np.float32),
        "low_contrast": (mean + 0.25 * (held - mean)).astype(np.float32),
        "mean_image": np.repeat(mean, n, axis=0).astype(np.float32),
        "one_image": np.repeat(held[:1], n, axis=0),
        "quarter": np.concatenate([held[:quarter]] * (n // quarter + 1))[:n],
    }


def suite_sets(real: np.ndarray, held: np.ndarray, other: np.ndarray, untrained: list[np.ndarray],
               seed: int) -> dict[str, np.ndarray]:
    """name -> images: held-out, each disturbance level (``noise1`` .. ``noise4``), each failure state,
    ``untrained0`` ..."""
    n = len(held)
    sets = {"held_out": held}
    for kind, levels in disturbed(held, other, seed).items():
        sets.update({f"{kind}{i + 1}": x for i, x in enumerate(levels)})
    sets.update(failure_states(held, real, seed))
    for i, u in enumerate(untrained):
        sets[f"untrained{i}"] = np.asarray(u[:n], np.float32)
    return sets


def judge(scores: dict[str, dict[str, float]], badness: Callable[[str, float], float], metric: str,
          held_out: list[dict[str, float]]) -> dict:
    """The checks of the passing rule for one metric, from every set's scores and the held-out scores of
    the other splits (``held_out``)."""
    b = {name: badness(metric, s.get(metric, math.nan)) for name, s in scores.items()}
    held = b["held_out"]
    untrained = [v for k, v in b.items() if k.startswith("untrained")]
    splits = [held] + [badness(metric, s.get(metric, math.nan)) for s in held_out]
    spread = (max(splits) - min(splits)) if all(math.isfinite(x) for x in splits) else math.inf
    checks: dict[str, dict] = {}

    def check(name: str, ok: bool, detail: str) -> None:
        checks[name] = {"pass": bool(ok), "detail": detail}

    others = {k: v for k, v in b.items() if k != "held_out"}
    worst_rival = min(others, key=lambda k: others[k] if math.isfinite(others[k]) else math.inf)
    check("held-out best", math.isfinite(held) and all(math.isfinite(v) and v > held for v in others.values()),
          f"held-out {_v(held)}; best other {worst_rival} {_v(others[worst_rival])}")
    for kind in DISTURBANCES:
        chain = [held] + [b[f"{kind}{i}"] for i in range(1, 5)]
        ok = all(math.isfinite(x) for x in chain) and all(x < y for x, y in zip(chain, chain[1:], strict=False))
        check(f"{kind} rises", ok, " < ".join(_v(x) for x in chain))
    for f in FAILURES:
        check(f"{f} worse", math.isfinite(b[f]) and b[f] > held + spread,
              f"{_v(b[f])} vs held-out {_v(held)} + spread {_v(spread)}")
    mild = {kind: b[f"{kind}1"] for kind in DISTURBANCES}
    worst_mild = max(mild, key=lambda k: mild[k] if math.isfinite(mild[k]) else math.inf)
    check("untrained worse than mild", bool(untrained) and all(math.isfinite(u) for u in untrained)
          and min(untrained) > max(mild.values()), f"untrained >= {_v(min(untrained) if untrained else math.nan)}; "
          f"mildest {worst_mild} {_v(mild[worst_mild])}")
    return {"passed": all(c["pass"] for c in checks.values()), "checks": checks, "spread": spread}


def _v(x: float) -> str:
    return f"{x:.4g}" if math.isfinite(x) else "–"


def run_suite(score: Callable[[np.ndarray], dict[str, float]], metrics: list[str], badness: Callable[[str, float], float],
              sets: dict[str, np.ndarray], held_out: list[dict[str, float]]) -> dict:
    """Score every set and judge every metric: the table (JSON-ready). ``held_out``: the held-out scores under
    the other seeds of the real/held-out split (the seed-to-seed spread)."""
    scores = {name: {k: float(v) for k, v in score(images).items() if k in metrics} for name, images in sets.items()}
    table = {m: judge(scores, badness, m, held_out) for m in metrics}
    return {"version": VERSION, "rule": RULE, "images": len(sets["held_out"]), "sets": scores, "metrics": table,
            "held_out_splits": [{k: float(v) for k, v in s.items() if k in metrics} for s in held_out],
            "passed": [m for m in metrics if table[m]["passed"]]}


def summary_lines(result: dict) -> list[str]:
    """The table as text: one line per metric, the failed checks named with their values."""
    lines = []
    for m, t in result["metrics"].items():
        failed = [f"{name} ({c['detail']})" for name, c in t["checks"].items() if not c["pass"]]
        lines.append(f"{m:<13} {'PASS' if t['passed'] else 'fail'}" + (f"  {'; '.join(failed)}" if failed else ""))
    return lines
