"""The HTML report of one run folder: losses, D's outputs, sample quality, samples, summary, provenance."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from bench.analysis import summary as S
from bench.analysis.stats import FINAL_FRACTION, spread
from bench.analysis.verdict import Verdict, config_of, fmt_effect, metric_info, validation_of, verdict
from bench.core.config import EvalConfig
from bench.core.errors import BenchError
from bench.core.metric_table import LOSSES
from bench.core.names import REPORT_META, VERDICT_FILE, now
from bench.quality.scores import INFO, TABLE_COLUMNS
from bench.report import plots
from bench.report.html import ENV, cell, fmt, params_text, report_dir, uri
from bench.report.index import update_index
from bench.store.files import (
    atomic_write_bytes,
    atomic_write_json,
    ensure_writable,
    outside,
    read_regular,
    strict,
    warn,
)
from bench.store.images import read_array
from bench.store.layout import RunFiles
from bench.store.load import RunData, dig, display, finite_or_nan, load_run
from bench.store.logs import LEARNING_RATES, read_learning_rates

FILMSTRIP_FRAMES = 8
SAMPLE_STEP = re.compile(r"step_(\d{1,12})\.(?:png|npy|npz)$")


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
                                  digits=INFO[metric].digits)
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
                     "type": str(dig(data.manifest, f"optimizers.{label}.type", str, label)),
                     "params": _params(data.manifest, label)})
    return rows


def _params(manifest: dict, label: str) -> str:
    optimizers = dig(manifest, "config.optimizers", dict, {})
    return params_text(optimizers.get(label) if isinstance(optimizers.get(label), dict) else {})


def _unscale(points: np.ndarray, manifest: dict) -> np.ndarray:
    """Point data back in the units of the data set (training may have standardised it)."""
    sc = dig(manifest, "data.standardized", dict)
    try:
        return points * np.asarray(sc["std"], float) + np.asarray(sc["mean"], float) if sc else points
    except (KeyError, TypeError, ValueError):
        return points


# What the page shows of a manifest (an untrusted record): every field there, of the shape the template needs.
PROVENANCE = {"experiment": "", "run_id": "", "started": "", "command": "", "commands": [], "cwd": "", "identity": "",
              "git": {"commit": None, "dirty": None}, "versions": {},
              "data": {"source": "", "shape": [], "images": "", "sha256": "", "skipped_files": 0},
              "machine": {"cpu": "", "cores": "", "platform": "", "intra_op_threads": "", "inter_op_threads": "",
                          "op_determinism": "", "jit_compile": ""},
              "config": {"train": {"steps": "", "batch_size": "", "sample_count": ""}, "model": {"d_widths": ["–"]}}}


def _image(path: Path, root: Path) -> str | None:
    """A PNG of the run folder as a data URI; None (with a warning) for one that leads out of the folder or
    is not a PNG."""
    if outside(root, path):
        return None
    try:
        png = read_regular(path)
    except OSError as e:
        warn(f"{path}: unreadable ({e.strerror or e}); left out of the report")
        return None
    if not png.startswith(b"\x89PNG\r\n\x1a\n"):
        warn(f"{path}: not a PNG image; left out of the report")
        return None
    return uri(png)


def _frames(data: RunData, label: str, seed: int, kind: str) -> dict[int, Path]:
    """step -> file of one run's saved samples: PNG grids, raw point arrays, or D-feature arrays."""
    folder = RunFiles.of(data.run_dir, label, seed).samples
    if not folder.is_dir() or outside(data.run_dir, folder):
        return {}
    pattern = {"images": "step_*.png", "points": "step_*.npy", "features": "dfeat_step_*.npz"}[kind]
    return {int(m.group(1)): p for p in folder.glob(pattern) if (m := SAMPLE_STEP.search(p.name))}


