"""The process that trains: thread counts, deterministic kernels, and what it runs on.

Bits change with the thread count and the software versions, so these facts are recorded in
every manifest, and the thread counts are part of a run's identity.
"""

from __future__ import annotations

import functools
import importlib.metadata as md
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np

from bench.core.names import DISTRIBUTION

PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def configure_runtime(threads: int, salt: str = "") -> dict:
    """Fix thread counts and deterministic kernels. Must run before TensorFlow's first op.

    Bits change with the thread count, so the counts are part of a run's identity. ``salt``: the digest of the
    user's code the run trains, for the persistent XLA cache's key.
    """
    from bench.model import xla_cache

    xla_cache.enable(salt)  # before the first XLA compile: TensorFlow reads its XLA flags then
    import tensorflow as tf

    intra = threads or available_cores()
    inter = 1  # one op at a time: this GAN's graph is a chain; parallel branches only add jitter
    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra)
        tf.config.threading.set_inter_op_parallelism_threads(inter)
    except RuntimeError:  # TensorFlow already runs in this process (an API caller, tests): it keeps its threads
        actual = tf.config.threading.get_intra_op_parallelism_threads() or available_cores()
        if actual != intra:
            print(f"bench: warning: TensorFlow already runs {actual} threads in this process; {intra} cannot apply "
                  "(the values may differ from a fresh process's)", file=sys.stderr)
        intra, inter = actual, tf.config.threading.get_inter_op_parallelism_threads() or inter
    tf.config.experimental.enable_op_determinism()
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") >= "2":  # quiet unless --debug: e.g. the retracing notice
        tf.get_logger().setLevel("ERROR")  # when one process builds many trainers (sweeps) is expected
    return {"intra_op_threads": intra, "inter_op_threads": inter, "op_determinism": True}


def versions() -> dict:
    """The versions the bits depend on (and a few more for provenance)."""
    import keras
    import tensorflow as tf

    # Module versions, not distribution names: tensorflow may be installed as tensorflow-cpu.
    out = {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
           "numpy": np.__version__}
    for key, dist in (("bench", DISTRIBUTION), ("pillow", "pillow"), ("scikit-image", "scikit-image"),
                      ("pandas", "pandas")):
        try:
            out[key] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return out


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.cache  # a process records one checkout; two `git` processes per run folder are enough
def git_info() -> dict:
    """The commit of bench's own checkout (None when installed from a wheel) and whether it is dirty."""
    def git(*args: str) -> str | None:
        try:
            r = subprocess.run(["git", "-C", str(PACKAGE_ROOT), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return r.stdout.strip() if r.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    return {"commit": commit, "dirty": bool(git("status", "--porcelain", "--untracked-files=no")) if commit else None}


def machine_info(runtime: dict) -> dict:
    return {"platform": platform.platform(), "cpu": cpu_model(), "cores": available_cores(),
            "hostname": platform.node(), **runtime}
