"""``reports/index.html``: every report, newest first, and the leaderboard across experiments."""

from __future__ import annotations

from pathlib import Path

from bench.core.errors import BenchError
from bench.core.names import REPORT_META
from bench.report.html import ENV
from bench.report.leaderboard import build_leaderboard
from bench.store.files import atomic_write_bytes, read_json


def update_index(reports_root: Path) -> Path:
    entries = []
    for meta in reports_root.glob(f"*/*/{REPORT_META}"):
        try:
            e = read_json(meta)
        except BenchError:
            continue
        e["href"] = f"{meta.parent.parent.name}/{meta.parent.name}/index.html"
        entries.append(e)
    entries.sort(key=lambda e: (e.get("started") or "", e["run_id"]), reverse=True)
    board = build_leaderboard(reports_root, entries)
    html = ENV.get_template("index.html").render(entries=entries, leaderboard=board)
    atomic_write_bytes(reports_root / "index.html", html.encode())
    return reports_root / "index.html"
