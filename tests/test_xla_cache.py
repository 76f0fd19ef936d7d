"""The persistent XLA compilation cache: shared between processes, and never trusted blindly."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import only_run_dir, read_values

pytestmark = pytest.mark.training  # every test here trains (make test-fast leaves them out)

RUN = ["run", "smoke", "--optimizers", "adam,sgd", "--seeds", "0", "--steps", "10", "--xla", "--no-eval",
       "--no-report", "--quiet"]


def _bench(cache: Path, out: Path, *extra: str, **env_extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("TF_XLA_FLAGS", "BENCH_XLA_CACHE", "TF_CPP_MIN_LOG_LEVEL")}
    env["BENCH_CACHE_DIR"] = str(cache)  # a fresh process: TensorFlow reads its XLA flags once per process
    env.update(env_extra)
    return subprocess.run([str(Path(sys.executable).with_name("bench")), *RUN, *extra, "--out", str(out)], env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_a_second_process_loads_the_compiled_steps_and_compiles_a_corrupt_or_foreign_entry_again(tmp_path):
    cache = tmp_path / "cache"
    first = _bench(cache, tmp_path / "a", "--threads", "1")
    assert first.returncode == 0 and first.stderr == "", first.stderr  # no TensorFlow banner either
    entries = sorted(cache.glob("xla/*/*.pb"))
    assert len(entries) == 2 and all((e.parent / (e.name + ".sha256")).exists() for e in entries)  # one per optimizer
    assert not list(cache.glob("xla/*/.proc-*"))  # the process's private folder is gone with it
    kept, torn = entries
    kept_bytes, whole = kept.read_bytes(), torn.read_bytes()
    torn.write_bytes(whole[: len(whole) // 3])  # a torn or corrupt entry: TensorFlow would fail the step on it
    foreign = kept.parent / "xla_compile_cache__1__2__XLA_CPU_JIT.pb"
    foreign.write_bytes(b"not an entry bench published")

    # TensorFlow's own log says which entries it loaded
    second = _bench(cache, tmp_path / "b", "--threads", "1", TF_CPP_MIN_LOG_LEVEL="0",
                    TF_CPP_VMODULE="device_executable_persistor=1")
    assert second.returncode == 0 and "Traceback" not in second.stderr, second.stderr[-3000:]
    assert second.stderr.count("Loading cached entry") == 1  # the intact entry; the torn one compiled again
    assert kept.read_bytes() == kept_bytes
    replaced = torn.read_bytes()  # compiled again and replaced by a whole entry (XLA's object code is not
    assert len(replaced) > len(whole) // 2 and not foreign.exists()  # byte-identical from one compile to the next)
    assert (torn.parent / (torn.name + ".sha256")).read_text().strip() == hashlib.sha256(replaced).hexdigest()
    for pair in ("adam-seed0", "sgd-seed0"):  # the loaded step and the recompiled one give the same values
        a, b = (read_values(only_run_dir(tmp_path / d, "smoke") / "runs" / pair / "metrics.csv") for d in ("a", "b"))
        pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_every_process_traces_the_steps_under_the_same_names():
    """TensorFlow names a traced function with a process-wide counter, and its cache keys compiled steps by
    that name: warm_up() traces each step at the same offset from a fixed stride, whatever the process did
    before (a --jobs worker, a Ray task, a resumed run), so the names, and the cache keys, agree."""
    import numpy as np
    from tensorflow.python.framework import ops

    from bench.core import config
    from bench.model.runtime import configure_runtime
    from bench.model.step import NAME_STRIDE, warm_up

    configure_runtime(0)
    raw = config.load_raw(config.resolve_experiment_path("smoke"))
    config.apply_override(raw, "train.jit_compile=true")
    raw["optimizers"] = {"adam": raw["optimizers"]["adam"]}  # (each step is aligned alike: one shows it)
    raw.pop("sweep")
    exp = config.experiment_from_dict(raw, "smoke")
    rng = np.random.default_rng(0)
    first = warm_up(exp, rng.uniform(-1, 1, (40, 12, 12, 1)).astype(np.float32))
    for _ in range(12345):  # a process with another history
        ops.uid()
    second = warm_up(exp, rng.uniform(-1, 1, (40, 12, 12, 1)).astype(np.float32))  # new trainers: other images
    number = lambda name: int(name.rsplit("_", 1)[1])  # noqa: E731
    assert len(first) == len(second) == 1 and first != second
    assert [number(n) % NAME_STRIDE for n in first] == [number(n) % NAME_STRIDE for n in second]
