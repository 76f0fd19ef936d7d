"""Names that become files and folders, and the few formats every layer shares."""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.core.errors import BenchError

# Files of a run folder and of a report folder.
DISTRIBUTION = "gan-optimizer-bench"  # the package index's name (pip install ...); the import and command are bench


def install_hint(extra: str) -> str:
    return f"pip install '{DISTRIBUTION}[{extra}]'"


MANIFEST = "manifest.json"
SWEEP_FILE = "sweep.json"
REPORT_META = "report.json"
VERDICT_FILE = "verdict.json"  # beside a run's report: the verdict as data (bench compare --json writes the same)
TUNED = ".tuned"  # label suffix of an optimizer's best setting in a sweep's final phase
# The two networks of the GAN, each with its own optimizer instance (hyper-parameters may be set per network).
NETWORKS = ("generator", "discriminator")

# A name that becomes a folder under --out or --reports: a plain name, never a path.
PLAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def check_plain_name(what: str, name: str) -> None:
    """Refuse a name that would become anything but one folder (``/``, ``..``, absolute, empty)."""
    if not isinstance(name, str) or not PLAIN_NAME.match(name):
        raise BenchError(f"{what} {name!r}: use a plain name of letters, digits, '_', '-' and '.' "
                         "(starting with a letter or digit), not a path")


def run_name(label: str, seed: int) -> str:
    """The folder (and display) name of one (optimizer, seed) pair."""
    return f"{label}-seed{seed}"


def now() -> str:
    """Local time with its UTC offset, to the second: what manifests and records say."""
    return dt.datetime.now(dt.UTC).astimezone().isoformat(timespec="seconds")


def fmt_params(params: Mapping[str, Any]) -> str:
    """``key=value, ...`` with floats in their shortest form (tables, labels, console lines)."""
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def cache_dir() -> Path:
    """bench's cache folder (decoded data sets, compiled steps): $BENCH_CACHE_DIR or ~/.cache/bench."""
    return Path(os.environ.get("BENCH_CACHE_DIR") or Path.home() / ".cache" / "bench")
