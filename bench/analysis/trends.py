"""Loss-trend baselines and regression checks (``bench baseline`` / ``bench check``).

A baseline condenses a run into per-(optimizer, metric) bands across seeds:

    <loss>.w1 .. <loss>.w4   mean of the loss in each quarter of training
    <loss>.final             mean over the last 10% of iterations
    <loss>.slope             least-squares slope over the last quarter, per 1000 iterations
    diversity.final          sample diversity relative to real images, at the last sample
    swd.final, fd_pca.final, kid_pca.final, coverage.final, memorisation.final (and fid.final)
                             sample quality at the end of training (bench.quality.scores)
    diverged                 number of seeds that diverged

A check recomputes the same numbers from a fresh run and flags each one that leaves
``baseline median +- tolerance``, where the tolerance is derived from the baseline's
seed spread (TOL_IQR x interquartile range) with a floor, and can be overridden per
metric in the style ``g_loss.final:15%`` (relative) or ``*.slope:0.5`` (absolute).
"""

from __future__ import annotations

import fnmatch
import json
import math
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.analysis import summary as S
from bench.analysis.stats import final_mean, spread
from bench.core.errors import BenchError
from bench.core.metric_table import LOSSES, QUARTERS
from bench.core.names import now
from bench.quality.scores import TREND_METRICS
from bench.store.files import json_text
from bench.store.load import RunData, dig, load_run

SCHEMA = 1
SLOPE_FRACTION = 0.25
TOL_IQR = 3.0  # band half-width in interquartile ranges of the baseline seeds
FLOORS = {  # (relative to |median|, absolute): the band never gets narrower than these
    "level": (0.10, 0.02),
    "slope": (0.50, 0.25),
    "diversity": (0.15, 0.05),
    "quality": (0.15, 0.05),
}
EXIT_OK, EXIT_REGRESSION = 0, 1
REDEFINED = "redefined since the baseline"  # why a skipped row is skipped, when its metric's definition changed


def _kind(metric: str) -> str:
    if metric.endswith(".slope"):
        return "slope"
    if metric.startswith("diversity"):
        return "diversity"
    if metric.split(".")[0] in TREND_METRICS:
        return "quality"
    return "level"


def _slope(df: pd.DataFrame, column: str) -> float:
    if len(df) < 3:
        return math.nan
    x, y = df.step.to_numpy(float), df[column].to_numpy(float)
    return float(np.polyfit(x, y, 1)[0] * 1000)


def per_seed_metrics(data: RunData, label: str, seed: int) -> dict[str, float]:
    """Every trend metric of one (optimizer, seed) run."""
    df = data.pair(label, seed)
    ok = df[df.status == "ok"]
    steps = data.steps_total
    out: dict[str, float] = {}
    edges = np.linspace(0, steps, QUARTERS + 1)
    for loss in LOSSES:
        for q in range(QUARTERS):
            w = ok[(ok.step > edges[q]) & (ok.step <= edges[q + 1])]
            out[f"{loss}.w{q + 1}"] = float(w[loss].mean()) if len(w) else math.nan
        out[f"{loss}.final"] = final_mean(df, loss, steps)
        tail = ok[ok.step > steps * (1 - SLOPE_FRACTION)]
        out[f"{loss}.slope"] = _slope(tail, loss)
    div = S.diversity(data, label, seed)
    out["diversity.final"] = float(div.diversity.iloc[-1]) if len(div) else math.nan
    for metric, value in S.final_quality(data, label, seed).items():
        if metric in TREND_METRICS:
            out[f"{metric}.final"] = value
    return out


def _require_complete(data: RunData) -> None:
    if data.state in ("in progress", "interrupted"):
        raise BenchError(f"{data.run_dir}: the run is {data.state}; finish it (bench run --resume) before using it here")