def _filmstrips(data: RunData, kind: str) -> list[dict]:
    """Per seed: the same fixed latents at the same steps, one row per optimizer."""
    real_points = None
    if kind == "points":
        real_points = read_array(data.run_dir / "real.npy", data.run_dir)
        if real_points is None:
            return []
        real_points = _unscale(real_points, data.manifest)
    strips = []
    for seed in data.seeds:
        per_opt = {label: _frames(data, label, seed, kind) for label in data.optimizers}
        steps_avail = sorted(set().union(*per_opt.values()))
        if not steps_avail:
            continue
        pick = sorted({steps_avail[int(round(i))] for i in np.linspace(0, len(steps_avail) - 1, min(FILMSTRIP_FRAMES, len(steps_avail)))})
        lims = None
        if kind == "features":  # one scale per seed so frames compare
            pts = [read_array(per_opt[lb][st], data.run_dir, k) for lb in data.optimizers for st in pick if st in per_opt[lb]
                   for k in ("real", "fake")]
            pts = [p[np.isfinite(p).all(axis=1)] for p in pts if p is not None and p.shape[1] == 2]
            if not pts:
                continue
            lims = plots.limits(np.concatenate(pts))
        elif kind == "points":
            lims = plots.limits(real_points)
        rows = []
        for label in data.optimizers:
            frames = []
            for st in pick:
                path = per_opt[label].get(st)
                src = None
                if path is None:
                    pass
                elif kind == "images":
                    src = _image(path, data.run_dir)
                elif kind == "points":
                    fake = read_array(path, data.run_dir)
                    if fake is not None and fake.shape[1] == real_points.shape[1]:
                        src = uri(plots.scatter_png(real_points, _unscale(fake, data.manifest), lims=lims))
                else:
                    real_f, fake_f = read_array(path, data.run_dir, "real"), read_array(path, data.run_dir, "fake")
                    if real_f is not None and fake_f is not None and real_f.shape[1] == fake_f.shape[1] == 2:
                        src = uri(plots.scatter_png(real_f, fake_f, ("D features of real", "of generated"), lims))
                frames.append({"step": st, "src": src})
            rows.append({"optimizer": label, "frames": frames})
        strips.append({"seed": seed, "steps": pick, "rows": rows})
    return strips


def _eval_context(m: dict) -> dict:
    """The evaluation settings of a run (defaults for manifests written before they existed)."""
    cfg = {**dataclasses.asdict(EvalConfig()), **dig(m, "config.eval", dict, {})}
    cfg["real"] = dig(m, "eval.real_images", int, cfg["real"])  # what was used, not what was asked
    return cfg


def _validation_context(manifest: dict) -> dict | None:
    """The run's validation table (an untrusted record) as the page shows it: metric x check, pass or fail."""
    table = validation_of(manifest)
    if table is None or not table["metrics"]:
        return None
    rows, checks = [], []
    for metric, entry in table["metrics"].items():
        cells = dig(entry, "checks", dict, {})
        checks = checks or list(cells)
        rows.append({"metric": str(metric), "passed": bool(dig(entry, "passed", bool, False)),
                     "cells": [{"pass": bool(dig(cells, f"{c}.pass", bool, False)),
                                "detail": str(dig(cells, f"{c}.detail", str, ""))} for c in checks]})
    return {"rows": rows, "checks": checks, "passed": [str(p) for p in table["passed"]],
            "rule": str(table.get("rule", "")), "images": table.get("images", "")}


def _verdict_context(v: Verdict, optimizers: list[str], manifest: dict) -> dict:
    """The verdict as the page shows it: its sentences, every comparison, time to target, the over-training plot,
    the validation table and whether the budget sufficed."""
    rows = []
    for c in sorted(v.comparisons, key=lambda c: not c.confirmatory):
        info = metric_info(c.metric, {})
        rows.append({"metric": info.title, "key": c.metric, "a": c.a, "b": c.b, "label": c.label,
                     "confirmatory": c.confirmatory, "validated": c.validated,
                     "effect": f"{fmt_effect(c.estimate, c.log_ratio)} "
                     f"[{fmt_effect(c.ci[0], c.log_ratio)}, {fmt_effect(c.ci[1], c.log_ratio)}]",
                     "p_raw": f"{c.p_raw:.3g}", "p_holm": f"{c.p_holm:.3g}",
                     "p_improvement": f"{c.p_improvement:.2f} [{c.p_improvement_ci[0]:.2f}, {c.p_improvement_ci[1]:.2f}]"
                     if c.seeds else "–", "seeds": len(c.seeds), "wins": c.wins})
    ttt = v.time_to_target
    fig = None
    if v.over_training and any(p["rows"] for p in v.over_training):
        info = metric_info(v.primary, {})
        tail = [p["tail_from"] for p in v.budget.get("pairs", [])]
        fig = uri(plots.over_training_figure(v.over_training, info.title, info.goal, plots.colours(optimizers),
                                             min(tail) if tail else None))
    reach = ""
    if v.primary:
        info = metric_info(v.primary, {})
        reach = "≤" if info.goal == "min" and info.ideal is None else "≥" if info.ideal is None else "as close as"
    return {"sentences": v.sentences, "rows": rows, "primary": metric_info(v.primary, {}).title if v.primary else None,
            "alpha": v.config["alpha"], "seeds": len(v.seeds), "ttt": ttt, "fig": fig,
            "pairs": len(v.primary_comparisons()), "reach": reach, "validated": bool(v.validation.get("passed")),
            "validation": _validation_context(manifest),
            "provisional": "; ".join(v.budget.get("reasons", [])) if v.budget.get("provisional") else ""}


