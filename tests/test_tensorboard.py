"""TensorBoard: every run writes event files that TensorBoard's own reader and server show as the CSVs say."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import only_run_dir
from tbread import accumulator, assert_scalars_equal_csv

PAIRS = [f"{o}-seed{s}" for o in ("sgd", "rmsprop", "adam") for s in (0, 1)]


@pytest.fixture(scope="module")
def tb_run(tmp_path_factory):
    from bench.cli import main

    out = tmp_path_factory.mktemp("tb")
    assert main(["run", "smoke", "--seeds", "0,1", "--steps", "40", "--quiet", "--no-report", "--out", str(out)]) == 0
    return only_run_dir(out, "smoke")


@pytest.mark.training
def test_every_csv_value_image_and_hyperparameter_is_in_the_events(tb_run):
    from tensorboard.plugins.hparams import api_pb2, metadata

    manifest = json.loads((tb_run / "manifest.json").read_text())
    for pair in PAIRS:
        folder = tb_run / "runs" / pair
        assert len(list(folder.glob("events.out.tfevents.*"))) == 1
        assert_scalars_equal_csv(folder)
        acc = accumulator(folder)
        pngs = sorted((folder / "samples").glob("step_*.png"))
        images = acc.Images("samples")
        assert [e.step for e in images] == [int(p.stem.split("_")[1]) for p in pngs] == [0, 20, 40]
        assert [e.encoded_image_string for e in images] == [p.read_bytes() for p in pngs]
        content = acc.PluginTagToContent(metadata.PLUGIN_NAME)
        start = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
        label, seed = pair.split("-seed")
        hp = start.hparams
        assert hp["optimizer"].string_value == label and hp["seed"].number_value == int(seed)
        assert hp["experiment"].string_value == "smoke" and hp["run"].string_value == tb_run.name
        want = manifest["optimizers"][label]["generator"]["learning_rate"]
        assert hp["learning_rate"].number_value == pytest.approx(want)
        assert start.group_name == f"{tb_run.name}/{pair}"  # one row per (optimizer, seed) in the HParams table
        end = metadata.parse_session_end_info_plugin_data(content[metadata.SESSION_END_INFO_TAG])
        assert end.status == api_pb2.STATUS_SUCCESS


@pytest.mark.training
def test_no_tensorboard_then_export_writes_the_same_events(cli, tmp_path):
    args = ["run", "smoke", "--optimizers", "adam", "--seeds", "0", "--steps", "20", "--quiet", "--no-report"]
    assert cli(*args, "--no-tensorboard", "--out", tmp_path / "off").code == 0
    off = only_run_dir(tmp_path / "off", "smoke")
    assert not list(off.rglob("events.out.tfevents.*"))
    r = cli("export", "tensorboard", off)
    assert r.code == 0, r.err
    assert_scalars_equal_csv(off / "runs/adam-seed0")
    assert [e.step for e in accumulator(off / "runs/adam-seed0").Images("samples")] == [0, 20]
    # exporting again replaces the files: still one event file, each point once
    assert cli("export", "tensorboard", off).code == 0
    assert len(list(off.rglob("events.out.tfevents.*"))) == 1
    assert_scalars_equal_csv(off / "runs/adam-seed0")
    r = cli("export", "tensorboard", tmp_path / "nowhere")
    assert r.code == 2 and r.err.count("\n") == 1 and "Traceback" not in r.err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


@pytest.mark.training
def test_a_real_tensorboard_server_shows_every_pair(tb_run):
    logdir = tb_run.parents[1]
    port = _free_port()
    exe = Path(sys.executable).with_name("tensorboard")
    proc = subprocess.Popen([str(exe), "--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port),
                             "--reload_interval", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        names = {f"smoke/{tb_run.name}/runs/{p}" for p in PAIRS}
        deadline, tags = time.time() + 90, {}
        while time.time() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            try:
                tags = _get(f"{base}/data/plugin/scalars/tags")
                if names <= set(tags) and all("quality/swd" in tags[n] for n in names):
                    break
            except OSError:
                pass
            time.sleep(0.5)
        assert names <= set(tags), sorted(tags)
        for name in names:
            assert {"train/d_loss_real", "train/d_loss_fake", "train/g_loss", "quality/swd"} <= set(tags[name])
        name = f"smoke/{tb_run.name}/runs/adam-seed1"
        query = urllib.parse.urlencode({"run": name, "tag": "train/g_loss"})
        points = _get(f"{base}/data/plugin/scalars/scalars?{query}")
        csv = pd.read_csv(tb_run / "runs/adam-seed1/metrics.csv")
        assert [p[1] for p in points] == csv.step.tolist()
        np.testing.assert_array_equal(np.float32([p[2] for p in points]), csv.g_loss.to_numpy(np.float32))
        images = _get(f"{base}/data/plugin/images/tags")
        assert all("samples" in images[n] for n in names)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