def make_baseline(run_dir: Path) -> dict:
    data = load_run(run_dir)
    _require_complete(data)
    m = data.manifest
    metrics = {}
    for label in data.optimizers:
        seeds = {s: per_seed_metrics(data, label, s) for s in data.seeds}
        entry = {}
        for name in next(iter(seeds.values())):
            values = [seeds[s][name] for s in data.seeds]
            med, q25, q75 = spread(values)
            entry[name] = {"median": med, "q25": q25, "q75": q75, "values": values}
        entry["diverged"] = {"count": sum(data.pair_status(label, s) == "diverged" for s in data.seeds),
                             "of": len(data.seeds)}
        metrics[label] = entry
    return {
        "schema": SCHEMA, "experiment": data.experiment, "identity": dig(m, "identity", str), "config": m.get("config"),
        "versions": dig(m, "versions", dict, {}),
        "metric_versions": dig(m, "metric_versions", dict, {}),
        "machine": {k: dig(m, f"machine.{k}") for k in ("cpu", "cores", "intra_op_threads", "jit_compile")},
        "created": now(), "source_run": str(run_dir),
        "steps": data.steps_total, "seeds": data.seeds,
        "tolerance": {"iqr_multiple": TOL_IQR, "floors": FLOORS}, "metrics": metrics,
    }


def load_baseline(path: Path) -> dict:
    try:
        b = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise BenchError(f"baseline {path}: not found") from None
    except (OSError, ValueError) as e:
        raise BenchError(f"baseline {path}: not valid JSON ({e})") from None
    if not isinstance(b, dict) or b.get("schema") != SCHEMA or not isinstance(b.get("metrics"), dict):
        raise BenchError(f"baseline {path}: not a bench baseline (schema {SCHEMA}); make one with `bench baseline`")
    for label, entry in b["metrics"].items():
        if not isinstance(entry, dict):
            raise BenchError(f"baseline {path}: metrics.{label} is not a table")
        for name, band in entry.items():
            if name == "diverged":
                if not (isinstance(band, dict) and isinstance(band.get("count"), int)):
                    raise BenchError(f"baseline {path}: metrics.{label}.diverged has no count")
                continue
            if not (isinstance(band, dict) and {"median", "q25", "q75"} <= band.keys()):
                raise BenchError(f"baseline {path}: metrics.{label}.{name} lacks median/q25/q75")
            for key in ("median", "q25", "q75"):  # strict JSON: null where the baseline had no finite value
                v = band[key]
                if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                    raise BenchError(f"baseline {path}: metrics.{label}.{name}.{key} is not a number")
                band[key] = math.nan if v is None else float(v)
    if not isinstance(b.get("steps"), int):
        raise BenchError(f"baseline {path}: no step count")
    return b


# ------------------------------------------------------------------ tolerances


@dataclass(frozen=True)
class Override:
    """``pattern:15%`` (relative to the baseline median) or ``pattern:0.05`` (absolute)."""

    pattern: str
    value: float
    relative: bool

    @classmethod
    def parse(cls, text: str) -> Override:
        pattern, sep, amount = text.rpartition(":")
        if not sep or not pattern:
            raise BenchError(f"--tolerance {text!r}: expected METRIC:AMOUNT, e.g. g_loss.final:15% or '*.slope:0.5'")
        rel = amount.endswith("%")
        try:
            value = float(amount[:-1] if rel else amount)
        except ValueError:
            raise BenchError(f"--tolerance {text!r}: '{amount}' is not a number or percentage") from None
        if value < 0:
            raise BenchError(f"--tolerance {text!r}: must be >= 0")
        return cls(pattern, value / 100 if rel else value, rel)

    def matches(self, optimizer: str, metric: str) -> bool:
        return fnmatch.fnmatch(metric, self.pattern) or fnmatch.fnmatch(f"{optimizer}.{metric}", self.pattern)


def tolerance(band: dict, optimizer: str, metric: str, overrides: list[Override]) -> tuple[float, str]:
    med = band["median"]
    for o in reversed(overrides):  # the last matching override wins
        if o.matches(optimizer, metric):
            return (o.value * abs(med) if o.relative else o.value), (f"{o.value * 100:g}% override" if o.relative else "override")
    rel, absolute = FLOORS[_kind(metric)]
    iqr = (band["q75"] - band["q25"]) if not math.isnan(band["q25"]) else 0.0
    derived = TOL_IQR * iqr
    floor = max(rel * abs(med), absolute)
    return (derived, f"{TOL_IQR:g}xIQR") if derived > floor else (floor, "floor")


