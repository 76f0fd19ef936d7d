"""Crash-safe writes, files the user names as outputs, folders treated as untrusted input, JSON records,
and the one-writer lock of a run folder.

bench's own files in run and report folders survive a kill at any moment: everything but the append-only
CSV logs is written to a temporary file, flushed to disk and renamed over the old one. A file the *user*
names as output (``--json``, ``--junit``, ``--markdown``, ``-o``) is written where it points instead
(``write_output``): renaming over it would turn a symlink, a FIFO or a device into a regular file.

Run, results and reports folders may come from elsewhere (a CI artifact, a colleague's results, a shared
disk): a symlink in them that leads out of the folder is never followed (``contained``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import os
import shutil
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from bench.core.errors import BenchError, first_line, one_line


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


def write_output(path: Path, data: bytes) -> None:
    """A file the user named as output, written where it points: through a symlink to its target, into a
    FIFO or a character device as a stream, a regular file truncated and written in place; a missing
    folder above it is created. Never a temporary file renamed over it, which would replace a symlink, a
    FIFO or a device node (as root: /dev/null) with a regular file. Callers build the whole content first,
    so nothing is written before every input has been read and checked."""
    path = Path(path)
    try:
        if not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    except IsADirectoryError:
        raise BenchError(f"cannot write {path}: a folder; name a file") from None
    except OSError as e:
        raise os_error(e, path) from None
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except OSError as e:
        raise os_error(e, path) from None
    finally:
        os.close(fd)


def write_output_json(path: Path, obj: Any) -> None:
    write_output(path, json_text(obj).encode())


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


def read_regular(path: Path) -> bytes:
    """The bytes of a regular file. Anything else under that name (a FIFO, which would block the read
    forever, a device, a folder) is an OSError: folders bench reads may come from anywhere."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise IsADirectoryError(errno.EISDIR, "not a regular file") if stat.S_ISDIR(os.fstat(fd).st_mode) \
                else OSError(errno.EINVAL, "not a regular file")
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read()
    finally:
        os.close(fd)


def read_json(path: Path) -> dict:
    """A JSON object from ``path``; BenchError (one line naming it) when it is missing, unreadable, not
    JSON or not an object."""
    try:
        obj = json.loads(read_regular(Path(path)))
    except FileNotFoundError:
        raise BenchError(f"{path}: not found") from None
    except (OSError, ValueError) as e:
        raise BenchError(f"{path}: unreadable JSON ({first_line(e) or type(e).__name__})") from None
    if not isinstance(obj, dict):
        raise BenchError(f"{path}: unreadable JSON (not an object)")
    return obj


def ensure_writable(folder: Path) -> None:
    """Fail early, before any training, if results cannot be written."""
    with writing(folder):
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()


def contained(root: Path, path: Path) -> bool:
    """Whether ``path``, every symlink on the way followed, stays inside ``root`` (itself resolved). What
    bench reads from, writes into or deletes in a folder it was given must: a symlink out of a run folder
    (a CI artifact, a colleague's results) is never followed."""
    try:
        return Path(path).resolve().is_relative_to(Path(root).resolve())
    except (OSError, RuntimeError, ValueError):  # a symlink loop, a NUL byte
        return False


_said: set[str] = set()


def warn(text: str) -> None:
    """One warning line on stderr, once per process (a report reads a folder several times)."""
    if text not in _said:
        _said.add(text)
        print(f"bench: warning: {one_line(text)}", file=sys.stderr)


def outside(root: Path, path: Path, what: str = "skipped") -> bool:
    """True (with one warning naming it) when ``path`` leads out of ``root`` and must not be followed."""
    if contained(root, path):
        return False
    warn(f"{path} leads out of {root} (a symlink); {what}: bench never follows a link out of a folder it reads")
    return True


def refuse_links_out(folder: Path) -> None:
    """BenchError naming the first symlink below ``folder`` that leads out of it: a run folder bench is
    about to write into (a resume) must not send a checkpoint, a log or a deletion anywhere else."""
    for top, dirs, files in os.walk(folder, followlinks=False):
        for name in sorted(dirs + files):
            p = Path(top) / name
            if p.is_symlink() and not contained(folder, p):
                raise BenchError(f"{p} is a symlink leading out of {folder}; bench writes only inside the folders "
                                 "it is given: replace the link with the files themselves")


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
