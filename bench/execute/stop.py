"""Stopping a run on SIGINT or SIGTERM, the same way for both: between two blocks of iterations.

The first signal asks every pair in this process to stop after its current block: it writes its
rows, checkpoints where it is and is marked "interrupted"; the run then says how to resume.
SLURM, Kubernetes, Ray and `timeout` send SIGTERM; a terminal sends SIGINT. A second signal stops
at once (the pair resumes from its last checkpoint).
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator

_requested: int | None = None  # the first signal received while a stop handler was installed


def requested() -> int | None:
    """The signal that asked this process to stop, or None."""
    return _requested


def exit_code(signum: int) -> int:
    return 128 + signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


def _handler(hard_on_second: bool, quiet: bool):
    def handle(signum, frame):  # noqa: ARG001
        global _requested
        if _requested is None:
            _requested = signum
            if not quiet:
                print(f"\nbench: {signal.Signals(signum).name}: stopping after the current block of iterations "
                      "(a checkpoint is written); send it again to stop at once", file=sys.stderr)
        elif hard_on_second:
            raise KeyboardInterrupt
    return handle


@contextlib.contextmanager
def graceful(hard_on_second: bool = True, quiet: bool = False) -> Iterator[None]:
    """Handle SIGINT and SIGTERM as stop requests while the block runs (main thread only; elsewhere, e.g.
    a Ray task's thread, nothing is installed). Worker processes pass ``hard_on_second=False``: their
    parent decides when to stop them at once."""
    global _requested
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handler = _handler(hard_on_second, quiet)
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        _requested = None
