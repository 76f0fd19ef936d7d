"""Crash-safe writes, JSON records, and the one-writer lock of a run folder.

Writes survive a kill at any moment: everything but the append-only CSV logs is written to
a temporary file, flushed to disk and renamed over the old one.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with writing(path):
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n").encode())


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
    try:
        with open(run_dir / ".lock", "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return False
    except BlockingIOError:
        return True
    except OSError:
        return False
