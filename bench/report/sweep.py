"""HTML page of one sweep: sensitivity of each optimizer to its hyper-parameters, the trials,
and the tuned-versus-default comparison; the two phases get their own run reports beside it.

Reads only ``sweep.json`` and the phases' run folders.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from bench.core.errors import BenchError
from bench.core.names import PLAIN_NAME, REPORT_META, SWEEP_FILE, TUNED, fmt_params, now
from bench.report import plots
from bench.report.html import ENV, fmt, params_text, report_dir, uri
from bench.report.index import update_index
from bench.report.run import build_report
from bench.store.files import atomic_write_bytes, atomic_write_json, ensure_writable, read_json
from bench.store.load import dig, load_run


def _phase_report(sweep_dir: Path, phase_dir: str, reports_root: Path) -> str | None:
    """Build a phase's run report if it has anything to show; its href relative to the sweep page."""
    run_dir = sweep_dir / phase_dir
    if not any(run_dir.glob("runs/*/metrics.csv")):
        return None
    build_report(run_dir, reports_root)
    return f"../{phase_dir}/index.html"


def _score(s: dict | None, digits: int = 4) -> dict:
    if not s:
        return {"text": "–", "spread": "", "value": ""}
    med = s["median"]
    finite = [v for v in s["values"] if math.isfinite(v)]
    bad = len(s["values"]) - len(finite)
    spread = f"{s['q25']:.{digits}g}–{s['q75']:.{digits}g}" if len(s["values"]) > 1 and math.isfinite(s["q75"]) else ""
    return {"text": f"{med:.{digits}g}" if math.isfinite(med) else "diverged", "value": repr(med) if math.isfinite(med) else "",
            "spread": spread + (f" ({bad} of {len(s['values'])} seeds diverged or failed)" if bad else "")}


def _restore(score: dict, worst: float) -> None:
    """sweep.json is strict JSON: a diverged or failed seed's score (the worst, an infinity) is null
    there, and so are quartiles that mix infinities. Back to numbers for the page."""
    score["values"] = [worst if v is None else v for v in score["values"]]
    score["median"] = worst if score["median"] is None else score["median"]
    for key in ("q25", "q75"):
        score[key] = math.nan if score[key] is None else score[key]


def _record_problem(rec: dict) -> str:
    """What a sweep.json (it may come from anywhere) lacks that the page needs; "" when it has it all."""
    sw, trials = rec.get("sweep"), rec.get("trials")
    if not isinstance(sw, dict) or sw.get("goal") not in ("min", "max") or not isinstance(sw.get("space"), dict):
        return "no sweep table with a goal and a space"
    if not all(isinstance(v, dict) and all(isinstance(d, dict) for d in v.values()) for v in sw["space"].values()):
        return "a search space that is not a table of tables"
    if not isinstance(sw.get("criterion"), str) or not isinstance(sw.get("final_seeds"), list):
        return "no criterion or final seeds"
    if not isinstance(rec.get("experiment"), str) or not PLAIN_NAME.match(rec["experiment"]):
        return "no experiment name"
    phases = rec.get("phases")
    if not isinstance(phases, dict) or not all(isinstance(v, str) and PLAIN_NAME.match(v) for v in phases.values()) \
            or "final" not in phases:
        return "no phases"

    def score_ok(score) -> bool:
        return isinstance(score, dict) and isinstance(score.get("values"), list) and isinstance(
            score.get("status"), list) and all(k in score for k in ("median", "q25", "q75")) and all(
            v is None or isinstance(v, (int, float)) for v in [*score["values"], score["median"], score["q25"],
                                                               score["q75"]])
    if not isinstance(trials, list) or not all(
            isinstance(t, dict) and isinstance(t.get("label"), str) and isinstance(t.get("optimizer"), str)
            and isinstance(t.get("params"), dict) and isinstance(t.get("index"), int)
            and ("score" not in t or score_ok(t["score"])) for t in trials):
        return "trials that are not a list of trial records"
    if not isinstance(rec.get("best", {}), dict) or not all(isinstance(b, dict) and isinstance(b.get("trial"), str)
                                                            for b in rec.get("best", {}).values()):
        return "a best setting that is not a record"
    final = rec.get("final", {})
    if not isinstance(final, dict) or not all(isinstance(f, dict) and score_ok(f.get("default"))
                                              and score_ok(f.get("tuned")) for f in final.values()):
        return "a final phase that is not a record"
    return ""


