"""How a bench process ends: without the interpreter's teardown.

With TensorFlow loaded, freeing its thousands of modules and running its C++ destructors takes about 1.1 s after
a process's last line (a quarter of ``bench list``; a second at the end of every ``--jobs`` run, whose workers the
parent waits for), and bench needs none of it: what it writes is written and closed by then.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys


class SkipTeardown:
    """Made first thing in a process, its atexit handler is the first registered, so it runs last: after the other
    threads are joined and every other handler has run (Ray's and MLflow's shutdowns, the XLA cache's private
    folder's removal), it flushes what Python still buffers and ends the process with ``code``, once that is set.
    Unset, an exception is on its way out: the usual exit, traceback and all.

    logging's handler, registered when logging is imported (before this), would run after it: it is run here."""

    def __init__(self) -> None:
        self.code: int | None = None
        atexit.register(self._leave)

    def _leave(self) -> None:
        if self.code is None:
            return
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed pipe (bench list | head) or stream: nothing more to say
                pass
        os._exit(self.code)