# ------------------------------------------------------------------ the check


@dataclass
class Row:
    optimizer: str
    metric: str
    baseline: float
    low: float
    high: float
    value: float
    verdict: str  # ok | REGRESSION | diverged | missing | skipped (no baseline value to compare with)
    basis: str


def _config_diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        if k in ("name", "description", "seeds"):
            continue
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _config_diff(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}: {va!r} -> {vb!r}")
    return out


@dataclass
class CheckResult:
    rows: list[Row]
    notes: list[str]
    identity_changed: bool

    @property
    def failed(self) -> list[Row]:
        return [r for r in self.rows if r.verdict not in ("ok", "skipped")]

    @property
    def skipped(self) -> list[Row]:
        return [r for r in self.rows if r.verdict == "skipped"]

    @property
    def exit_code(self) -> int:
        return EXIT_REGRESSION if self.failed else EXIT_OK


def _code_versions(config) -> dict[str, str]:
    """optimizer label -> the SHA-256 of its user code ("" for a built-in), from a run's or a baseline's config."""
    optimizers = dig(config, "optimizers", dict, {})
    return {str(label): str(dig(entry, "source.sha256", str, "")) for label, entry in optimizers.items()
            if isinstance(entry, dict)}


def check(run_dir: Path, baseline: dict, overrides: list[Override], strict_identity: bool = False,
          across_code_versions: bool = False) -> CheckResult:
    data = load_run(run_dir)
    _require_complete(data)
    m = data.manifest
    notes = []
    then, now = _code_versions(baseline.get("config")), _code_versions(m.get("config"))
    changed = [label for label in then if label in now and then[label] != now[label]]
    if changed:
        what = "; ".join(f"{label}: {then[label][:12] or 'built-in'} -> {now[label][:12] or 'built-in'}" for label in changed)
        if not across_code_versions:
            raise BenchError(f"the baseline was made with other code for {what} (SHA-256 of the optimizer's source); "
                             "comparing trends across code versions is a choice: --across-code-versions")
        notes.append(f"note: compared across code versions: {what}")
    identity_changed = m.get("identity") != baseline.get("identity")
    if identity_changed:
        diff = _config_diff(baseline.get("config") or {}, m.get("config") or {})
        what = "; ".join(diff[:6]) + (f"; +{len(diff) - 6} more" if len(diff) > 6 else "") if diff else "unknown change"
        msg = f"experiment identity differs from the baseline's ({baseline.get('identity')} -> {m.get('identity')}): {what}"
        if strict_identity:
            raise BenchError(msg + "; make a new baseline (bench baseline) if the change is intended")
        notes.append("WARNING: " + msg + "; comparing anyway (a changed setting is what this check should catch)")
    if data.steps_total != baseline["steps"]:
        raise BenchError(f"the run has {data.steps_total} iterations, the baseline {baseline['steps']}: windows would not line up")
    if m.get("experiment") != baseline.get("experiment"):
        notes.append(f"note: experiment name {baseline.get('experiment')!r} -> {m.get('experiment')!r}")
    vb, vr = dig(baseline, "versions", dict, {}), dig(m, "versions", dict, {})
    for k in sorted(set(vb) | set(vr)):
        if vb.get(k) != vr.get(k):
            notes.append(f"note: {k} {vb.get(k)} -> {vr.get(k)} since the baseline")
    defined_then, defined_now = dig(baseline, "metric_versions", dict, {}), dig(m, "metric_versions", dict, {})
    redefined = {name: (defined_then[name], defined_now[name]) for name in sorted(set(defined_then) & set(defined_now))
                 if defined_then[name] != defined_now[name]}
    if redefined:
        notes.append(f"note: {REDEFINED}, so not compared: " + ", ".join(
            f"{name} (version {a} -> {b})" for name, (a, b) in redefined.items()) + "; make a new baseline (bench baseline)")
    elif not defined_then and any(v != 1 for v in defined_now.values()):  # a baseline from before they were recorded
        notes.append("note: the baseline does not record the quality metrics' definitions; redefined since the first: "
                     + ", ".join(f"{name} (version {v})" for name, v in defined_now.items() if v != 1)
                     + " (their values may differ by that alone; make a new baseline)")
    missing = [o for o in baseline["metrics"] if o not in data.optimizers]
    if missing:
        raise BenchError(f"the run has no {', '.join(missing)}; the baseline covers {', '.join(baseline['metrics'])}")

    rows = []
    for label, entry in baseline["metrics"].items():
        seeds = [per_seed_metrics(data, label, s) for s in data.seeds]
        div_now = sum(data.pair_status(label, s) == "diverged" for s in data.seeds)
        div_base = entry.get("diverged", {}).get("count", 0)
        rows.append(Row(label, "diverged", div_base, 0, div_base, div_now,
                        "diverged" if div_now > div_base else "ok", "count of seeds"))
        for metric, band in entry.items():
            if metric == "diverged":
                continue
            value = spread([s.get(metric, math.nan) for s in seeds])[0]
            base = band["median"]
            name = metric.split(".")[0]
            if name in redefined:
                rows.append(Row(label, metric, base, math.nan, math.nan, value, "skipped",
                                f"{REDEFINED} ({name} version {redefined[name][0]} -> {redefined[name][1]}): "
                                "make a new baseline"))
                continue
            if math.isnan(base):  # every baseline seed diverged or was not scored: listed, never "passed"
                rows.append(Row(label, metric, base, math.nan, math.nan, value, "skipped",
                                "no baseline value (its seeds diverged or were not scored)"))
                continue
            tol, basis = tolerance(band, label, metric, overrides)
            low, high = base - tol, base + tol
            if math.isnan(value):
                verdict = "missing"
            else:
                verdict = "ok" if low <= value <= high else "REGRESSION"
            rows.append(Row(label, metric, base, low, high, value, verdict, basis))
    return CheckResult(rows, notes, identity_changed)