def build_sweep_report(sweep_dir: Path, reports_root: Path) -> Path:
    sweep_dir, reports_root = Path(sweep_dir), Path(reports_root)
    rec = read_json(sweep_dir / SWEEP_FILE)
    problem = _record_problem(rec)
    if problem:
        raise BenchError(f"{sweep_dir}/{SWEEP_FILE}: not a bench sweep record ({problem})")
    sw = rec["sweep"]
    worst = math.inf if sw["goal"] == "min" else -math.inf
    for score in [t["score"] for t in rec["trials"] if "score" in t] + [
            f[kind] for f in rec.get("final", {}).values() for kind in ("default", "tuned")]:
        _restore(score, worst)
    out_dir = report_dir(reports_root, rec["experiment"], sweep_dir)
    ensure_writable(out_dir)
    links = {p: _phase_report(sweep_dir, d, reports_root) for p, d in rec["phases"].items()}
    scored = all("score" in t for t in rec["trials"])
    best = {lbl: b["trial"] for lbl, b in rec.get("best", {}).items()}
    sign = 1 if sw["goal"] == "min" else -1
    tables = []
    for label in sw["space"]:
        ts = [t for t in rec["trials"] if t["optimizer"] == label]
        if scored:
            ts = sorted(ts, key=lambda t: (sign * t["score"]["median"], t["index"]))
        tables.append({"optimizer": label, "rows": [{
            "label": t["label"], "params": fmt_params(t["params"]), "best": t["label"] == best.get(label),
            "score": _score(t.get("score")),
            "seeds": ", ".join("–" if not math.isfinite(v) else f"{v:.4g}" for v in t["score"]["values"]) if scored else "",
            "status": ", ".join(sorted(set(t["score"]["status"]))) if scored else "pending"} for t in ts]})
    compare = []
    final_data = None
    if rec.get("final"):
        final_dir = sweep_dir / rec["phases"]["final"]
        final_data = load_run(final_dir)
        cfg = dig(final_data.manifest, "config.optimizers", dict, {})
        for label, f in rec["final"].items():
            d, t = f["default"]["median"], f["tuned"]["median"]
            change = (t - d) / abs(d) * 100 if math.isfinite(d) and math.isfinite(t) and d else math.nan
            better = math.isfinite(change) and sign * (t - d) < 0
            compare.append({
                "optimizer": label, "default": _score(f["default"]), "tuned": _score(f["tuned"]),
                "default_params": params_text(dig(cfg, label, dict, {})),
                "tuned_params": params_text(dig(cfg, label + TUNED, dict, {})),
                "change": "–" if not math.isfinite(change) else f"{change:+.1f}%", "better": better,
            })
    context = {
        "rec": rec, "sw": sw, "links": links, "tables": tables, "compare": compare, "scored": scored,
        "colours": plots.colours(list(sw["space"])),
        "space": {lbl: {k: _describe(d) for k, d in dims.items()} for lbl, dims in sw["space"].items()},
        "fig_sensitivity": uri(plots.sensitivity_figure(rec["trials"], sw["space"], sw["criterion"], sw["goal"], best))
        if scored else None,
        "fig_tuned": uri(plots.tuned_figure(rec["final"], sw["criterion"], sw["goal"])) if rec.get("final") else None,
        "fig_final_losses": uri(plots.loss_figure(final_data.metrics, final_data.optimizers, final_data.steps_total))
        if final_data is not None and not final_data.metrics.empty else None,
        "table_json": json.dumps(rec.get("sweep_table", {}), indent=2),
        "generated": now(), "fmt": fmt,
    }
    html = ENV.get_template("sweep.html").render(**context)
    atomic_write_bytes(out_dir / "index.html", html.encode())
    atomic_write_json(out_dir / REPORT_META, {
        "experiment": rec["experiment"], "run_id": sweep_dir.name, "started": rec.get("started"), "kind": "sweep",
        "optimizers": list(sw["space"]), "seeds": sw["final_seeds"], "status": rec.get("status", "search"),
        "progress": f"{rec.get('status', 'search')} phase", "results": str(sweep_dir.resolve()),
    })
    update_index(reports_root)
    return out_dir / "index.html"


def _describe(d: dict) -> str:
    if d["kind"] == "choice":
        return "one of " + ", ".join(map(str, d["choices"]))
    return f"{'log-' if d['kind'] == 'log' else ''}uniform in [{d['low']:g}, {d['high']:g}]" + \
        (f", {d['points']} grid points" if d.get("points") else "")
