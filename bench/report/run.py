"""The HTML report of one run folder: losses, D's outputs, sample quality, samples, summary, provenance."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from bench.analysis import summary as S
from bench.analysis.stats import FINAL_FRACTION, spread
from bench.analysis.verdict import Verdict, config_of, fmt_effect, metric_info, verdict
from bench.core.config import EvalConfig
from bench.core.errors import BenchError
from bench.core.metric_table import LOSSES, QUALITY, TABLE_COLUMNS
from bench.core.names import REPORT_META, VERDICT_FILE, now
from bench.report import plots
from bench.report.html import ENV, cell, fmt, params_text, report_dir, uri
from bench.report.index import update_index
from bench.store.files import atomic_write_bytes, atomic_write_json, ensure_writable
from bench.store.layout import RunFiles
from bench.store.load import RunData, load_run

FILMSTRIP_FRAMES = 8


def quality_columns(data: RunData) -> list[str]:
    present = set(data.quality.metric) if len(data.quality) else set()
    return [m for m in TABLE_COLUMNS if m in present]


def summary_rows(data: RunData, runs: dict[str, list[S.RunSummary]]) -> list[dict]:
    rows = []
    for label in data.optimizers:
        rs = runs[label]
        n = len(rs)
        cells = {loss: cell(*spread([r.final[loss] for r in rs]), n) for loss in LOSSES}
        cells["ms_per_step"] = cell(*spread([r.ms_per_step for r in rs]), n, digits=1)
        cells["diversity"] = cell(*spread([r.diversity for r in rs]), n, digits=2)
        for metric in quality_columns(data):
            cells[metric] = cell(*spread([r.quality.get(metric, math.nan) for r in rs]), n,
                                  digits=QUALITY[metric].digits)
        flags = []
        div = [r for r in rs if r.status == "diverged"]
        if div:
            flags.append(("bad", f"diverged in {len(div)}/{n} seeds (step {', '.join(str(r.diverged_at) for r in div)})"))
        wins = [r for r in rs if r.d_wins_at is not None]
        if wins:
            flags.append(("warn", f"D wins outright in {len(wins)}/{n} (from step {min(r.d_wins_at for r in wins)})"))
        coll = [r for r in rs if r.collapsed]
        if coll:
            flags.append(("warn", f"mode collapse suspected in {len(coll)}/{n}"))
        unfinished = [r for r in rs if r.status not in ("finished", "diverged")]
        if unfinished:
            flags.append(("warn", f"{len(unfinished)}/{n} not finished ({', '.join(sorted({r.status for r in unfinished}))})"))
        rows.append({"optimizer": label, "seeds": n, "cells": cells, "flags": flags,
                     "type": data.manifest.get("optimizers", {}).get(label, {}).get("type", label),
                     "params": _params(data.manifest, label)})
    return rows


def _params(manifest: dict, label: str) -> str:
    return params_text(manifest.get("config", {}).get("optimizers", {}).get(label, {}))


def _unscale(points: np.ndarray, manifest: dict) -> np.ndarray:
    """Point data back in the units of the data set (training may have standardised it)."""
    sc = manifest.get("data", {}).get("standardized")
    return points * np.asarray(sc["std"]) + np.asarray(sc["mean"]) if sc else points


def _frames(data: RunData, label: str, seed: int, kind: str) -> dict[int, Path]:
    """step -> file of one run's saved samples: PNG grids, raw point arrays, or D-feature arrays."""
    folder = RunFiles.of(data.run_dir, label, seed).samples
    pattern = {"images": "step_*.png", "points": "step_*.npy", "features": "dfeat_step_*.npz"}[kind]
    return {int(p.stem.rsplit("_", 1)[1]): p for p in folder.glob(pattern)} if folder.exists() else {}


