"""How a bench process ends: without the interpreter's teardown.

With TensorFlow loaded, freeing its thousands of modules and running its C++ destructors takes about 1.1 s after
a process's last line (a quarter of ``bench list``; a second at the end of every ``--jobs`` run, whose workers the
parent waits for), and bench needs none of it: what it writes is written and closed by then.
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import os
import sys


class SkipTeardown:
    """Its atexit handler runs after every handler registered later (atexit runs them last in, first out): made
    before anything of bench's registers one (``bench``'s console entry does it first thing; a ``--jobs`` worker
    first thing in its task), it runs after the other threads are joined and after Ray's and MLflow's shutdowns
    and the XLA cache's clean-up; then it flushes what is still buffered and ends the process with ``code``, once
    that is set. Unset, an exception is on its way out: the usual exit, traceback and all.

    Handlers registered before it would be skipped: logging's (registered when logging is imported) is run here;
    multiprocessing's, in a worker, has already run when the task returns."""

    def __init__(self) -> None:
        self.code: int | None = None
        atexit.register(self._leave)

    def _leave(self) -> None:
        if self.code is None:
            return
        code = self.code
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            if stream is None:  # started with the descriptor closed (bench list >&-)
                continue
            try:
                stream.flush()
            except (BrokenPipeError, ValueError):  # a reader that left (bench list | head), a closed stream
                pass
            except OSError as e:  # a full disk: the output is incomplete, which the exit code must say
                try:
                    os.write(2, f"bench: error: could not write the output: {e}\n".encode())
                except OSError:
                    pass
                code = code or 120  # what Python itself exits with when the final flush fails
        try:  # what C code (an extension, a user's optimizer) printed is still in the C library's buffers
            ctypes.CDLL(None).fflush(None)
        except (OSError, AttributeError):  # no C library to ask (not a POSIX system)
            pass
        os._exit(code)
