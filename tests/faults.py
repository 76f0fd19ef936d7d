"""Test-only worker faults, installed through bench.execute.hooks (never reachable from a user's run)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Die:
    """Kill the worker abruptly before it trains ``pair``: every time, or only the first time when a
    ``marker`` file (outside the run folder) is given to remember that it did."""

    pair: str
    marker: str | None = None

    def __call__(self, name: str) -> None:
        if name != self.pair:
            return
        if self.marker is not None:
            if Path(self.marker).exists():
                return
            Path(self.marker).touch()
        os._exit(70)  # no cleanup, no exception: what a segfault or the OOM killer looks like


@dataclass(frozen=True)
class Overwrite:
    """Replace a file's content before every pair, in the worker: the user's optimizer edited (here: broken) while
    the run goes on. A worker that read the class from the file, not from the recorded source, would fail."""

    path: str
    text: str

    def __call__(self, name: str) -> None:
        Path(self.path).write_text(self.text)
