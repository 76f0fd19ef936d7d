"""Figures for the report (matplotlib, Agg), returned as PNG bytes.

Curves are computed from every stored row and only *drawn* downsampled (at most
MAX_POINTS per line), so 5000 iterations x 5 seeds stay light in the page.
"""

from __future__ import annotations

import io
import math

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench.analysis.stats import band, spread  # noqa: E402
from bench.core.metric_table import LOSS_TITLES, LOSSES  # noqa: E402
from bench.quality.scores import INFO  # noqa: E402

MAX_POINTS = 600
# Fixed colours: the same optimizer has the same colour in every report.
KNOWN_COLOURS = {"sgd": "#1f77b4", "rmsprop": "#ff7f0e", "adam": "#2ca02c", "adamw": "#d62728", "nadam": "#9467bd",
                 "adamax": "#8c564b", "adagrad": "#e377c2", "adadelta": "#7f7f7f", "ftrl": "#bcbd22", "lion": "#17becf"}
EXTRA = ["#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354"]
LN2 = math.log(2)


def colours(labels: list[str]) -> dict[str, str]:
    out, spare = {}, iter(EXTRA * 4)
    used = set()
    for label in labels:
        c = KNOWN_COLOURS.get(label)
        if c is None or c in used:
            c = next(spare)
        used.add(c)
        out[label] = c
    return out


def smoothing_span(steps: int) -> int:
    """EMA span: about 2% of the run, at least 5 steps."""
    return max(5, int(steps * 0.02))


def _thin(x: np.ndarray) -> np.ndarray:
    if len(x) <= MAX_POINTS:
        return np.arange(len(x))
    return np.unique(np.linspace(0, len(x) - 1, MAX_POINTS).round().astype(int))


def curves(df: pd.DataFrame, column: str, span: int) -> pd.DataFrame:
    """Per step: raw median across seeds, smoothed median, and IQR of the smoothed per-seed curves."""
    # unstack, not pivot_table: pivot_table silently drops a seed whose values are all NaN
    wide = df.set_index(["step", "seed"])[column].astype(float).replace([np.inf, -np.inf], np.nan).unstack("seed").sort_index()
    smooth = wide.ewm(span=span, ignore_na=True).mean()
    med, q25, q75 = band(smooth, axis=1)
    return pd.DataFrame({
        "raw": wide.median(axis=1),
        "smooth": med,
        "q25": q25,
        "q75": q75,
        "elapsed": df.set_index(["step", "seed"]).elapsed_seconds.unstack("seed").sort_index().median(axis=1),
        "seeds": wide.notna().sum(axis=1),
    })


def _layout(fig, legend_rows: int = 0) -> None:
    """Margins in inches, from what the panels show, instead of measuring every text (``tight_layout``,
    ``bbox_inches="tight"``): each of those draws the figure's texts once more, about 40% of a report's
    figure time. Room for: a figure legend above the panels (``legend_rows``), a title above each row, tick
    labels and an x label below it, tick labels (and a y label) left of each panel."""
    width, height = fig.get_size_inches()
    axes = [ax for ax in fig.axes if ax.get_visible()]
    if not axes:
        return
    rows, cols = axes[0].get_subplotspec().get_gridspec().get_geometry()
    text = 0.12 if width < 3 else 0.19  # one line of text, inches (the small scatter's 6 pt tick labels, or 10 pt)
    titled = any(ax.get_title() for ax in axes)
    ylabel = max((ax.get_ylabel().count("\n") + 1 for ax in axes if ax.get_ylabel()), default=0)
    top = 0.08 + (0.28 if titled else 0) + 0.3 * legend_rows
    ticks = max(max((t.get_text().count("\n") + 1 for t in ax.get_xticklabels()), default=1) for ax in axes)
    bottom = 0.1 + text * ticks + (0.22 if any(ax.get_xlabel() for ax in axes) else 0)
    left = 0.12 + 4 * text * 0.75 + 0.2 * ylabel  # tick labels of up to 4-5 characters, then the y label's lines
    between = left if any(ax.get_ylabel() for ax in axes[1:]) else 0.12 + 3 * text  # the next panel's ticks
    wspace = between / max(0.5, (width - left - 0.15 - (cols - 1) * between) / cols)
    hspace = (bottom + top - 0.3 * legend_rows) / max(0.5, (height - top - bottom - (rows - 1) * (bottom + 0.3)) / rows)
    fig.subplots_adjust(left=left / width, right=1 - 0.15 / width, top=1 - top / height, bottom=bottom / height,
                        wspace=wspace, hspace=hspace)


