"""A pair's checkpoint: every variable of G, D and both optimizers, and the step."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from bench.store.files import writing


def save_checkpoint(path: Path, step: int, arrays: list[np.ndarray]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with writing(path):
        with open(tmp, "wb") as f:
            np.savez(f, step=np.int64(step), **{f"v{i}": a for i, a in enumerate(arrays)})
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


def load_checkpoint(path: Path) -> tuple[int, list[np.ndarray]] | None:
    """(step, arrays), or None when there is no usable checkpoint."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            n = len([k for k in z.files if k.startswith("v")])
            return int(z["step"]), [z[f"v{i}"] for i in range(n)]
    except (OSError, ValueError, KeyError):
        return None