def _learning_rates(data: RunData) -> str | None:
    """The schedules' learning rates against the iteration (None: every optimizer at a constant rate)."""
    path = data.run_dir / LEARNING_RATES
    if not path.exists() or outside(data.run_dir, path):
        return None
    try:
        rates = read_learning_rates(path)
    except BenchError as e:
        warn(f"{e}; no learning-rate plot")
        return None
    if rates is None or not len(rates):
        return None
    return uri(plots.learning_rate_figure(rates, plots.colours(data.optimizers)))


def _eval_share(data: RunData) -> str:
    train = sum(finite_or_nan(st.get("train_seconds")) for st in data.status.values() if st.get("train_seconds"))
    ev = sum(finite_or_nan(st.get("eval_seconds")) for st in data.status.values() if st.get("eval_seconds"))
    train, ev = (x if math.isfinite(x) else 0.0 for x in (train, ev))
    return f"{ev:.1f} s scoring vs {train:.1f} s training ({100 * ev / train:.0f}%)" if train and ev else ""


def build_report(run_dir: Path, reports_root: Path) -> Path:
    """Write ``<reports_root>/<experiment>/<run-id>/index.html`` and refresh the index."""
    data = load_run(Path(run_dir))
    if data.metrics.empty:
        raise BenchError(f"{run_dir}: no metrics yet; nothing to report")
    m = data.manifest
    out_dir = report_dir(Path(reports_root), data.experiment, Path(run_dir))
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
    qmetrics = [m for m in INFO if len(data.quality) and m in set(data.quality.metric)]
    points = dig(m, "data.kind") == "points"
    real = Path(run_dir) / "real.png"
    real_uri = _image(real, data.run_dir) if real.exists() else None
    if points and (Path(run_dir) / "real.npy").exists():
        real_points = read_array(Path(run_dir) / "real.npy", data.run_dir)
        real_uri = uri(plots.scatter_png(_unscale(real_points, m), None)) if real_points is not None else None
    done = int(data.metrics.step.max())
    v = None if data.state in ("in progress", "interrupted") else verdict(data, config_of(m))
    shown = display(m, PROVENANCE)
    if "finished" in m:
        shown["finished"] = display(m["finished"], "")
    context = {
        "m": shown,
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
        "quality_about": [(INFO[m].header, INFO[m].about) for m in qmetrics],  # what each scored metric measures
        "fig_lr": _learning_rates(data),
        "quality_cols": [(m, INFO[m].header) for m in quality_columns(data)],
        "eval": _eval_context(m),
        "eval_share": _eval_share(data),
        "filmstrips": _filmstrips(data, "points" if points else "images"),
        "feature_strips": _filmstrips(data, "features"),
        "points": points,
        "real": real_uri,
        "config_json": json.dumps(strict(m.get("config", {})), indent=2, default=str),
        "generated": now(),
        "thresholds": {"d_wins": S.D_WINS_LOSS, "d_wins_frac": int(S.D_WINS_FRACTION * 100), "collapse": S.COLLAPSE_RATIO},
        "verdict": _verdict_context(v, data.optimizers, m) if v is not None else None,
    }
    html = ENV.get_template("report.html").render(**context)
    atomic_write_bytes(out_dir / "index.html", html.encode())
    if v is not None:
        atomic_write_json(out_dir / VERDICT_FILE, v.to_json())
    atomic_write_json(out_dir / REPORT_META, {
        "experiment": data.experiment, "run_id": Path(run_dir).name, "started": display(m.get("started"), ""),
        "optimizers": data.optimizers, "seeds": data.seeds, "status": data.state, "progress": f"{done}/{steps}",
        "results": str(Path(run_dir).resolve()),
    })
    update_index(Path(reports_root))
    return out_dir / "index.html"