# ------------------------------------------------------------------ output


def console_text(result: CheckResult, header: str, only_failures: bool = False) -> str:
    """What `bench check` prints: notes, the table, and the verdict line."""
    lines = [*result.notes, header, table(result, only_failures)]
    failed, skipped = result.failed, result.skipped
    checked = len(result.rows) - len(skipped)
    unscored = [r for r in skipped if not r.basis.startswith(REDEFINED)]
    if unscored:
        names = ", ".join(f"{r.optimizer} {r.metric}" for r in unscored[:8]) + (" ..." if len(unscored) > 8 else "")
        lines.append(f"skipped: {len(unscored)} trend metrics have no baseline value (their baseline seeds diverged "
                     f"or were not scored), so nothing checks them: {names}")
    if len(unscored) < len(skipped):
        lines.append(f"skipped: {len(skipped) - len(unscored)} trend metrics were redefined since the baseline (see "
                     "the note above), so nothing checks them")
    if failed:
        moved = ", ".join(f"{r.optimizer} {r.metric} {r.value:.4g} (band {r.low:.4g}..{r.high:.4g})" for r in failed[:5])
        lines.append(f"FAILED: {len(failed)} of {checked} checked trend metrics left their baseline band: {moved}"
                     + (" ..." if len(failed) > 5 else ""))
    elif skipped:
        lines.append(f"passed: {checked} of {len(result.rows)} trend metrics within their baseline bands "
                     f"({len(skipped)} skipped)")
    else:
        lines.append(f"passed: all {len(result.rows)} trend metrics within their baseline bands")
    return "\n".join(lines)