def _filmstrips(data: RunData, kind: str) -> list[dict]:
    """Per seed: the same fixed latents at the same steps, one row per optimizer."""
    real_points = None
    if kind == "points":
        real_points = _unscale(np.load(data.run_dir / "real.npy"), data.manifest)
    strips = []
    for seed in data.seeds:
        per_opt = {label: _frames(data, label, seed, kind) for label in data.optimizers}
        steps_avail = sorted(set().union(*per_opt.values()))
        if not steps_avail:
            continue
        pick = sorted({steps_avail[int(round(i))] for i in np.linspace(0, len(steps_avail) - 1, min(FILMSTRIP_FRAMES, len(steps_avail)))})
        lims = None
        if kind == "features":  # one scale per seed so frames compare
            pts = [np.load(per_opt[lb][st])[k] for lb in data.optimizers for st in pick if st in per_opt[lb] for k in ("real", "fake")]
            lims = plots.limits(np.concatenate([p[np.isfinite(p).all(axis=1)] for p in pts]))
        elif kind == "points":
            lims = plots.limits(real_points)
        rows = []
        for label in data.optimizers:
            frames = []
            for st in pick:
                path = per_opt[label].get(st)
                if path is None:
                    src = None
                elif kind == "images":
                    src = uri(path.read_bytes())
                elif kind == "points":
                    src = uri(plots.scatter_png(real_points, _unscale(np.load(path), data.manifest), lims=lims))
                else:
                    with np.load(path) as z:
                        src = uri(plots.scatter_png(z["real"], z["fake"], ("D features of real", "of generated"), lims))
                frames.append({"step": st, "src": src})
            rows.append({"optimizer": label, "frames": frames})
        strips.append({"seed": seed, "steps": pick, "rows": rows})
    return strips


def _eval_context(m: dict) -> dict:
    """The evaluation settings of a run (defaults for manifests written before they existed)."""
    cfg = {**dataclasses.asdict(EvalConfig()), **m.get("config", {}).get("eval", {})}
    cfg["real"] = m.get("eval", {}).get("real_images", cfg["real"])  # what was used, not what was asked
    return cfg


def _verdict_context(v: Verdict, optimizers: list[str]) -> dict:
    """The verdict as the page shows it: its sentences, every comparison, time to target, the over-training plot."""
    rows = []
    for c in sorted(v.comparisons, key=lambda c: not c.confirmatory):
        info = metric_info(c.metric, {})
        rows.append({"metric": info.title, "key": c.metric, "a": c.a, "b": c.b, "label": c.label,
                     "confirmatory": c.confirmatory, "effect": f"{fmt_effect(c.estimate, c.log_ratio)} "
                     f"[{fmt_effect(c.ci[0], c.log_ratio)}, {fmt_effect(c.ci[1], c.log_ratio)}]",
                     "p_raw": f"{c.p_raw:.3g}", "p_holm": f"{c.p_holm:.3g}",
                     "p_improvement": f"{c.p_improvement:.2f} [{c.p_improvement_ci[0]:.2f}, {c.p_improvement_ci[1]:.2f}]"
                     if c.seeds else "–", "seeds": len(c.seeds), "wins": c.wins})
    ttt = v.time_to_target
    fig = None
    if v.over_training and any(p["rows"] for p in v.over_training):
        info = metric_info(v.primary, {})
        fig = uri(plots.over_training_figure(v.over_training, info.title, info.goal, plots.colours(optimizers)))
    return {"sentences": v.sentences, "rows": rows, "primary": metric_info(v.primary, {}).title if v.primary else None,
            "alpha": v.config["alpha"], "reps": v.config["bootstrap"]["reps"], "seeds": len(v.seeds),
            "ttt": ttt, "fig": fig, "pairs": len(v.primary_comparisons()),
            "reach": ("≤" if metric_info(v.primary, {}).goal == "min" else "≥") if v.primary else ""}


def _eval_share(data: RunData) -> str:
    train = sum(st.get("train_seconds") or 0 for st in data.status.values())
    ev = sum(st.get("eval_seconds") or 0 for st in data.status.values())
    return f"{ev:.1f} s scoring vs {train:.1f} s training ({100 * ev / train:.0f}%)" if train and ev else ""


