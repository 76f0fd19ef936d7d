"""What every page shares: the template environment, number formats, embedded images, the index."""

from __future__ import annotations

import base64
import math
from pathlib import Path

import jinja2

from bench.core.errors import BenchError
from bench.core.names import REPORT_META, fmt_params
from bench.store.files import inside, read_json

ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("bench.report", "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
)


def uri(png: bytes) -> str:
    """A PNG as a data URI: the page carries its images."""
    return "data:image/png;base64," + base64.b64encode(png).decode()


def fmt(v: float | None, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float) and math.isinf(v):
        return "∞" if v > 0 else "−∞"
    return f"{v:.{digits}f}"


def cell(median: float, q25: float, q75: float, n: int, digits: int = 3) -> dict:
    """A table cell: the value shown, the exact value (data-value), and the spread across seeds."""
    return {"text": fmt(median, digits), "value": "" if math.isnan(median) else repr(median),
            "spread": f"{fmt(q25, digits)}–{fmt(q75, digits)}" if n > 1 and not math.isnan(q25) else ""}


def params_text(cfg: dict) -> str:
    """An optimizer entry of a run's configuration as ``key=value, ...``; per-network overrides as
    ``generator.key=value``."""
    flat = {}
    for k, v in cfg.items():
        if isinstance(v, dict):
            flat.update({f"{k}.{kk}": vv for kk, vv in v.items()})
        elif k != "type":
            flat[k] = v
    return fmt_params(flat) or "Keras defaults"


def report_dir(reports_root: Path, experiment: str, run_dir: Path) -> Path:
    """Where the report of ``run_dir`` goes: ``<reports>/<experiment>/<run-id>``, unless that holds the
    report of another results folder's run with the same id (``bench report`` of runs made elsewhere):
    then ``<run-id>-2``, ``-3``, ... so that no report overwrites another."""
    mine = str(Path(run_dir).resolve())
    for n in range(1, 1000):
        out = inside(reports_root, experiment, Path(run_dir).name + (f"-{n}" if n > 1 else ""))
        meta = out / REPORT_META
        if not meta.exists():
            return out
        try:
            if read_json(meta).get("results") == mine:
                return out
        except BenchError:
            return out  # an unreadable report of its own: rewritten
    raise BenchError(f"more than 999 reports named {Path(run_dir).name} under {reports_root}/{experiment}")