def table(result: CheckResult, only_failures: bool = False) -> str:
    rows = [r for r in result.rows if r.verdict != "ok"] if only_failures else result.rows
    df = pd.DataFrame([{
        "optimizer": r.optimizer, "metric": r.metric,
        "baseline band": _band(r),
        "value": f"{r.value:.4g}", "verdict": r.verdict, "tolerance": r.basis} for r in rows])
    return df.to_string(index=False) if len(df) else "(no rows)"


def _band(r: Row) -> str:
    return f"{r.low:.4g} .. {r.high:.4g}" if r.metric != "diverged" else f"<= {r.high:g}"


def markdown(result: CheckResult, header: str) -> str:
    """A compact Markdown summary for $GITHUB_STEP_SUMMARY or a pull-request comment: the regressions
    first (a table), then one line counting what passed; notes (a changed configuration) last."""
    failed, skipped = result.failed, result.skipped
    checked = len(result.rows) - len(skipped)
    lines = [f"### {_md(header)}", ""]
    if failed:
        lines += [f"**{len(failed)} of {checked} trend metrics left their baseline band**", "",
                  "| optimizer | metric | value | baseline band | baseline median | verdict |",
                  "| --- | --- | ---: | --- | ---: | --- |"]
        lines += [f"| {_md(r.optimizer)} | {_md(r.metric)} | {r.value:.4g} | {_band(r)} | {r.baseline:.4g} | {r.verdict} |"
                  for r in failed]
        lines.append("")
    passed = checked - len(failed)
    lines.append(f"{'passed' if not failed else 'within band'}: {passed} of {checked} trend metrics"
                 + (f" ({len(skipped)} skipped: no baseline value)" if skipped else ""))
    lines += [f"> {_md(n)}" for n in result.notes]
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    """Text for a Markdown table cell or line: a label from a run folder may hold anything, and neither a
    '|' (a new cell), raw HTML (GitHub renders some), nor a newline may change the table."""
    text = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("|", "\\|").replace("`", "\\`").replace("\r", " ").replace("\n", " ")


def _escape(text: str, prop: bool = False) -> str:
    # GitHub's workflow-command encoding: a property value also escapes ':' and ','
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if prop else text


def annotations(result: CheckResult) -> list[str]:
    """One ``::error`` workflow command per failing metric (GitHub Actions shows them on the run and the PR)."""
    return [f"::error title={_escape(f'bench check: {r.optimizer} {r.metric}', prop=True)}::"
            + _escape(f"{r.optimizer} {r.metric} = {r.value:.4g}, outside its baseline band {_band(r)} "
                      f"(median {r.baseline:.4g}; {r.verdict})")
            for r in result.failed]


def json_bytes(result: CheckResult) -> bytes:
    return json_text({"passed": not result.failed, "checked": len(result.rows) - len(result.skipped),
                             "skipped": len(result.skipped), "notes": result.notes,
                             "identity_changed": result.identity_changed, "rows": [asdict(r) for r in result.rows]}).encode()


def junit_bytes(result: CheckResult) -> bytes:
    """JUnit XML: one test suite per optimizer, one test case per metric."""
    suites = ET.Element("testsuites", name="bench check")
    for label in dict.fromkeys(r.optimizer for r in result.rows):
        rows = [r for r in result.rows if r.optimizer == label]
        suite = ET.SubElement(suites, "testsuite", name=f"bench check {label}", tests=str(len(rows)),
                              failures=str(sum(r.verdict not in ("ok", "skipped") for r in rows)),
                              skipped=str(sum(r.verdict == "skipped" for r in rows)))
        for r in rows:
            case = ET.SubElement(suite, "testcase", classname=f"bench.{label}", name=r.metric)
            if r.verdict == "skipped":
                ET.SubElement(case, "skipped", message=r.basis)
            elif r.verdict != "ok":
                f = ET.SubElement(case, "failure", message=f"{r.metric} = {r.value:.4g}, outside {r.low:.4g} .. {r.high:.4g}",
                                  type=r.verdict)
                f.text = f"baseline median {r.baseline:.6g}; tolerance from {r.basis}"
    return ET.tostring(suites, encoding="utf-8", xml_declaration=True)