def _figure_legend(fig, ax) -> int:
    """``ax``'s legend entries above the panels, in as many columns as fit the figure's width; returns its rows."""
    handles, labels = ax.get_legend_handles_labels()
    if not labels:
        return 0
    entry = 0.75 + 0.085 * max(len(label) for label in labels)  # inches: the line sample, the gap, the label at 10 pt
    ncol = max(1, min(len(labels), int((fig.get_size_inches()[0] - 0.3) // entry)))
    fig.legend(handles, labels, loc="upper center", ncol=ncol, bbox_to_anchor=(0.5, 1.0), frameon=False)
    return math.ceil(len(labels) / ncol)


def _png(fig, legend_rows: int = 0) -> bytes:
    _layout(fig, legend_rows)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _draw(ax, c: pd.DataFrame, x: str, colour: str, label: str) -> None:
    c = c.replace([np.inf, -np.inf], np.nan)
    idx = _thin(c.index.to_numpy())
    xs = (c.index.to_numpy() if x == "step" else c.elapsed.to_numpy())[idx]
    ax.plot(xs, c.raw.to_numpy()[idx], color=colour, alpha=0.18, lw=0.8)
    ax.plot(xs, c.smooth.to_numpy()[idx], color=colour, lw=1.8, label=label)
    if (c.seeds > 1).any():
        ax.fill_between(xs, c.q25.to_numpy()[idx], c.q75.to_numpy()[idx], color=colour, alpha=0.18, lw=0)


def loss_figure(metrics: pd.DataFrame, optimizers: list[str], steps: int, x: str = "step") -> bytes:
    col = colours(optimizers)
    span = smoothing_span(steps)
    fig, axes = plt.subplots(1, 3, figsize=(13.5, 3.8), sharex=True)
    for ax, loss in zip(axes, LOSSES, strict=True):
        for label in optimizers:
            df = metrics[metrics.optimizer == label]
            if len(df):
                _draw(ax, curves(df, loss, span), x, col[label], label)
        ax.axhline(LN2, color="0.35", ls="--", lw=0.9, label="log 2 (equilibrium)")
        ax.set_title(LOSS_TITLES[loss])
        ax.set_xlabel("iteration" if x == "step" else "wall-clock seconds")
        ax.grid(alpha=0.25)
        finite = metrics[loss].replace([np.inf, -np.inf], np.nan).dropna()
        if len(finite):  # keep one blow-up from flattening every other curve
            ax.set_ylim(0, max(LN2 * 1.5, float(finite.quantile(0.995)) * 1.05))
    axes[0].set_ylabel("binary cross-entropy")
    return _png(fig, legend_rows=_figure_legend(fig, axes[0]))


def d_output_figure(metrics: pd.DataFrame, optimizers: list[str], steps: int) -> bytes:
    col = colours(optimizers)
    span = smoothing_span(steps)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharey=True)
    for ax, column, title in ((axes[0], "d_x", "mean D(x), real images"), (axes[1], "d_g_z", "mean D(G(z)), generated")):
        for label in optimizers:
            df = metrics[metrics.optimizer == label]
            if len(df):
                _draw(ax, curves(df, column, span), "step", col[label], label)
        ax.axhline(0.5, color="0.35", ls="--", lw=0.9, label="0.5 (D cannot tell)")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(title)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.25)
    axes[0].legend(loc="best", fontsize=8, frameon=False)
    return _png(fig)


def diversity_figure(div: dict[str, pd.DataFrame], optimizers: list[str], threshold: float) -> bytes:
    col = colours(optimizers)
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    for label in optimizers:
        d = div.get(label)
        if d is not None and len(d):
            med, q25, q75 = band(d.groupby("step").diversity)
            ax.plot(med.index, med.to_numpy(), color=col[label], lw=1.8, marker="o", ms=3, label=label)
            if d.seed.nunique() > 1:
                ax.fill_between(med.index, q25.to_numpy(), q75.to_numpy(), color=col[label], alpha=0.18, lw=0)
    ax.axhline(1.0, color="0.35", ls="--", lw=0.9, label="real images")
    ax.axhline(threshold, color="#b00", ls=":", lw=0.9, label="collapse threshold")
    ax.set_xlabel("iteration")
    ax.set_ylabel("sample diversity / real")
    ax.grid(alpha=0.25)
    ax.legend(fontsize=8, frameon=False)
    return _png(fig)


def quality_figure(quality: pd.DataFrame, optimizers: list[str], metrics: list[str]) -> bytes:
    """One panel per metric: median across seeds per optimizer, IQR band when there are several seeds."""
    col = colours(optimizers)
    cols = min(3, len(metrics))
    rows = int(math.ceil(len(metrics) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.2 * rows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics, strict=False):
        q = quality[quality.metric == metric]
        for label in optimizers:
            d = q[q.optimizer == label]
            if not len(d):
                continue
            med, q25, q75 = band(d.groupby("step").value)
            ax.plot(med.index, med.to_numpy(), color=col[label], lw=1.8, marker="o", ms=2.5, label=label)
            if d.seed.nunique() > 1:
                ax.fill_between(med.index, q25.to_numpy(), q75.to_numpy(), color=col[label], alpha=0.18, lw=0)
        if metric in ("diversity", "memorisation"):
            ax.axhline(1.0, color="0.35", ls="--", lw=0.9)
        ax.set_title(INFO[metric].title if metric in INFO else metric, fontsize=10)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.25)
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    return _png(fig, legend_rows=_figure_legend(fig, axes.flat[0]))


def scatter_png(real: np.ndarray, fake: np.ndarray | None, labels=("real", "generated"), lims=None) -> bytes:
    """A small scatter of real (grey) and generated (red) 2-D points; fixed limits keep frames comparable."""
    fig, ax = plt.subplots(figsize=(2.3, 2.3))
    ax.scatter(real[:, 0], real[:, 1], s=3, c="0.55", alpha=0.6, lw=0, label=labels[0])
    if fake is not None:
        f = np.where(np.isfinite(fake), fake, np.nan)
        ax.scatter(f[:, 0], f[:, 1], s=3, c="#d62728", alpha=0.7, lw=0, label=labels[1])
    if lims is not None:
        ax.set_xlim(*lims[0])
        ax.set_ylim(*lims[1])
    ax.tick_params(labelsize=6)
    ax.grid(alpha=0.2)
    return _png(fig)


def limits(points: np.ndarray, pad: float = 0.15) -> tuple[tuple[float, float], tuple[float, float]]:
    lo, hi = np.nanmin(points, axis=0), np.nanmax(points, axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    return ((lo[0] - pad * span[0], hi[0] + pad * span[0]), (lo[1] - pad * span[1], hi[1] + pad * span[1]))


def sensitivity_figure(trials: list[dict], space: dict[str, dict], criterion: str, goal: str,
                       best: dict[str, str]) -> bytes:
    """One row per optimizer, one panel per hyper-parameter: each trial's criterion against its value.

    Ranges are drawn on their own scale (log for log ranges), choices as categories; the best trial
    is starred and a diverged or failed trial is drawn as a red x on the worse edge of the panel.
    """
    labels = list(space)
    ncols = max(len(dims) for dims in space.values())
    col = colours(labels)
    fig, axes = plt.subplots(len(labels), ncols, figsize=(4.2 * ncols, 2.9 * len(labels)), squeeze=False)
    finite = [t["score"]["median"] for t in trials if math.isfinite(t["score"]["median"])]
    lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
    pad = (hi - lo) * 0.08 or abs(hi) * 0.05 or 1.0
    worse_edge = hi + 1.5 * pad if goal == "min" else lo - 1.5 * pad
    for r, label in enumerate(labels):
        ts = [t for t in trials if t["optimizer"] == label]
        dims = space[label]
        for c in range(ncols):
            ax = axes[r][c]
            if c >= len(dims):
                ax.set_visible(False)
                continue
            key, dim = list(dims.items())[c]
            if dim["kind"] == "choice":
                cats = [str(v) for v in dim["choices"]]
                xs = [cats.index(str(t["params"][key])) for t in ts]
                ax.set_xticks(range(len(cats)), cats)
                ax.set_xlim(-0.5, len(cats) - 0.5)
            else:
                xs = [t["params"][key] for t in ts]
                span = dim["high"] - dim["low"]
                if dim["kind"] == "log":  # the whole declared range, decades labelled only
                    ax.set_xscale("log")
                    ax.set_xlim(dim["low"] / 1.25, dim["high"] * 1.25)
                    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
                else:
                    ax.set_xlim(dim["low"] - 0.05 * span, dim["high"] + 0.05 * span)
            ys = [t["score"]["median"] for t in ts]
            ok = [i for i, y in enumerate(ys) if math.isfinite(y)]
            bad = [i for i, y in enumerate(ys) if not math.isfinite(y)]
            for i in ok:  # seed spread as a vertical bar when there are several search seeds
                q25, q75 = ts[i]["score"]["q25"], ts[i]["score"]["q75"]
                if math.isfinite(q25) and math.isfinite(q75) and q75 > q25:
                    ax.plot([xs[i], xs[i]], [q25, q75], color=col[label], alpha=0.4, lw=2)
            ax.scatter([xs[i] for i in ok], [ys[i] for i in ok], color=col[label], s=28, zorder=3)
            if bad:
                ax.scatter([xs[i] for i in bad], [worse_edge] * len(bad), marker="x", color="#b3261e", s=40, zorder=3,
                           label="diverged / failed")
                ax.legend(fontsize=7, frameon=False, loc="best")
            star = [i for i, t in enumerate(ts) if t["label"] == best.get(label)]
            if star and math.isfinite(ys[star[0]]):
                ax.scatter([xs[star[0]]], [ys[star[0]]], marker="*", s=220, facecolor="none", edgecolor="k", lw=1.2, zorder=4)
            ax.set_ylim(min(lo - pad, worse_edge - pad), max(hi + pad, worse_edge + pad))
            ax.set_xlabel(key)
            ax.grid(alpha=0.25)
            if c == 0:
                ax.set_ylabel(f"{label}\n{criterion} ({'lower' if goal == 'min' else 'higher'} is better)", fontsize=9)
    return _png(fig)


def tuned_figure(final: dict[str, dict], criterion: str, goal: str) -> bytes:
    """Per optimizer: the criterion of every final seed, default settings against tuned."""
    labels = list(final)
    col = colours(labels)
    fig, ax = plt.subplots(figsize=(1.9 * len(labels) + 2.5, 3.4))
    for i, label in enumerate(labels):
        for j, (kind, filled) in enumerate((("default", False), ("tuned", True))):
            vals = [v for v in final[label][kind]["values"] if math.isfinite(v)]
            x = i + (j - 0.5) * 0.36
            ax.scatter([x] * len(vals), vals, s=34, facecolor=col[label] if filled else "white", edgecolor=col[label],
                       lw=1.5, zorder=3, label=None)
            if vals:
                ax.plot([x - 0.12, x + 0.12], [spread(vals)[0]] * 2, color="k", lw=1.4)
            n_bad = len(final[label][kind]["values"]) - len(vals)
            if n_bad:
                ax.annotate(f"{n_bad} diverged", (x, ax.get_ylim()[1]), ha="center", va="top", fontsize=7, color="#b3261e")
    ax.set_xticks(range(len(labels)), [f"{lbl}\ndefault · tuned" for lbl in labels])
    ax.set_ylabel(f"{criterion} ({'lower' if goal == 'min' else 'higher'} is better)")
    ax.grid(alpha=0.25, axis="y")
    return _png(fig)


def over_training_figure(pairs: list[dict], title: str, goal: str, colours_of: dict[str, str],
                         tail_from: float | None = None) -> bytes:
    """One small panel per optimizer pair: the median paired difference of the primary metric at each
    evaluation, its sign-test band (none where too few seeds give a finite one), a zero line and, shaded, the
    last quarter of the evaluations the budget check looks at; the panel's title says on which side of zero
    the first optimizer is ahead (below for a metric to minimise, above for one to maximise)."""
    n = len(pairs)
    cols = min(3, n)
    rows = int(math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols, 2.9 * rows), squeeze=False)
    for ax, p in zip(axes.flat, pairs, strict=False):
        steps = [r["step"] for r in p["rows"]]
        def conv(v: np.ndarray, log_ratio: bool = p["log_ratio"]) -> np.ndarray:
            v = np.where(np.isfinite(v), v, np.nan)  # an infinite band edge (few seeds) is not drawn
            return 100 * np.expm1(v) if log_ratio else v

        median = conv(np.array([r["median"] for r in p["rows"]], float))
        low = conv(np.array([r["ci"][0] for r in p["rows"]], float))
        high = conv(np.array([r["ci"][1] for r in p["rows"]], float))
        ax.fill_between(steps, low, high, color=colours_of.get(p["a"], "#555"), alpha=0.2, lw=0)
        ax.plot(steps, median, color=colours_of.get(p["a"], "#555"), lw=1.8, marker="o", ms=2.5)
        ax.axhline(0, color="0.35", ls="--", lw=0.9)
        if tail_from is not None and steps:
            ax.axvspan(tail_from, steps[-1], color="0.5", alpha=0.08, lw=0)
        side = "below" if goal == "min" else "above"
        ax.set_title(f"{p['a']} vs {p['b']} ({side} 0: {p['a']} better)", fontsize=9)
        ax.set_xlabel("iteration")
        ax.set_ylabel(f"{p['a']}'s {title} vs {p['b']}'s" + (", %" if p["log_ratio"] else ""), fontsize=8)
        ax.grid(alpha=0.25)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    return _png(fig)


def profile_figure(profile: dict[str, dict], r_max: float, colours_of: dict[str, str]) -> bytes:
    """AlgoPerf's performance profile: for each optimizer, the share of experiments in which it reaches the
    target within tau times the fastest optimizer's time."""
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for opt, p in profile.items():
        ax.step(p["tau"], p["rho"], where="post", color=colours_of.get(opt, "#555"), lw=1.8,
                label=f"{opt} (score {p['score']:.2f})")
    ax.set_xlim(1, r_max)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("tau: time to target / fastest optimizer's")
    ax.set_ylabel("share of experiments")
    ax.grid(alpha=0.25)
    ax.legend(fontsize=8, frameon=False, loc="lower right")
    return _png(fig)


def learning_rate_figure(rates: pd.DataFrame, colours_of: dict[str, str]) -> bytes:
    """Each scheduled optimizer's learning rate against the iteration: G solid, D dashed (D's optimizer may take
    more updates per iteration, so its schedule runs ahead)."""
    fig, ax = plt.subplots(figsize=(6.8, 3.4))
    for (opt, net), g in rates.groupby(["optimizer", "network"], sort=False):
        g = g.sort_values("step")
        ax.plot(g.step, g.learning_rate, color=colours_of.get(opt, "#555"), lw=1.8,
                ls="-" if net == "generator" else "--", label=f"{opt} ({'G' if net == 'generator' else 'D'})")
    ax.set_xlabel("iteration")
    ax.set_ylabel("learning rate")
    ax.grid(alpha=0.25)
    ax.legend(fontsize=8, frameon=False)
    return _png(fig)
