"""MLflow: runs logged to a real tracking server and to the embedded store read back with MLflow's own client."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import only_run_dir

pytest.importorskip("mlflow", reason="the test extras install MLflow (pip install -e '.[test]')")

RUN = ["run", "smoke", "--seeds", "0,1", "--steps", "20", "--quiet"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real MLflow tracking server on 127.0.0.1 (its own sqlite store and artifact folder), always stopped."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log = (root / "server.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                             "--workers", "1", "--backend-store-uri", f"sqlite:///{root / 'store.db'}",
                             "--artifacts-destination", str(root / "artifacts")],
                            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=root)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            assert proc.poll() is None, (root / "server.log").read_text()[-3000:]
            assert time.time() < deadline, "the MLflow server did not start in 90 s"
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        yield uri
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its workers
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def _client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _runs(client, run_dir: Path) -> tuple[object, dict[str, object]]:
    exp = client.get_experiment_by_name("smoke")
    found = client.search_runs([exp.experiment_id], f"tags.`bench.run_id` = '{run_dir.name}'")
    parents = [r for r in found if "bench.pair" not in r.data.tags]
    assert len(parents) == 1
    return parents[0], {r.data.tags["bench.pair"]: r for r in found if "bench.pair" in r.data.tags}


def _history(client, run_id: str, key: str) -> pd.DataFrame:
    h = sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)
    return pd.DataFrame({"step": [m.step for m in h], "value": [m.value for m in h]})


def assert_mlflow_equals_files(client, run_dir: Path, pairs: list[str]) -> None:
    """Every pair is a finished child run whose params, metric histories and artifacts are the files'."""
    manifest = json.loads((run_dir / "manifest.json").read_text())
    parent, children = _runs(client, run_dir)
    assert sorted(children) == sorted(pairs)
    for name, run in children.items():
        folder = run_dir / "runs" / name
        label, seed = name.split("-seed")
        assert run.info.status == "FINISHED"
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["mlflow.source.git.commit"] == (manifest["git"]["commit"] or "")
        assert run.data.params["optimizer"] == label and run.data.params["seed"] == seed
        assert float(run.data.params["learning_rate"]) == manifest["optimizers"][label]["generator"]["learning_rate"]
        csv = pd.read_csv(folder / "metrics.csv")
        for column, key in (("g_loss", "train/g_loss"), ("d_loss_real", "train/d_loss_real"),
                            ("d_loss_fake", "train/d_loss_fake"), ("d_x", "train/d_x")):
            got = _history(client, run.info.run_id, key)
            assert got.step.tolist() == csv.step.tolist()
            np.testing.assert_array_equal(got.value.to_numpy(), csv[column].to_numpy())  # float64, exact
        quality = pd.read_csv(folder / "quality.csv")
        swd = quality[quality.metric == "swd"]
        got = _history(client, run.info.run_id, "quality/swd")
        assert got.step.tolist() == swd.step.tolist()
        np.testing.assert_array_equal(got.value.to_numpy(), swd.value.to_numpy())
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"metrics.csv", "quality.csv", "status.json", "samples"} <= artifacts
        samples = {a.path for a in client.list_artifacts(run.info.run_id, "samples")}
        assert samples == {f"samples/{p.name}" for p in (folder / "samples").glob("*.png")}
        with tempfile.TemporaryDirectory() as into:  # without a destination MLflow leaves a folder in /tmp
            local = client.download_artifacts(run.info.run_id, "metrics.csv", into)
            assert Path(local).read_bytes() == (folder / "metrics.csv").read_bytes()
    assert "manifest.json" in {a.path for a in client.list_artifacts(parent.info.run_id)}


