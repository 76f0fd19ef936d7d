"""The leaderboard page: the newest finished run of each experiment, compared across experiments
(bench.analysis.leaderboard), from the verdict.json beside each report."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

from bench.analysis.leaderboard import enough_seeds, leaderboard, verdict_problem
from bench.core.errors import BenchError
from bench.core.names import VERDICT_FILE, now
from bench.report import plots
from bench.report.html import ENV, fmt, uri
from bench.store.files import atomic_write_bytes, atomic_write_json, outside, read_json, warn

PAGE = "leaderboard.html"
DATA = "leaderboard.json"


def newest_verdicts(reports_root: Path, entries: list[dict]) -> list[tuple[dict, dict]]:
    """(index entry, verdict) of the newest report of each experiment whose run finished with enough seeds
    for a verdict; a verdict.json that cannot be used (garbled, or from anywhere) is skipped with a warning."""
    seen, out = set(), []
    for e in entries:  # newest first
        if e.get("kind") == "sweep" or e["experiment"] in seen:
            continue
        if e.get("status") not in ("finished", "finished-with-divergence"):
            continue  # a run cut short or still going: its verdict is not final
        path = reports_root / Path(e["href"]).parent / VERDICT_FILE
        if not path.exists() or outside(reports_root, path):
            continue
        try:
            v = read_json(path)
        except BenchError as err:
            warn(f"{err}; left out of the leaderboard")
            continue
        problem = verdict_problem(v)
        if problem is not None:
            warn(f"{path}: {problem}; left out of the leaderboard")
            continue
        if not enough_seeds(v):
            continue
        out.append((e, v))
        seen.add(e["experiment"])
    return out


def render(board: dict, links: dict[str, str] | None = None) -> str:
    fig = None
    if board.get("profile"):
        fig = uri(plots.profile_figure(board["profile"], board["r_max"], plots.colours(board["optimizers"])))
    return ENV.get_template("leaderboard.html").render(
        b=board, links=links or {}, fig=fig, fmt=fmt, generated=now(), colours=plots.colours(board["optimizers"]),
        finite=math.isfinite)


def build_leaderboard(reports_root: Path, entries: list[dict]) -> str | None:
    """Write ``reports/leaderboard.html`` (and its JSON) when two or more experiments share optimizers;
    returns its href for the index, or None."""
    found = newest_verdicts(reports_root, entries)
    board = leaderboard([v for _, v in found]) if len({v["experiment"] for _, v in found}) >= 2 else {}
    if not board.get("profile"):
        for stale in (PAGE, DATA):  # its runs' reports are gone: so is the leaderboard they made
            with contextlib.suppress(FileNotFoundError):
                (reports_root / stale).unlink()
        return None
    links = {v["experiment"]: e["href"] for e, v in found}
    atomic_write_bytes(reports_root / PAGE, render(board, links).encode())
    atomic_write_json(reports_root / DATA, board)
    return PAGE
