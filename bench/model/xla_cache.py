"""TensorFlow's persistent XLA compilation cache, made safe to share between processes and runs.

TensorFlow 2.21 can save each XLA-compiled step and load it in the next process instead of compiling
again (``TF_XLA_FLAGS=--tf_xla_persistent_cache_directory``): a ``--jobs`` worker, a Ray task, a resumed
run or the next ``bench run`` then skip the compile (about 4 s of 8 s per optimizer on the reference
model). But TensorFlow fails the step, and does not recompile, on an entry it cannot read; and its key
covers the compiled program but neither TensorFlow's version nor the CPU's features. So:

- the shared cache lives in bench's cache folder under a key of the TensorFlow and Keras versions, the
  CPU model and its instruction-set flags, and any XLA flags the user set;
- each process hands TensorFlow a private folder, filled with hard links to the shared entries whose
  checksum verifies; whatever TensorFlow compiles there is published to the shared folder atomically
  (link, rename, then the checksum beside it), at the end of every pair and when the process exits;
- a torn, corrupt or foreign file in the shared folder is never handed to TensorFlow: the step is
  compiled again and the entry replaced.

``BENCH_XLA_CACHE=off`` turns it off; a persistent cache the user configured in ``TF_XLA_FLAGS`` is left alone.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import importlib.metadata as md
import os
import platform
import shutil
from pathlib import Path

from bench.core.names import cache_dir

FORMAT = 1
# TensorFlow's C++ log level in quiet (non --debug) runs: 3 hides ERROR lines as well, among them one
# harmless line per cached step TensorFlow loads (it tries each entry as text before binary). Errors that
# matter reach Python as exceptions.
QUIET_TF = "3"
_private: Path | None = None
_shared: Path | None = None
_shared_ok: set[str] = set()  # entries of the shared folder this process has verified or published


def _cpu() -> str:
    """The CPU model and its instruction-set flags: XLA compiles for the features it finds."""
    try:
        info = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.machine() + platform.processor()
    pick = [ln.split(":", 1)[1].strip() for ln in info if ln.startswith(("model name", "flags", "Features"))]
    return platform.machine() + "|" + "|".join(dict.fromkeys(pick))


def key(salt: str = "") -> str:
    parts = [str(FORMAT), _cpu(), os.environ.get("TF_XLA_FLAGS", ""), os.environ.get("XLA_FLAGS", ""), salt]
    for dist in ("tensorflow-cpu", "tensorflow", "keras"):
        with contextlib.suppress(md.PackageNotFoundError):
            parts.append(f"{dist}={md.version(dist)}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:20]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _verified(entry: Path) -> bool:
    try:
        return (entry.parent / (entry.name + ".sha256")).read_text().strip() == _digest(entry)
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def enable(salt: str = "") -> Path | None:
    """Point this process's TensorFlow at a private cache folder filled from the shared cache. Call it
    before the process's first XLA compile (TensorFlow reads its XLA flags then); returns the shared folder.
    ``salt``: the digest of the user's code a run trains (bench.model.optimizers.sources_sha): such a run gets a
    shared folder of its own, so a step compiled from other code is never served (TensorFlow keys entries by the
    compiled program, and two versions of a user's optimizer may compile to the same one under one name)."""
    global _private, _shared
    if _shared is not None:
        return _shared
    flags = os.environ.get("TF_XLA_FLAGS", "")
    if os.environ.get("BENCH_XLA_CACHE", "on").lower() in ("off", "0", "no") or "persistent_cache_directory" in flags:
        return None
    try:
        shared = cache_dir() / "xla" / key(salt)
        shared.mkdir(parents=True, exist_ok=True)
        for stale in shared.glob(".proc-*"):  # private folders of processes that are gone
            pid = stale.name.removeprefix(".proc-")
            if not pid.isdigit() or not _alive(int(pid)):
                shutil.rmtree(stale, ignore_errors=True)
        private = shared / f".proc-{os.getpid()}"
        shutil.rmtree(private, ignore_errors=True)
        private.mkdir()
        for entry in shared.glob("*.pb"):
            if _verified(entry):
                os.link(entry, private / entry.name)
                _shared_ok.add(entry.name)
            else:  # torn, corrupt or not ours: compiled again, and replaced when published
                with contextlib.suppress(OSError):
                    entry.unlink()
    except OSError:
        return None  # an unwritable cache folder only costs compile time
    os.environ["TF_XLA_FLAGS"] = f"{flags} --tf_xla_persistent_cache_directory={private}".strip()
    _private, _shared = private, shared
    atexit.register(_close)
    return shared


def publish() -> int:
    """Share what this process compiled; returns how many entries were published."""
    if _private is None or _shared is None:
        return 0
    published = 0
    for entry in _private.glob("*.pb"):
        target = _shared / entry.name
        if entry.name in _shared_ok:  # verified or published by this process already: not hashed again
            continue
        if target.exists() and _verified(target):
            _shared_ok.add(entry.name)
            continue
        try:
            tmp = _shared / f".{entry.name}.{os.getpid()}.tmp"
            tmp.unlink(missing_ok=True)
            os.link(entry, tmp)  # the entry is whole: TensorFlow renamed it into place once written
            os.replace(tmp, target)
            side = _shared / f".{entry.name}.sha256.{os.getpid()}.tmp"
            side.write_text(_digest(target) + "\n")
            os.replace(side, _shared / (entry.name + ".sha256"))
            _shared_ok.add(entry.name)
            published += 1
        except OSError:
            continue
    return published


def _close() -> None:
    publish()
    if _private is not None:
        shutil.rmtree(_private, ignore_errors=True)