@pytest.mark.training
def test_a_run_logs_to_a_real_tracking_server(cli, server, tmp_path, monkeypatch):
    from bench.execute.pair import PairRun

    # what the server holds as each pair starts: the pairs before it were sent as they finished
    held, train = [], PairRun.run

    def observed(self):
        found = _client(server).search_runs(
            [e.experiment_id for e in _client(server).search_experiments()],
            f"tags.`bench.run_id` = '{self.run_dir.name}' and tags.`bench.pair` != ''")
        held.append(len(found))
        return train(self)

    monkeypatch.setattr(PairRun, "run", observed)
    r = cli(*RUN, "--mlflow", server, "--out", tmp_path / "results", "--reports", tmp_path / "reports")
    assert r.code == 0, r.err
    run_dir = only_run_dir(tmp_path / "results", "smoke")
    assert "mlflow: 6 pair(s) sent as they finished" in r.err and "warning" not in r.err
    assert held == [0, 1, 2, 3, 4, 5]
    client = _client(server)
    assert_mlflow_equals_files(client, run_dir, [f"{o}-seed{s}" for o in ("sgd", "rmsprop", "adam") for s in (0, 1)])
    parent, _ = _runs(client, run_dir)
    report = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert "report/index.html" in report and "report/verdict.json" in report
    # sending again adds nothing: every pair is already there, finished
    again = cli("export", "mlflow", run_dir, "--uri", server)
    assert again.code == 0 and "0 pair(s) sent, 6 already there" in again.out
    assert len(_runs(client, run_dir)[1]) == 6


@pytest.mark.training
def test_a_server_that_is_down_costs_one_warning_then_export_sends_the_run(cli, server, tmp_path):
    closed = f"http://127.0.0.1:{_free_port()}"
    r = cli("run", "smoke", "--optimizers", "adam", "--seeds", "0", "--steps", "20", "--quiet", "--no-report",
            "--mlflow", closed, "--out", tmp_path)
    assert r.code == 0, r.err
    run_dir = only_run_dir(tmp_path, "smoke")
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "finished"
    warnings = [ln for ln in r.err.splitlines() if "mlflow" in ln.lower()]
    assert len(warnings) == 1 and "unreachable" in warnings[0], r.err
    assert f"bench export mlflow {run_dir} --uri {closed}" in warnings[0]
    sent = cli("export", "mlflow", run_dir, "--uri", server)
    assert sent.code == 0, sent.err
    assert_mlflow_equals_files(_client(server), run_dir, ["adam-seed0"])


@pytest.mark.training
def test_without_a_uri_the_embedded_store_and_bench_load_agree(cli, tmp_path, monkeypatch):
    import bench

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    out = tmp_path / "results"
    r = cli("run", "smoke", "--optimizers", "sgd,adam", "--seeds", "0", "--steps", "20", "--quiet", "--no-report",
            "--mlflow", "--out", out)
    assert r.code == 0, r.err
    assert (out / "mlflow.db").is_file() and list(cwd.iterdir()) == []  # nothing outside --out (no ./mlruns)
    run_dir = only_run_dir(out, "smoke")
    client = _client(f"sqlite:///{out / 'mlflow.db'}")
    assert_mlflow_equals_files(client, run_dir, ["sgd-seed0", "adam-seed0"])
    loaded = bench.load(out)
    _, children = _runs(client, run_dir)
    for run in children.values():
        rows = loaded.metrics[(loaded.metrics.optimizer == run.data.params["optimizer"]) & (loaded.metrics.seed == 0)]
        got = _history(client, run.info.run_id, "train/g_loss")
        np.testing.assert_array_equal(got.value.to_numpy(), rows.g_loss.to_numpy())


@pytest.mark.parametrize("uri", ["ftp://example.org", "sqlite://", "http://", "file:///tmp/x"])
def test_a_bad_uri_is_refused_before_anything_is_written(cli, tmp_path, uri):
    r = cli(*RUN, "--mlflow", uri, "--out", tmp_path / "results")
    assert r.code == 2 and r.err.count("\n") == 1 and "--mlflow" in r.err, r.err
    assert not (tmp_path / "results").exists()
