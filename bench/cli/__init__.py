"""Command line: parse arguments, call one function per subcommand, map errors to exit codes.

Exit codes: 0 success; 1 a check failed (``bench check``), a run failed, or an internal error;
2 bad input (one-line message, no traceback; ``--debug`` shows it); 130 interrupted.
"""

from __future__ import annotations

import os
import sys
import traceback

from bench.cli.parser import build_parser
from bench.core import banner, process
from bench.core.errors import BenchError, describe, one_line
from bench.model.xla_cache import QUIET_TF


def check_text(argv: list[str]) -> None:
    """Every argument is text bench can record: the manifest, the reports and JSON are UTF-8, and a
    shell passes bytes that are not UTF-8 as lone surrogates that no UTF-8 file can hold."""
    for i, arg in enumerate(argv, start=1):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            shown = arg.encode("utf-8", "backslashreplace").decode()
            raise BenchError(f"argument {i} ({shown}) is not UTF-8 text; bench records every argument in UTF-8 "
                             "files: rename the file or retype the text") from None


def main(argv: list[str] | None = None) -> int:
    from bench.cli.commands import COMMANDS

    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    if not debug:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", QUIET_TF)  # TensorFlow's C++ log lines
        os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "2")
        banner.hide()  # and the banner it writes while it loads, before any setting applies
    parser = build_parser()
    try:
        check_text(argv)
        args = parser.parse_args(argv)
        args.argv = list(argv)  # recorded verbatim in the manifest, to reproduce the run
        if args.command is None:
            parser.print_help()
            return 2
        return COMMANDS[args.func](args)
    except BenchError as e:
        if debug:
            traceback.print_exc()
        print(f"bench: error: {one_line(str(e))}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug, not bad input: still one line unless --debug
        if debug:
            traceback.print_exc()
        print(f"bench: internal error: {one_line(describe(e))} (rerun with --debug for the traceback)", file=sys.stderr)
        return 1


def console() -> None:
    """The ``bench`` command and ``python -m bench``: ``main()``, then an exit without the interpreter's teardown
    (bench.core.process)."""
    ending = process.SkipTeardown()
    ending.code = main()
    sys.exit(ending.code)


__all__ = ["main", "build_parser", "console"]
