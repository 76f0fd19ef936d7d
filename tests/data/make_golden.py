"""Regenerate the golden runs in tests/data/golden/ (on purpose: their values are what the tests read).

    .venv/bin/python tests/data/make_golden.py

Two real smoke runs, frozen: ``base`` (sgd, rmsprop, adam; seeds 0-2; 40 iterations; quality at 0, 20, 40)
and ``fast`` (the same with adam's learning rate 10x: sgd and rmsprop are bit-identical to base, the paired
design). Checkpoints and raw sample arrays are dropped to keep them small; the PNG grids stay.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNS = {"base": [], "fast": ["--optimizers", "sgd,rmsprop,adam:learning_rate=0.002"]}


def main() -> int:
    from bench.cli import main as bench

    target = HERE / "golden" / "smoke"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for name, extra in RUNS.items():
        with tempfile.TemporaryDirectory() as tmp:
            code = bench(["run", "smoke", "--seeds", "0,1,2", "--steps", "40", "--quiet", "--no-report", *extra,
                          "--out", tmp])
            assert code == 0
            run = next((Path(tmp) / "smoke").iterdir())
            for p in [*run.rglob("checkpoint-*.npz"), *run.rglob("samples/*.npy"), run / ".lock"]:
                p.unlink(missing_ok=True)
            m = json.loads((run / "manifest.json").read_text())
            m.update(run_id=name, cwd="/golden", command=m["command"].replace(tmp, "OUT"),
                     commands=[c.replace(tmp, "OUT") for c in m["commands"]])
            (run / "manifest.json").write_text(json.dumps(m, indent=2) + "\n")
            shutil.copytree(run, target / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
