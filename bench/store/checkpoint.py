"""A pair's checkpoints: every variable of G, D and both optimizers, named, with what they belong to.

``checkpoint-000000500.npz`` holds the arrays ``a0 .. aN`` and a JSON ``meta``: the format, the step,
the experiment identity, the optimizer label, the seed, the Keras version and each array's variable
name and shape, so that a checkpoint is only ever loaded into the variables it came from. The newest
two are kept: a new one is durable (written whole, fsynced, renamed) before an older one goes, so a
kill during a write or a corrupt newest file falls back to the previous checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.store.files import atomic_write, writing

FORMAT = 1
KEEP = 2
_NAME = re.compile(r"^checkpoint-(\d{9})\.npz$")


def path_for(folder: Path, step: int) -> Path:
    return folder / f"checkpoint-{step:09d}.npz"


def step_of(path: Path) -> int:
    return int(_NAME.match(path.name).group(1))


def checkpoints(folder: Path) -> list[Path]:
    """The pair's checkpoint files, newest (highest step) first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    step: int
    meta: dict  # format, step, identity, optimizer, seed, keras, names, shapes
    arrays: list[np.ndarray]


class Unreadable(Exception):
    """A checkpoint file that is not whole (cut short, overwritten) or not bench's."""


def save_checkpoint(folder: Path, step: int, meta: dict, arrays: list[np.ndarray]) -> Path:
    """Write ``checkpoint-<step>.npz`` durably, then drop all but the newest KEEP checkpoints."""
    path = path_for(folder, step)
    blob = json.dumps({**meta, "format": FORMAT, "step": step, "shapes": [list(a.shape) for a in arrays]})
    atomic_write(path, lambda f: np.savez(f, meta=np.array(blob), **{f"a{i}": a for i, a in enumerate(arrays)}))
    with writing(folder):  # the rename itself is durable before anything older is removed
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    for old in checkpoints(folder)[KEEP:]:
        with contextlib.suppress(OSError):
            old.unlink()
    return path


def read_checkpoint(path: Path) -> Checkpoint:
    """The checkpoint in ``path``, every array read and checked; Unreadable (with the reason) when the
    file is damaged anywhere."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            arrays = [z[f"a{i}"] for i in range(len(meta["shapes"]))]
    except Exception as e:  # noqa: BLE001 - a damaged zip raises anything from BadZipFile to EOFError
        raise Unreadable(f"{type(e).__name__}: {e}".splitlines()[0]) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or [list(a.shape) for a in arrays] != meta["shapes"]:
        raise Unreadable("not a bench checkpoint of this format")
    return Checkpoint(path, int(meta["step"]), meta, arrays)
