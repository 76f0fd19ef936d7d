"""The validation suite run on an experiment's own data (bench.quality.validation), cached, and `bench score`.

Every run records the table in its manifest (its verdict rests only on a metric that passed); the first run on
a data set pays for it (a few seconds), the next ones read it from bench's cache, keyed by everything the
table depends on: the image set's checksum, the evaluation settings, the generator's configuration (its
untrained samples are part of the suite), every metric's version, the embedding's and the suite's.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path

import numpy as np

from bench import data
from bench.core.config import Experiment
from bench.core.errors import BenchError
from bench.core.names import cache_dir
from bench.quality import embedding, validation
from bench.quality.scorer import Evaluator
from bench.quality.scores import INFO
from bench.store.files import atomic_write_json, read_json


def _key(exp: Experiment, dataset) -> str:
    e = exp.eval
    blob = {"suite": validation.VERSION, "embedding": embedding.VERSION, "data": dataset.checksum,
            "shape": list(dataset.images.shape), "eval": [e.real, e.seed, e.pca_dims, e.patches_per_image],
            "model": exp.to_dict()["model"], "metrics": {m: i.version for m, i in INFO.items()},
            "untrained": list(validation.UNTRAINED_SEEDS), "sample_seed": e.seed}
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:24]


def validate(exp: Experiment, dataset, evaluator: Evaluator, use_cache: bool = True,
             untrained: list[np.ndarray] | None = None) -> dict:
    """The validation table of ``exp``'s metrics on its data (from the cache when it holds it). ``untrained``:
    the untrained generator's samples, one set per seed of UNTRAINED_SEEDS (default: made here; the tests pass
    committed ones)."""
    if dataset.is_points:
        return {"version": validation.VERSION, "applicable": False, "passed": [], "metrics": {},
                "rule": validation.RULE, "why": "point data: the suite's disturbances are image operations, so no "
                "metric is validated and the verdict is exploratory"}
    path = cache_dir() / "validation" / f"{_key(exp, dataset)}.json"
    if use_cache and untrained is None and path.is_file():
        try:
            cached = read_json(path)
            if cached.get("version") == validation.VERSION and isinstance(cached.get("passed"), list):
                return {**cached, "cache": "hit"}
        except BenchError:
            pass  # a damaged entry is computed again
    from bench.model.step import untrained_samples

    t0 = time.perf_counter()
    held = evaluator.held_out
    untrained_given = untrained is not None
    if untrained is None:
        untrained = untrained_samples(exp, tuple(dataset.images.shape[1:]), validation.UNTRAINED_SEEDS, len(held))
    sets = validation.suite_sets(evaluator.real, held, data.other_images(exp.data), untrained, exp.eval.seed)
    metrics = [m for m in evaluator.names() if m in INFO and m != "fid"]
    e = exp.eval
    others = []  # the held-out scores under other seeds of the split: the metric's seed-to-seed spread near real data
    for k in range(1, validation.SPLIT_SEEDS):
        split = Evaluator(dataset.images, e.real, e.pca_dims, e.seed + k, e.patches_per_image)
        others.append(split(split.held_out)[0])
    result = validation.run_suite(lambda x: evaluator(x)[0], metrics, lambda m, v: INFO[m].badness(v), sets, others)
    result["seconds"] = round(time.perf_counter() - t0, 2)
    result["applicable"] = True
    if not use_cache or untrained_given:
        return {**result, "cache": "off"}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, result)
    except (OSError, BenchError):
        pass  # an unwritable cache only costs the time of the next validation
    return {**result, "cache": "written"}


def table_text(result: dict) -> str:
    """The table as `bench validate` prints it: the rule, a line per metric, then the sets' scores."""
    if not result.get("applicable", True):
        return f"validation: {result['why']}"
    lines = [f"validation suite ({result['images']} images per set; {result['rule']}):", ""]
    lines += ["  " + ln for ln in validation.summary_lines(result)]
    metrics = list(result["metrics"])
    lines += ["", "  " + f"{'set':<14}" + "".join(f"{m:>13}" for m in metrics)]
    for name, scores in result["sets"].items():
        lines.append("  " + f"{name:<14}" + "".join(f"{_num(scores.get(m)):>13}" for m in metrics))
    passed = result["passed"]
    lines += ["", f"passed: {', '.join(passed) if passed else 'none: no metric may carry a verdict on these data'}"]
    return "\n".join(lines)


def _num(v) -> str:
    return f"{v:.4g}" if isinstance(v, (int, float)) and math.isfinite(v) else "–"


# ------------------------------------------------------------------ bench score


def load_images(path: Path, exp: Experiment, value_range: str = "auto") -> tuple[np.ndarray, str]:
    """A user's image set as the experiment's model sees images: (N, H, W, C) float32 in [-1, 1]. A ``.npy``
    of N x H x W x C (or N x H x W for one channel) in [0, 1] or [-1, 1] (``value_range``; "auto": [-1, 1]
    when any value is negative), or uint8 in [0, 255]; or a folder (or zip) of images, resized to the
    experiment's size and channels. Anything else is one line."""
    path = Path(path)
    h, w = exp.data.image_size
    c = exp.data.channels
    if path.is_dir() or (path.is_file() and path.suffix.lower() == ".zip"):
        from bench.core.config import DataConfig

        cfg = DataConfig(source="folder", path=str(path), image_size=(h, w), channels=c, resample=exp.data.resample)
        ds = data.load(cfg, use_cache=False)
        return ds.images, f"{len(ds.images)} images decoded from {path}"
    if not path.is_file():
        raise BenchError(f"--images {path}: not found")
    if path.suffix.lower() != ".npy":
        raise BenchError(f"--images {path}: expected a .npy array or a folder of images")
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise BenchError(f"--images {path}: not a readable .npy array ({type(e).__name__})") from None
    if arr.ndim == 3 and c == 1:
        arr = arr[..., None]
    if arr.ndim != 4 or tuple(arr.shape[1:]) != (h, w, c):
        raise BenchError(f"--images {path}: shape {tuple(arr.shape)}, expected N x {h} x {w} x {c} for experiment "
                         f"{exp.name}")
    if len(arr) < 2:
        raise BenchError(f"--images {path}: {len(arr)} image(s); the metrics compare sets: give at least 2")
    if arr.dtype == np.uint8:
        return (arr.astype(np.float32) - 127.5) / 127.5, f"{len(arr)} uint8 images from {path}"
    if arr.dtype.kind != "f":
        raise BenchError(f"--images {path}: dtype {arr.dtype}; expected float values in [0, 1] or [-1, 1], or uint8")
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        raise BenchError(f"--images {path}: holds NaN or infinite values")
    low, high = float(arr.min()), float(arr.max())
    if value_range == "auto":
        value_range = "-1,1" if low < 0 else "0,1"
    lo, hi = (-1.0, 1.0) if value_range == "-1,1" else (0.0, 1.0)
    if low < lo - 1e-6 or high > hi + 1e-6:
        raise BenchError(f"--images {path}: values in [{low:.4g}, {high:.4g}], outside [{lo:g}, {hi:g}] "
                         f"({'--range' if value_range else ''} {value_range})")
    if value_range == "0,1":
        arr = arr * 2 - 1
    return np.clip(arr, -1, 1), f"{len(arr)} images from {path}, values read as [{value_range.replace(',', ', ')}]"
