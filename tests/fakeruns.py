"""Write small run folders in the results layout without training, for report and trend tests."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from bench.core.metric_table import STEP_METRICS as METRICS
from bench.store import images, logs
from bench.store.files import atomic_write_json
from bench.store.layout import RunFiles


def make_run(root: Path, optimizers=("sgd", "adam"), seeds=(0,), steps=60, *, diverge: dict | None = None,
             cut_at: int | None = None, experiment="fake", run_id="20260101-000000", level: dict | None = None,
             state="finished", sample_every=20, quality=False, d_loss: dict | None = None,
             validated: tuple[str, ...] = ("swd",)) -> Path:
    """A run folder with synthetic but plausible metrics; ``diverge={(opt, seed): step}``.

    ``quality``: True for default scores, or ``quality(opt, seed, step) -> {metric: value}``; ``d_loss``:
    {(opt, seed): value} sets both D losses of a pair (near 0: D wins outright); ``validated``: the metrics the
    manifest's validation table says passed (a verdict rests only on those)."""
    run_dir = root / experiment / run_id
    run_dir.mkdir(parents=True)
    diverge = diverge or {}
    level = level or {}
    rng = np.random.default_rng(0)
    runs = {}
    images.save_images(run_dir, "real", rng.uniform(-1, 1, (9, 8, 8, 1)).astype(np.float32))
    for i, opt in enumerate(optimizers):
        for seed in seeds:
            files = RunFiles.of(run_dir, opt, seed)
            log = logs.MetricsLog(files.metrics, opt, seed)
            qlog = logs.QualityLog(files.quality, opt, seed) if quality else None
            stop = diverge.get((opt, seed), cut_at or steps)
            base = level.get(opt, 0.4 + 0.1 * i)
            for step in range(1, stop + 1):
                v = np.abs(rng.normal(0, 0.05, len(METRICS))) + base + 0.01 * seed
                v[2] = 1.0 + base + 0.3 * math.sin(step / 10)
                if d_loss and (opt, seed) in d_loss:
                    v[0] = v[1] = d_loss[(opt, seed)]
                status = "ok"
                if (opt, seed) in diverge and step == stop:
                    v[:3] = [np.nan, np.inf, np.nan]
                    status = "diverged"
                log.write(step, v, status, 0.002 + 0.001 * i, step * 0.01)
                if step % sample_every == 0 or step == 1:
                    images.save_images(files.samples, f"step_{step:06d}", rng.uniform(-1, 1, (9, 8, 8, 1)).astype(np.float32))
                    if qlog is not None:
                        scores = quality(opt, seed, step) if callable(quality) else {
                            "swd": 300 / step + i + seed, "fd_pca": 40 / step + i, "kid_pca": 2 / step,
                            "coverage": min(1.0, step / 100), "diversity": 0.9, "memorisation": 1.5}
                        qlog.write(step, scores, 0.1)
            log.close()
            if qlog is not None:
                qlog.close()
            st = "diverged" if (opt, seed) in diverge else ("finished" if stop == steps else "running")
            rec = {"optimizer": opt, "type": opt, "seed": seed, "status": st, "steps_done": stop,
                   "diverged_at": stop if st == "diverged" else None}
            atomic_write_json(files.status, rec)
            runs[f"{opt}-seed{seed}"] = rec
    manifest = {
        "schema": 1, "experiment": experiment, "run_id": run_id, "identity": "abc123", "status": state,
        "command": "bench run fake", "commands": ["bench run fake"], "cwd": "/tmp",
        "config": {"name": experiment, "seeds": list(seeds),
                   "train": {"steps": steps, "batch_size": 16, "sample_count": 9},
                   "optimizers": {o: {"type": o, "learning_rate": 0.001} for o in optimizers}},
        "optimizers": {o: {"type": o} for o in optimizers}, "seeds": list(seeds),
        "data": {"source": "fake", "images": 9, "shape": [8, 8, 1], "sha256": "0" * 64, "skipped_files": 0},
        "machine": {"cpu": "test cpu", "cores": 2, "platform": "linux", "intra_op_threads": 2, "inter_op_threads": 1,
                    "op_determinism": True, "jit_compile": False},
        "versions": {"python": "3.11", "tensorflow": "2.21.0", "keras": "3.15.1"},
        "git": {"commit": "deadbeef", "dirty": False}, "started": run_id, "runs": runs,
        "validation": {"version": 2, "rule": "fake", "images": 9, "passed": list(validated), "sets": {},
                       "metrics": {m: {"passed": True, "checks": {}} for m in validated}},
    }
    atomic_write_json(run_dir / "manifest.json", manifest)
    return run_dir


def falling_swd(better: str | None = None, factor: float = 0.7, shift=None):
    """SWD falling with training, the same for every optimizer except ``better`` (lower by ``factor``)."""
    def scores(opt, seed, step):
        base = 500 / (1 + step / 20) + 50 + 3 * seed + (shift(opt, seed) if shift else 0)
        swd = base * (factor if opt == better and step > 1 else 1.0)
        return {"swd": swd, "fd_pca": swd / 10, "kid_pca": swd / 1000, "coverage": 0.5, "diversity": 0.9,
                "memorisation": 1.2}
    return scores


def two_experiments(root: Path) -> list[Path]:
    """Finished fake runs of two experiments in which adam beats sgd in every seed (a leaderboard's input)."""
    better = {"faces": "adam", "digits": "adam"}
    runs = []
    for experiment, steps in (("faces", 60), ("digits", 40)):
        runs.append(make_run(root, optimizers=("sgd", "adam"), seeds=tuple(range(6)), steps=steps,
                             experiment=experiment, quality=falling_swd(better=better[experiment])))
    return runs
