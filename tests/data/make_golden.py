"""Regenerate the golden runs in tests/data/golden/ (on purpose: their values are what the tests read).

    .venv/bin/python tests/data/make_golden.py [NAME...]     # all of them, or the ones named

Real smoke runs, frozen: ``base`` (sgd, rmsprop, adam; seeds 0-2; 40 iterations; quality at 0, 20, 40)
and ``fast`` (the same with adam's learning rate 10x: sgd and rmsprop are bit-identical to base, the paired
design), and ``verdict`` (adam at 0.002, and adam at 1e-7 labelled ``frozen``; seeds 0-5, enough paired seeds for a
significant verdict on one pair; 400 iterations). Checkpoints and raw sample arrays are dropped to keep them small; the
PNG grids stay.

``untrained``: the faces experiment's untrained generator (its samples of the first 50 evaluation latents, for the
validation suite's seeds), float16, so that the validation suite's table on the bundled faces is tested without
TensorFlow (tests/test_validation.py). Regenerate it when bench/experiments/faces.toml's [model] changes.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNS = {"base": ["--seeds", "0,1,2", "--steps", "40"],
        "fast": ["--seeds", "0,1,2", "--steps", "40", "--optimizers", "sgd,rmsprop,adam:learning_rate=0.002"],
        # 400 iterations: the smoke GAN needs about 200 before its samples move away from the untrained ones
        "verdict": ["--seeds", "0,1,2,3,4,5", "--steps", "400",
                    "--optimizers", "adam:learning_rate=0.002,adam:label=frozen,learning_rate=1e-7"]}


def untrained() -> None:
    import numpy as np

    from bench import data
    from bench.model.runtime import configure_runtime
    from bench.model.step import untrained_samples
    from bench.orchestrate.request import Request, resolve_experiment
    from bench.quality.scorer import make_evaluator
    from bench.quality.validation import UNTRAINED_SEEDS

    exp = resolve_experiment(Request(experiment="faces"))
    configure_runtime(exp.train.threads)
    images = data.load(exp.data).images
    held = make_evaluator(exp, images).held_out
    samples = np.stack(untrained_samples(exp, tuple(images.shape[1:]), UNTRAINED_SEEDS, len(held)))
    out = HERE / "golden" / "validation"
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "faces-untrained.npy", samples.astype(np.float16))


def main(only: list[str]) -> int:
    from bench.cli import main as bench

    if not only or "untrained" in only:
        untrained()
    target = HERE / "golden" / "smoke"
    target.mkdir(parents=True, exist_ok=True)
    for name, extra in RUNS.items():
        if only and name not in only:
            continue
        shutil.rmtree(target / name, ignore_errors=True)
        with tempfile.TemporaryDirectory() as tmp:
            code = bench(["run", "smoke", "--quiet", "--no-report", *extra,
                          "--out", tmp])
            assert code == 0
            run = next((Path(tmp) / "smoke").iterdir())
            for p in [*run.rglob("checkpoint-*.npz"), *run.rglob("samples/*.npy"), run / ".lock"]:
                p.unlink(missing_ok=True)
            for p in run.rglob("samples/step_*.png"):  # a filmstrip of five grids is enough for a report
                if int(p.stem.split("_")[1]) % 100:
                    p.unlink()
            m = json.loads((run / "manifest.json").read_text())
            m.update(run_id=name, cwd="/golden", command=m["command"].replace(tmp, "OUT"),
                     commands=[c.replace(tmp, "OUT") for c in m["commands"]])
            (run / "manifest.json").write_text(json.dumps(m, indent=2) + "\n")
            shutil.copytree(run, target / name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
