"""The rest of a run besides its training steps: one evaluation, the start of a compiled step with and
without the persistent XLA cache, and the whole-run overhead share a run records in status.json.

Run with ``make bench`` (or ``pytest benchmarks --benchmark-enable``); the figures are printed too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SHAPE = (28, 28, 3)  # the reference experiment's images


def test_one_evaluation_on_the_reference_shapes(benchmark, capsys):
    """Every quality metric, 256 samples against 200 real 28x28x3 images (the reference run's data)."""
    from bench.quality.scorer import Evaluator

    rng = np.random.default_rng(0)
    train = rng.uniform(-1, 1, (200, *SHAPE)).astype(np.float32)
    evaluator = Evaluator(train, real_count=256, pca_dims=32, seed=7)
    fake = np.clip(train[rng.integers(0, 200, 256)] + rng.normal(0, 0.3, (256, *SHAPE)), -1, 1).astype(np.float32)
    scores = benchmark.pedantic(lambda: evaluator(fake)[0], rounds=15, iterations=1, warmup_rounds=2)
    assert np.isfinite(scores["swd"]) and set(scores) >= {"swd", "fd_pca", "kid_pca", "coverage"}
    with capsys.disabled():
        print(f"\none evaluation (reference shapes): median {benchmark.stats.stats.median * 1000:.0f} ms")


START = """
import json, sys, time
import numpy as np
from bench.core.config import DataConfig, Experiment, OptimizerSpec, TrainConfig
from bench.model.runtime import configure_runtime
from bench.model.step import trainer_for, warm_up
configure_runtime(0)
adam = OptimizerSpec("adam", "adam", {"learning_rate": 2e-4, "beta_1": 0.5})
exp = Experiment(name="reference", data=DataConfig(source="celeba", image_size=(28, 28), channels=3),
                 train=TrainConfig(batch_size=32, jit_compile=True), optimizers=(adam,))
images = np.random.default_rng(0).uniform(-1, 1, (200, 28, 28, 3)).astype(np.float32)
t = time.perf_counter()
warm_up(exp, images)
trainer_for(exp, adam, images, 0).run_block(1, 8)
print(json.dumps({"start": time.perf_counter() - t}))
"""


def _start(cache: Path, cached: bool) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("TF_XLA_FLAGS",)}
    env.update(BENCH_CACHE_DIR=str(cache), BENCH_XLA_CACHE="on" if cached else "off", TF_CPP_MIN_LOG_LEVEL="3")
    r = subprocess.run([sys.executable, "-c", START], env=env, capture_output=True, text=True, timeout=300, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])["start"]


@pytest.mark.parametrize("cached", [False, True], ids=["compiled", "loaded-from-cache"])
def test_start_of_the_reference_step_in_a_fresh_process(benchmark, tmp_path_factory, cached, capsys):
    """Tracing and compiling the reference model's XLA step in a new process (a --jobs worker, a Ray task,
    a resumed or repeated run), against tracing it and loading what an earlier process compiled."""
    cache = tmp_path_factory.mktemp("xla")
    if cached:
        _start(cache, True)  # an earlier process compiles and publishes the step
    times = []
    benchmark.pedantic(lambda: times.append(_start(cache, cached)), rounds=3, iterations=1)
    with capsys.disabled():
        print(f"\nstart of the reference step, {'loaded' if cached else 'compiled'}: median "
              f"{np.median(times):.2f} s (trace + {'load' if cached else 'compile'} + first 8 iterations)")


def test_whole_run_overhead_share(benchmark, tmp_path, capsys):
    """A short run of the default experiment: what status.json says about scoring and the harness."""
    from bench.cli import main

    out = tmp_path / "out"
    args = ["run", "faces", "--seeds", "0", "--steps", "400", "--quiet", "--no-report", "--fresh", "--out", str(out)]
    benchmark.pedantic(lambda: main(args), rounds=1, iterations=1)
    statuses = [json.loads(p.read_text()) for p in out.glob("faces/*/runs/*/status.json")]
    train = sum(s["train_seconds"] for s in statuses)
    evaluation = sum(s["eval_seconds"] for s in statuses)
    overhead = [s["harness_overhead"] for s in statuses]
    benchmark.extra_info.update(scoring_share=evaluation / train, harness_overhead=overhead)
    with capsys.disabled():
        print(f"\nfaces, 3 optimizers x 400 iterations: scoring {evaluation:.2f} s = {100 * evaluation / train:.1f}% "
              f"of training {train:.1f} s; harness overhead per pair {[f'{100 * o:.1f}%' for o in overhead]}")
    assert evaluation < train


def test_tensorboard_share_of_training(benchmark, tmp_path, capsys):
    """TensorBoard's cost on the default experiment: every pair's events rewritten from its files (the same
    protocol-buffer writes as during training, plus parsing the CSV: an upper bound), against the pair's
    training time from a run with TensorBoard off."""
    from bench.cli import main
    from bench.export.pairs import pairs
    from bench.store.tensorboard import export_pair

    out = tmp_path / "out"
    args = ["run", "faces", "--seeds", "0", "--steps", "400", "--quiet", "--no-report", "--no-tensorboard", "--out",
            str(out)]
    assert main(args) == 0
    run_dir = next(out.glob("faces/*"))
    todo = list(pairs(run_dir))

    def write_all() -> None:
        for p in todo:
            export_pair(p.files.root, p.hparams, p.session, "finished", None)

    benchmark.pedantic(write_all, rounds=5, iterations=1, warmup_rounds=1)
    train = sum(p.status["train_seconds"] for p in todo)
    share = benchmark.stats.stats.median / train
    benchmark.extra_info.update(tensorboard_share=share)
    with capsys.disabled():
        print(f"\nfaces, 3 optimizers x 400 iterations: TensorBoard events {1000 * benchmark.stats.stats.median:.0f} ms "
              f"= {100 * share:.2f}% of training {train:.1f} s")
    assert share < 0.02
