"""Crash-safe writes, JSON records, and the one-writer lock of a run folder.

Writes survive a kill at any moment: everything but the append-only CSV logs is written to
a temporary file, flushed to disk and renamed over the old one.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from bench.core.errors import BenchError


def os_error(e: OSError, path: Path) -> BenchError:
    """An OS error while writing ``path``, as the one line a user needs."""
    if e.errno == errno.ENOSPC:
        return BenchError(f"disk full while writing {path}; free space and resume with --resume")
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return BenchError(f"cannot write to {path}: permission denied")
    return BenchError(f"cannot write {path}: {e.strerror or e}")


@contextlib.contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn OS errors while writing ``path`` into one-line BenchErrors."""
    try:
        yield
    except OSError as e:
        raise os_error(e, path) from None


def temp_name(path: Path) -> Path:
    """Where ``path`` is written before it is renamed into place: hidden, and marked with this process."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def atomic_write(path: Path, write: Callable[[BinaryIO], None], durable: bool = True) -> None:
    """Write ``path`` whole or not at all: ``write(f)`` fills a temporary file, which is flushed to disk
    (``durable``; sample grids skip it: they are made again from a checkpoint) and renamed over ``path``.
    On any failure (a full disk, an exception in ``write``) the temporary file is removed at once and
    ``path`` keeps its old content."""
    tmp = temp_name(path)
    try:
        with writing(path):
            with open(tmp, "wb") as f:
                write(f)
                f.flush()
                if durable:
                    os.fsync(f.fileno())
            os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def atomic_write_bytes(path: Path, data: bytes, durable: bool = True) -> None:
    atomic_write(path, lambda f: f.write(data), durable=durable)


def strict(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by None: JSON has no NaN or Infinity, and bench
    writes only strict JSON (readers say what None means where it can occur)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict(v) for v in obj]
    return obj


def json_text(obj: Any) -> str:
    """Strict JSON (no NaN/Infinity literals), indented."""
    return json.dumps(strict(obj), indent=2, allow_nan=False, default=str) + "\n"


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, json_text(obj).encode())


def remove_stale_temps(folder: Path) -> int:
    """Remove what writers killed mid-write left behind below ``folder``: temporary files of atomic
    writes and half-unpacked folders. Call it holding the folder's lock, before any writer starts:
    every such file is then stale. Returns how many were removed."""
    removed = 0
    if not folder.is_dir():
        return 0
    for p in list(folder.rglob(".*")):
        stale_file = p.name.endswith(".tmp") and p.is_file()
        stale_dir = (".incoming-" in p.name or ".old-" in p.name) and p.is_dir()
        if stale_file or stale_dir:
            with contextlib.suppress(OSError):
                shutil.rmtree(p) if stale_dir else p.unlink()
                removed += 1
    return removed


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise BenchError(f"{path}: not found") from None
    except (OSError, ValueError) as e:
        raise BenchError(f"{path}: unreadable JSON ({e})") from None


def ensure_writable(folder: Path) -> None:
    """Fail early, before any training, if results cannot be written."""
    with writing(folder):
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()


def inside(root: Path, *parts: str) -> Path:
    """``root/parts...``, refused unless it stays inside ``root`` (names come from user input)."""
    path = Path(root).joinpath(*parts)
    if not path.resolve().is_relative_to(Path(root).resolve()) or path.resolve() == Path(root).resolve():
        raise BenchError(f"{'/'.join(parts)!r} would be written outside {root}; use a plain name")
    return path


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """One writer per run folder: a second ``bench run --resume`` on it stops at once."""
    path = run_dir / ".lock"
    with writing(path):
        f = open(path, "a+")
    try:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BenchError(f"{run_dir} is being written by another bench process; wait for it to finish") from None
        yield
    finally:
        f.close()


def writer_alive(run_dir: Path) -> bool:
    """Whether a bench process holds ``run_dir``'s lock right now (a run in progress)."""
    try:  # read-only: asking must not write into the folder (a committed fixture, a read-only share)
        with open(run_dir / ".lock") as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return False
    except BlockingIOError:
        return True
    except OSError:
        return False
