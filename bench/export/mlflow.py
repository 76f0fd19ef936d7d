"""A run folder in MLflow: `bench run --mlflow [URI]` and `bench export mlflow RUN_DIR [--uri URI]`.

One MLflow experiment per bench experiment; in it, one parent MLflow run per bench run (its manifest and
report as artifacts) and one child run per (optimizer, seed): the optimizer's hyper-parameters, the seed
and the experiment identity as params, every CSV column and quality metric as step-indexed metrics (named
as in TensorBoard, ``series_tag``), the run id and git commit as tags, the CSVs, status and sample grids as
artifacts. The CSVs stay the record: MLflow receives a copy, so a tracking server that is down or refuses
costs nothing but a warning, and ``bench export mlflow`` sends the same run later.

Sending is idempotent: a pair MLflow already holds as FINISHED is skipped; one it holds unfinished (a run
interrupted then resumed, a send cut short) is deleted and sent whole again.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import logging
import math
import os
import re
import sys
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from bench.core.errors import BenchError, describe, first_line, one_line
from bench.core.names import install_hint, run_name
from bench.export.pairs import Pair, manifest_of, pairs, posix
from bench.store.files import inside, outside, warn
from bench.store.layout import run_dirs
from bench.store.load import dig
from bench.store.logs import CSV_COLUMNS, KEY_COLUMNS, QUALITY_COLUMNS, series_tag, whole_lines

DB_FILE = "mlflow.db"  # the embedded store, in the results folder
ARTIFACTS = "mlartifacts"  # its artifacts, beside it
SCHEMES = ("http", "https", "sqlite")
# MLflow's client retries a refused connection for minutes by default; bench says so once and moves on.
# A server that stays silent costs at most SILENT_S seconds per request, then one warning
# (BENCH_MLFLOW_TIMEOUT lowers it: the tests, a CI job that would rather give up sooner).
SILENT_S = 10
CLIENT_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_DISABLE_TELEMETRY": "true"}


def silent_s() -> float:
    try:
        return min(SILENT_S, max(0.1, float(os.environ.get("BENCH_MLFLOW_TIMEOUT", SILENT_S))))
    except ValueError:
        return SILENT_S
STATUS = {"finished": "FINISHED", "diverged": "FAILED", "failed": "FAILED"}  # a pair's; else KILLED: cut short
RUN_STATUS = {"finished": "FINISHED", "finished-with-divergence": "FINISHED", "finished-with-failures": "FAILED",
              "failed": "FAILED"}


def require_mlflow() -> None:
    try:
        import mlflow  # noqa: F401
    except ImportError:
        raise BenchError(f"MLflow is not installed: {install_hint('mlflow')} (or pip install mlflow)") from None


def tracking_uri(uri: str, results: Path, option: str = "--mlflow") -> str:
    """The store to log to: ``uri`` checked whole (scheme, host, port range, IPv6 brackets; a sqlite file
    whose folder bench can write), or (empty) the embedded sqlite file in ``results``. Called before
    anything is written: a bad URI is bad input, never a failure halfway through a run."""
    if not uri:
        store = Path(results).resolve() / DB_FILE
        if store.parent.is_dir():  # else the run creates it, after checking it can
            check_sqlite_file(store, option)
        return f"sqlite:///{store.as_posix()}"
    shown = one_line(uri)
    if uri != uri.strip() or any(c.isspace() for c in uri):
        raise BenchError(f"{option} {shown!r}: a URI holds no spaces")
    try:
        parsed = urlparse(uri)
        port = parsed.port  # raises on a port that is not a number, or out of 0-65535
        host = parsed.hostname
    except ValueError as e:  # also an unclosed IPv6 bracket: http://[::1
        raise BenchError(f"{option} {shown}: not a valid URI ({e})") from None
    if parsed.scheme not in SCHEMES:
        raise BenchError(f"{option} {shown}: expected http://HOST:PORT, https://... or sqlite:///FILE "
                         f"(or no URI: {results}/{DB_FILE})")
    if parsed.scheme == "sqlite":
        if parsed.netloc or not parsed.path.strip("/"):
            raise BenchError(f"{option} {shown}: a sqlite URI names a file, e.g. sqlite:///results/mlflow.db "
                             "(three slashes, four for an absolute path)")
        check_sqlite_file(Path(parsed.path[1:]), option)
        return uri
    if not host:
        raise BenchError(f"{option} {shown}: no host")
    if port == 0:
        raise BenchError(f"{option} {shown}: port 0 is not a port a server listens on (1-65535)")
    if not re.fullmatch(r"[A-Za-z0-9.-]+|[0-9A-Fa-f:.]+(%[A-Za-z0-9]+)?", host):
        raise BenchError(f"{option} {shown}: {host!r} is not a host name or address")
    if parsed.query or parsed.fragment:
        raise BenchError(f"{option} {shown}: a tracking URI has no ?query or #fragment")
    return uri


def check_sqlite_file(path: Path, option: str = "--mlflow") -> None:
    """The embedded store's file can be written: it exists and opens for writing, or its folder takes a new
    file (probed). Refused up front: MLflow itself retries an unwritable store for minutes."""
    path = Path(path)
    try:
        if path.exists():
            if not path.is_file():
                raise BenchError(f"{option}: {path} is not a file")
            with open(path, "r+b"):
                return
        folder = path.parent
        if not folder.is_dir():
            raise BenchError(f"{option}: cannot create the MLflow store {path}: folder {folder} does not exist")
        probe = folder / f".mlflow-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise BenchError(f"{option}: cannot write the MLflow store {path} ({e.strerror or e})") from None


def _reachable(uri: str) -> None:
    """A tracking server answers its health check within seconds, or BenchError (one line)."""
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=silent_s()) as r:
            r.read(64)
    except urllib.error.HTTPError as e:
        raise BenchError(f"MLflow server {uri} answered {e.code} {e.reason}") from None
    except (OSError, ValueError, http.client.HTTPException) as e:  # refused, silent (timeout), garbled answer
        reason = getattr(e, "reason", e)
        raise BenchError(f"MLflow server {uri} is unreachable ({first_line(reason) if isinstance(reason, BaseException) else reason or type(e).__name__})") from None


@contextlib.contextmanager
def _quiet_client():
    """MLflow's INFO logging (database migrations) and warnings, held back: bench prints its own lines."""
    for k, v in {**CLIENT_ENV, "MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, int(silent_s())))}.items():
        os.environ.setdefault(k, v)
    loggers = [logging.getLogger(n) for n in ("mlflow", "alembic")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    # MLflow prints a "View run" link per run to stdout; bench prints one line with the experiment's link
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)


@dataclass
class Sent:
    uri: str
    experiment_id: str = ""
    parents: dict[str, str] = field(default_factory=dict)  # bench run id -> MLflow run id
    pairs: dict[str, str] = field(default_factory=dict)  # "<run id>/<pair>" -> MLflow run id
    skipped: int = 0  # pairs MLflow already held finished

    def line(self, live: int | None = None) -> str:
        where = (f"{self.uri.rstrip('/')}/#/experiments/{self.experiment_id}" if self.uri.startswith("http")
                 else f"{self.uri} (experiment id {self.experiment_id}; mlflow ui --backend-store-uri {self.uri})")
        if live is not None:
            return f"mlflow: {live + len(self.pairs)} pair(s) sent as they finished: {where}"
        return f"mlflow: {len(self.pairs)} pair(s) sent, {self.skipped} already there: {where}"


def send(folder: Path, uri: str, results: Path | None = None, reports: Path | None = None,
         option: str = "--uri", only: set[str] | None = None) -> Sent:
    """Every run folder at or below ``folder`` to the MLflow store ``uri`` ("" = the embedded one in
    ``results``, by default the results folder above the run folders); with ``only``, just those pairs (by
    name) and the parent run. Raises BenchError on any failure."""
    runs = run_dirs(folder)
    if results is None:
        results = runs[0].parents[1]
    uri = tracking_uri(uri, results, option)
    require_mlflow()
    if uri.startswith("http"):
        _reachable(uri)
    sent = Sent(uri)
    try:
        with _quiet_client():
            from mlflow import MlflowClient

            client = MlflowClient(tracking_uri=uri)
            for run_dir in runs:
                try:
                    manifest_of(run_dir)
                except BenchError as e:
                    if len(runs) == 1:
                        raise
                    warn(f"{e}; that run is not sent")
                    continue
                _send_run(client, run_dir, uri, results, reports, sent, only)
    except BenchError:
        raise
    except Exception as e:  # noqa: BLE001 - MLflow's (and its HTTP client's) errors are many and unlisted
        raise BenchError(f"MLflow at {uri}: {describe(e)}") from None
    return sent


def _experiment_id(client, name: str, uri: str, results: Path) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    # the embedded store keeps artifacts beside its file (MLflow's default would be ./mlruns in the cwd)
    location = inside(results, ARTIFACTS).resolve().as_uri() if uri.startswith("sqlite") else None
    return client.create_experiment(name, artifact_location=location)


def _existing(client, experiment_id: str, run_id: str) -> dict[str, object]:
    """MLflow runs already holding this bench run: pair name (or "" for the parent) -> MLflow Run."""
    found: dict[str, object] = {}
    token = None
    while True:
        page = client.search_runs([experiment_id], f"tags.`bench.run_id` = '{run_id}'", max_results=1000,
                                  page_token=token)
        for r in page:
            found[r.data.tags.get("bench.pair", "")] = r
        token = page.token
        if not token:
            return found


def _send_run(client, run_dir: Path, uri: str, results: Path, reports: Path | None, sent: Sent,
              only: set[str] | None = None) -> None:
    from mlflow.entities import Param

    manifest = manifest_of(run_dir)
    experiment, run_id = str(dig(manifest, "experiment", str, run_dir.parent.name)), run_dir.name
    sent.experiment_id = exp_id = _experiment_id(client, experiment, uri, results)
    existing = _existing(client, exp_id, run_id)
    common = {"bench.run_id": run_id, "bench.experiment": experiment,
              "bench.identity": str(dig(manifest, "identity", str, "")),
              "mlflow.source.git.commit": str(dig(manifest, "git.commit", str, ""))}
    parent = existing.get("")
    if parent is None:
        parent = client.create_run(exp_id, start_time=_ms(posix(dig(manifest, "started", str))),
                                   tags={**common, "bench.kind": "run"}, run_name=run_id)
        config = dig(manifest, "config", dict, {})
        params = {"experiment": experiment, "identity": common["bench.identity"],
                  "optimizers": ",".join(map(str, config.get("optimizers", []))),
                  "seeds": ",".join(map(str, config.get("seeds", []))),
                  "steps": str(config.get("train", {}).get("steps", ""))}
        client.log_batch(parent.info.run_id, params=[Param(k, v) for k, v in params.items()])
    parent_id = sent.parents[run_id] = parent.info.run_id
    client.log_artifact(parent_id, str(run_dir / "manifest.json"))
    report = (Path(reports) / experiment / run_id) if reports is not None else None
    if report is not None and (report / "index.html").is_file() and not outside(reports, report):
        for f in sorted(report.rglob("*")):
            if f.is_file() and not outside(report, f):
                rel = f.parent.relative_to(report).as_posix()
                client.log_artifact(parent_id, str(f), "report" if rel == "." else f"report/{rel}")

    for pair in pairs(run_dir):
        if only is not None and pair.name not in only:
            continue
        old = existing.get(pair.name)
        if old is not None and old.info.status == "FINISHED":
            sent.skipped += 1
            continue
        if old is not None:
            client.delete_run(old.info.run_id)
        sent.pairs[f"{run_id}/{pair.name}"] = _send_pair(client, exp_id, pair, parent_id, common)

    if only is not None:
        return  # the run is still going: its parent stays RUNNING until the whole run is sent
    # an interrupted run is KILLED until its resume is sent: then FINISHED
    client.set_terminated(parent_id, RUN_STATUS.get(dig(manifest, "status", str), "KILLED"),
                          end_time=_ms(posix(dig(manifest, "finished", str))))


def _ms(t: float | None) -> int | None:
    return None if t is None else int(round(t * 1000))


def _send_pair(client, exp_id: str, pair: Pair, parent_id: str, common: dict) -> str:
    from mlflow.entities import Metric, Param

    status = str(pair.status.get("status", "missing"))
    tags = {**common, "mlflow.parentRunId": parent_id, "bench.pair": pair.name, "bench.optimizer": pair.label,
            "bench.seed": str(pair.seed), "bench.status": status}
    start = pair.time("started")
    run = client.create_run(exp_id, start_time=_ms(start), tags=tags, run_name=pair.name)
    run_id = run.info.run_id
    params = [Param(k, str(v)) for k, v in pair.hparams.items()]
    for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
        client.log_batch(run_id, params=params[i:i + 100])
    base = start if start is not None else 0.0
    metrics = []
    for row in _rows(pair.files.metrics, CSV_COLUMNS):
        step, wall = int(row["step"]), _ms(base + float(row["elapsed_seconds"]))
        for col in CSV_COLUMNS:
            if col in KEY_COLUMNS or col == "status":
                continue
            value = float(row[col])
            if math.isfinite(value):  # MLflow's stores differ on NaN; a diverged step is in the CSV and tags
                metrics.append(Metric(series_tag(col), value, wall, step))
    for row in _rows(pair.files.quality, QUALITY_COLUMNS):
        value = float(row["value"])
        if math.isfinite(value):
            metrics.append(Metric(series_tag(row["metric"], quality=True), value, _ms(base), int(row["step"])))
    for i in range(0, len(metrics), 1000):  # MLflow's batch limit
        client.log_batch(run_id, metrics=metrics[i:i + 1000])
    for name in ("metrics.csv", "quality.csv", "status.json"):
        path = pair.files.root / name
        if path.is_file() and not outside(pair.run_dir, path):
            client.log_artifact(run_id, str(path))
    for png in sorted(pair.files.samples.glob("*.png")):
        if png.is_file() and not outside(pair.run_dir, png):
            client.log_artifact(run_id, str(png), "samples")
    client.set_terminated(run_id, STATUS.get(status, "KILLED"), end_time=_ms(pair.time("finished")))
    return run_id


def _rows(path: Path, columns: tuple[str, ...]):
    """Whole CSV rows as dicts."""
    for line in whole_lines(path, columns):
        yield dict(zip(columns, line.rstrip("\n").split(","), strict=True))


class Live:
    """`bench run --mlflow`: each pair sent as it ends, the parent run (with the report) when the run ends.
    The first failure is said once, in one line, and stops the sending for this run: the training goes on,
    the files are complete, and the line names the command that sends them later. Never raises."""

    def __init__(self, uri: str, reports: Path | None):
        self.uri, self.reports = uri, reports
        self.failed: set[Path] = set()  # run folders whose sending stopped (several experiments: each its own)
        self.sent: dict[Path, int] = {}  # pairs sent so far, per run folder

    def _try(self, run_dir: Path, only: set[str] | None) -> Sent | None:
        if run_dir in self.failed:
            return None
        try:
            return send(run_dir, self.uri, run_dir.parents[1], None if only else self.reports, "--mlflow", only)
        except Exception as e:  # noqa: BLE001 - whatever MLflow raises, the training goes on (one warning)
            e = e if isinstance(e, BenchError) else BenchError(describe(e))
            self.failed.add(run_dir)
            shown = f" --uri {self.uri}" if self.uri else ""
            print(f"bench: warning: not sent to MLflow: {e}; the training goes on and its results are complete in "
                  f"{run_dir}; send them later with: bench export mlflow {run_dir}{shown}", file=sys.stderr)
            return None

    def pair_done(self, run_dir: Path, label: str, seed: int) -> None:
        sent = self._try(run_dir, {run_name(label, seed)})
        if sent is not None:
            self.sent[run_dir] = self.sent.get(run_dir, 0) + len(sent.pairs)

    def run_done(self, run_dir: Path) -> None:
        sent = self._try(run_dir, None)
        if sent is not None:
            print(sent.line(live=self.sent.get(run_dir, 0)), file=sys.stderr)
