"""``reports/index.html``: every report, newest first, and the leaderboard across experiments."""

from __future__ import annotations

from pathlib import Path

from bench.core.errors import BenchError
from bench.core.names import REPORT_META
from bench.report.html import ENV
from bench.report.leaderboard import build_leaderboard
from bench.store.files import atomic_write_bytes, outside, read_json, warn
from bench.store.load import display

# An index entry (report.json beside each report: the reports folder may come from anywhere), as the page needs it.
ENTRY = {"experiment": "", "run_id": "", "started": "", "optimizers": [], "seeds": [], "status": "", "progress": "",
         "kind": "run"}


def update_index(reports_root: Path) -> Path:
    entries = []
    for meta in reports_root.glob(f"*/*/{REPORT_META}"):
        if outside(reports_root, meta, "that report is not listed"):
            continue
        try:
            e = display(read_json(meta), ENTRY)
        except BenchError as err:
            warn(f"{err}; that report is not listed")
            continue
        e = {k: (v if isinstance(v, list) else str(v)) for k, v in e.items()}
        e["href"] = f"{meta.parent.parent.name}/{meta.parent.name}/index.html"
        entries.append(e)
    entries.sort(key=lambda e: (e["started"], e["run_id"]), reverse=True)
    board = build_leaderboard(reports_root, entries)
    html = ENV.get_template("index.html").render(entries=entries, leaderboard=board)
    atomic_write_bytes(reports_root / "index.html", html.encode())
    return reports_root / "index.html"
