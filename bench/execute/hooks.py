"""Test hooks: callables a test installs to make a worker misbehave (die, stall) before a pair.

Empty in every user's run: nothing reads the environment or leaves files behind. The executors
pass the installed hooks to their workers explicitly (pickled by reference for ``--jobs`` workers,
by cloudpickle for Ray tasks), so a hook reaches exactly the workers of the run that installed it.
"""

from __future__ import annotations

from collections.abc import Callable

# each is called with the pair's name ("adam-seed1") in the worker, right before it trains the pair
BEFORE_PAIR: list[Callable[[str], None]] = []


def before_pair(name: str, hooks: list[Callable[[str], None]] | None = None) -> None:
    for hook in BEFORE_PAIR if hooks is None else hooks:
        hook(name)
