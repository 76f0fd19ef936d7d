"""The leaderboard page: the newest finished run of each experiment, compared across experiments
(bench.analysis.leaderboard), from the verdict.json beside each report."""

from __future__ import annotations

import math
from pathlib import Path

from bench.analysis.leaderboard import leaderboard
from bench.core.errors import BenchError
from bench.core.names import VERDICT_FILE, now
from bench.report import plots
from bench.report.html import ENV, fmt, uri
from bench.store.files import atomic_write_bytes, atomic_write_json, read_json

PAGE = "leaderboard.html"


def newest_verdicts(reports_root: Path, entries: list[dict]) -> list[tuple[dict, dict]]:
    """(index entry, verdict) of the newest report of each experiment that has a verdict."""
    seen, out = set(), []
    for e in entries:  # newest first
        if e.get("kind") == "sweep" or e["experiment"] in seen:
            continue
        path = reports_root / Path(e["href"]).parent / VERDICT_FILE
        if path.exists():
            try:
                out.append((e, read_json(path)))
                seen.add(e["experiment"])
            except BenchError:
                continue
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
    if len({v["experiment"] for _, v in found}) < 2:
        return None
    board = leaderboard([v for _, v in found])
    if not board.get("profile"):
        return None
    links = {v["experiment"]: e["href"] for e, v in found}
    atomic_write_bytes(reports_root / PAGE, render(board, links).encode())
    atomic_write_json(reports_root / "leaderboard.json", board)
    return PAGE
