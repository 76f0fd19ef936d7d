"""Command line: parse arguments, call one function per subcommand, map errors to exit codes.

Exit codes: 0 success; 1 a check failed (``bench check``), a run failed, or an internal error;
2 bad input (one-line message, no traceback; ``--debug`` shows it); 130 interrupted.
"""

from __future__ import annotations

import os
import sys
import traceback

from bench.cli.parser import build_parser
from bench.core.errors import BenchError, describe


def main(argv: list[str] | None = None) -> int:
    from bench.cli.commands import COMMANDS

    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    if not debug:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ INFO/WARNING lines
        os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        args.argv = list(argv)  # recorded verbatim in the manifest, to reproduce the run
        if args.command is None:
            parser.print_help()
            return 2
        return COMMANDS[args.func](args)
    except BenchError as e:
        if debug:
            traceback.print_exc()
        print(f"bench: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug, not bad input: still one line unless --debug
        if debug:
            traceback.print_exc()
        print(f"bench: internal error: {describe(e)} (rerun with --debug for the traceback)", file=sys.stderr)
        return 1


__all__ = ["main", "build_parser"]
