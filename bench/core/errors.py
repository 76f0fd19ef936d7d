"""The exceptions the CLI turns into a one-line message and an exit code."""

from __future__ import annotations

import unicodedata


class BenchError(Exception):
    """A problem with the user's input or environment, stated in one line.

    ``exit_code`` lets callers distinguish usage errors (2) from other failures.
    """

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


def first_line(e: BaseException) -> str:
    """The first line of an exception's message ("" when it has none): one-line reports of errors
    raised by other libraries, whose messages often run to many lines."""
    text = str(e).strip()
    return text.splitlines()[0] if text else ""


def describe(e: BaseException) -> str:
    """``Type: first line`` of an exception, for reports of failures that are not bench's own."""
    msg = first_line(e)
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


def one_line(text: str) -> str:
    """``text`` safe to print as one line: control characters (a newline in a user's key, say) escaped."""
    return "".join(c.encode("unicode_escape").decode() if unicodedata.category(c).startswith("C") else c
                   for c in text)
