"""A pair's checkpoints: every variable of G, D and both optimizers, named, with what they belong to.

``checkpoint-000000500.npz`` holds every array, concatenated per dtype (one read per dtype instead of
one per variable), and a JSON ``meta``: the format, the step, the experiment identity, the optimizer
label, the seed, the Keras version and each array's variable name, shape and dtype, so that a
checkpoint is only ever loaded into the variables it came from. The newest
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

FORMAT = 2
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
    dtypes = [np.asarray(a).dtype.str for a in arrays]
    blob = json.dumps({**meta, "format": FORMAT, "step": step, "shapes": [list(np.shape(a)) for a in arrays],
                       "dtypes": dtypes})
    flat = {f"d{dt}": np.concatenate([np.ravel(a) for a, d in zip(arrays, dtypes, strict=True) if d == dt])
            for dt in dict.fromkeys(dtypes)}
    atomic_write(path, lambda f: np.savez(f, meta=np.array(blob), **flat))
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
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                raise Unreadable("not a bench checkpoint of this format")
            flat = {dt: z[f"d{dt}"] for dt in dict.fromkeys(meta["dtypes"])}
            arrays, used = [], dict.fromkeys(flat, 0)
            for shape, dt in zip(meta["shapes"], meta["dtypes"], strict=True):
                size = int(np.prod(shape))
                arrays.append(flat[dt][used[dt]: used[dt] + size].reshape(shape))
                used[dt] += size
            if any(used[dt] != len(flat[dt]) for dt in flat) or any(a.size != np.prod(s) for a, s in
                                                                    zip(arrays, meta["shapes"], strict=True)):
                raise Unreadable("its arrays do not add up to the variables it lists")
    except Unreadable:
        raise
    except Exception as e:  # noqa: BLE001 - a damaged zip raises anything from BadZipFile to EOFError
        raise Unreadable(f"{type(e).__name__}: {e}".splitlines()[0]) from None
    return Checkpoint(path, int(meta["step"]), meta, arrays)