def build_report(run_dir: Path, reports_root: Path) -> Path:
    """Write ``<reports_root>/<experiment>/<run-id>/index.html`` and refresh the index."""
    data = load_run(Path(run_dir))
    if data.metrics.empty:
        raise BenchError(f"{run_dir}: no metrics yet; nothing to report")
    m = data.manifest
    out_dir = report_dir(Path(reports_root), m["experiment"], Path(run_dir))
    ensure_writable(out_dir)
    runs = S.summarize(data)
    steps = data.steps_total
    divs = {}
    if data.quality.empty:  # no quality.csv (eval off): diversity from the sample grids instead
        for label in data.optimizers:
            frames = [S.grid_diversity(data.run_dir, label, s).assign(seed=s) for s in data.seeds]
            frames = [f for f in frames if len(f)]
            if frames:
                divs[label] = pd.concat(frames, ignore_index=True)
    qmetrics = [m for m in QUALITY if len(data.quality) and m in set(data.quality.metric)]
    points = m.get("data", {}).get("kind") == "points"
    real = Path(run_dir) / "real.png"
    real_uri = uri(real.read_bytes()) if real.exists() else None
    if points and (Path(run_dir) / "real.npy").exists():
        real_uri = uri(plots.scatter_png(_unscale(np.load(Path(run_dir) / "real.npy"), m), None))
    done = int(data.metrics.step.max())
    v = None if data.state in ("in progress", "interrupted") else verdict(data, config_of(m))
    context = {
        "m": m,
        "state": data.state,
        "progress": f"{done}/{steps}",
        "optimizers": data.optimizers,
        "colours": plots.colours(data.optimizers),
        "seeds": data.seeds,
        "rows": summary_rows(data, runs),
        "runs": [r for label in data.optimizers for r in runs[label]],
        "fmt": fmt,
        "final_pct": int(FINAL_FRACTION * 100),
        "span": plots.smoothing_span(steps),
        "fig_loss_step": uri(plots.loss_figure(data.metrics, data.optimizers, steps, "step")),
        "fig_loss_time": uri(plots.loss_figure(data.metrics, data.optimizers, steps, "time")),
        "fig_d": uri(plots.d_output_figure(data.metrics, data.optimizers, steps)),
        "fig_div": uri(plots.diversity_figure(divs, data.optimizers, S.COLLAPSE_RATIO)) if divs else None,
        "fig_quality": uri(plots.quality_figure(data.quality, data.optimizers, qmetrics)) if qmetrics else None,
        "quality_cols": [(m, QUALITY[m].header) for m in quality_columns(data)],
        "eval": _eval_context(m),
        "eval_share": _eval_share(data),
        "filmstrips": _filmstrips(data, "points" if points else "images"),
        "feature_strips": _filmstrips(data, "features"),
        "points": points,
        "real": real_uri,
        "config_json": json.dumps(m.get("config", {}), indent=2),
        "generated": now(),
        "thresholds": {"d_wins": S.D_WINS_LOSS, "d_wins_frac": int(S.D_WINS_FRACTION * 100), "collapse": S.COLLAPSE_RATIO},
        "verdict": _verdict_context(v, data.optimizers) if v is not None else None,
    }
    html = ENV.get_template("report.html").render(**context)
    atomic_write_bytes(out_dir / "index.html", html.encode())
    if v is not None:
        atomic_write_json(out_dir / VERDICT_FILE, v.to_json())
    atomic_write_json(out_dir / REPORT_META, {
        "experiment": m["experiment"], "run_id": Path(run_dir).name, "started": m.get("started"),
        "optimizers": data.optimizers, "seeds": data.seeds, "status": data.state, "progress": f"{done}/{steps}",
        "results": str(Path(run_dir).resolve()),
    })
    update_index(Path(reports_root))
    return out_dir / "index.html"
