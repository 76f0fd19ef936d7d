"""`bench baseline` / `bench check`: pass on the same run, flag the right rows on a changed one."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from fakeruns import make_run

from bench.analysis import trends


@pytest.fixture(scope="module")
def runs(tmp_path_factory, golden):
    """The golden smoke run, its baseline, and the golden run whose adam learning rate is 10x larger."""
    from bench.cli import main

    root = tmp_path_factory.mktemp("trends")
    assert main(["baseline", str(golden["base"]), "-o", str(root / "baseline.json")]) == 0
    return {"base": golden["base"], "fast": golden["fast"], "baseline": root / "baseline.json", "root": root}


def test_baseline_file_is_small_and_complete(runs):
    b = json.loads(runs["baseline"].read_text())
    assert runs["baseline"].stat().st_size < 64_000
    assert b["experiment"] == "smoke" and len(b["identity"]) == 16 and b["seeds"] == [0, 1, 2] and b["steps"] == 40
    assert set(b["metrics"]) == {"sgd", "rmsprop", "adam"}
    for name in ("d_loss_real.w1", "g_loss.w4", "d_loss_fake.final", "g_loss.slope", "diversity.final"):
        band = b["metrics"]["adam"][name]
        assert band["q25"] <= band["median"] <= band["q75"] and len(band["values"]) == 3
    assert b["metrics"]["sgd"]["diverged"] == {"count": 0, "of": 3}


def test_check_passes_against_own_baseline(cli, runs, tmp_path):
    r = cli("check", runs["base"], "--baseline", runs["baseline"], "--json", tmp_path / "r.json", "--junit", tmp_path / "r.xml")
    assert r.code == 0, r.out + r.err
    assert "passed: all" in r.out and "REGRESSION" not in r.out
    assert json.loads((tmp_path / "r.json").read_text())["passed"] is True
    suites = ET.parse(tmp_path / "r.xml").getroot()
    assert suites.tag == "testsuites" and not suites.findall(".//failure")
    assert len(suites.findall(".//testcase")) == len(json.loads((tmp_path / "r.json").read_text())["rows"])


def test_check_flags_the_changed_optimizer_only(cli, runs, tmp_path):
    r = cli("check", runs["fast"], "--baseline", runs["baseline"], "--json", tmp_path / "r.json", "--junit", tmp_path / "r.xml")
    assert r.code == 1, r.out + r.err
    assert "experiment identity differs" in r.out and "optimizers.adam.learning_rate: 0.0002 -> 0.002" in r.out
    rows = json.loads((tmp_path / "r.json").read_text())["rows"]
    failed = [row for row in rows if row["verdict"] != "ok"]
    assert failed and {row["optimizer"] for row in failed} == {"adam"}
    # sgd and rmsprop are bit-identical to the baseline run (paired design): exactly the baseline median
    for row in rows:
        if row["optimizer"] != "adam" and row["metric"] != "diverged":
            assert row["value"] == pytest.approx(row["baseline"], abs=1e-12)
    assert "FAILED:" in r.out and "adam" in r.out.split("FAILED:")[1]
    failures = ET.parse(tmp_path / "r.xml").getroot().findall(".//testcase[failure]")
    assert {c.get("classname") for c in failures} == {"bench.adam"}
    # a generous override for adam's metrics turns it green
    r = cli("check", runs["fast"], "--baseline", runs["baseline"], "--tolerance", "adam.*:100",
            "--tolerance", "adam.rfd.final:50%", "--failures-only")  # RFD's scale is thousands: relative
    assert r.code == 0, r.out


def test_strict_identity_refuses_a_changed_experiment(cli, runs):
    r = cli("check", runs["fast"], "--baseline", runs["baseline"], "--strict-identity")
    assert r.code == 2 and "experiment identity differs" in r.err


def test_divergence_is_a_regression(cli, tmp_path):
    ok = make_run(tmp_path / "a", optimizers=("sgd", "adam"), seeds=(0, 1))
    bad = make_run(tmp_path / "b", optimizers=("sgd", "adam"), seeds=(0, 1), diverge={("sgd", 0): 30},
                   state="finished-with-divergence")
    assert cli("baseline", ok, "-o", tmp_path / "b.json").code == 0
    r = cli("check", bad, "--baseline", tmp_path / "b.json", "--failures-only")
    assert r.code == 1
    assert any(line.split()[:2] == ["sgd", "diverged"] for line in r.out.splitlines())


def test_a_metric_redefined_since_the_baseline_is_not_checked_and_says_why(cli, runs, tmp_path):
    """Runs and baselines record each quality metric's definition (its version): values of two definitions are
    never checked against each other, and a baseline from before they were recorded gets a note."""
    import shutil

    from bench.quality.scores import VERSIONS

    run = tmp_path / "run"
    shutil.copytree(runs["base"], run)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["metric_versions"] = dict(VERSIONS)  # a run of today's bench (the golden run predates the record)
    (run / "manifest.json").write_text(json.dumps(manifest))
    assert cli("baseline", run, "-o", tmp_path / "now.json").code == 0
    now = json.loads((tmp_path / "now.json").read_text())
    assert now["metric_versions"] == VERSIONS
    r = cli("check", run, "--baseline", tmp_path / "now.json")
    assert r.code == 0 and "redefined since" not in r.out and "passed: all" in r.out, r.out
    older = {**now, "metric_versions": {**VERSIONS, "memorisation": VERSIONS["memorisation"] - 1}}
    (tmp_path / "older.json").write_text(json.dumps(older))
    r = cli("check", run, "--baseline", tmp_path / "older.json", "--json", tmp_path / "r.json")
    assert r.code == 0, r.out
    assert f"memorisation (version {VERSIONS['memorisation'] - 1} -> {VERSIONS['memorisation']})" in r.out
    rows = json.loads((tmp_path / "r.json").read_text())["rows"]
    skipped = {(row["optimizer"], row["metric"]) for row in rows if row["verdict"] == "skipped"}
    assert skipped == {(o, "memorisation.final") for o in ("sgd", "rmsprop", "adam")}
    assert "skipped: 3 trend metrics were redefined since the baseline" in r.out
    unrecorded = {k: v for k, v in now.items() if k != "metric_versions"}
    (tmp_path / "unrecorded.json").write_text(json.dumps(unrecorded))
    r = cli("check", run, "--baseline", tmp_path / "unrecorded.json")
    assert r.code == 0 and "does not record the quality metrics' definitions" in r.out, r.out
    assert "memorisation (version" in r.out


@pytest.mark.parametrize("content, message", [
    ("not json", "not valid JSON"),
    ('{"schema": 99, "metrics": {}}', "not a bench baseline"),
    ('{"schema": 1, "metrics": {"adam": {"g_loss.final": {"median": 1}}}, "steps": 40}', "lacks median/q25/q75"),
    ('{"schema": 1, "metrics": {"adam": 3}, "steps": 40}', "is not a table"),
    ('{"schema": 1, "metrics": {}}', "no step count"),
    (None, "not found"),
])
def test_bad_baseline_files_exit_2(cli, runs, tmp_path, content, message):
    path = tmp_path / "b.json"
    if content is not None:
        path.write_text(content)
    r = cli("check", runs["base"], "--baseline", path)
    assert r.code == 2 and message in r.err and len(r.err.strip().splitlines()) == 1


def test_unusable_runs_exit_2(cli, runs, tmp_path):
    cut = make_run(tmp_path, steps=40, cut_at=10, state="running", optimizers=("sgd", "rmsprop", "adam"))
    r = cli("check", cut, "--baseline", runs["baseline"])
    assert r.code == 2 and "interrupted" in r.err
    other = make_run(tmp_path / "o", steps=50, optimizers=("sgd", "rmsprop", "adam"))
    r = cli("check", other, "--baseline", runs["baseline"])
    assert r.code == 2 and "windows would not line up" in r.err
    few = make_run(tmp_path / "f", steps=40, optimizers=("sgd",))
    r = cli("check", few, "--baseline", runs["baseline"])
    assert r.code == 2 and "the run has no rmsprop, adam" in r.err
    r = cli("check", runs["base"], "--baseline", runs["baseline"], "--tolerance", "g_loss.final")
    assert r.code == 2 and "expected METRIC:AMOUNT" in r.err


def test_tolerance_derivation_and_overrides():
    band = {"median": 1.0, "q25": 0.9, "q75": 1.2}
    assert trends.tolerance(band, "adam", "g_loss.final", []) == pytest.approx((0.9, "3xIQR"))
    narrow = {"median": 1.0, "q25": 1.0, "q75": 1.0}
    assert trends.tolerance(narrow, "adam", "g_loss.final", []) == pytest.approx((0.1, "floor"))
    assert trends.tolerance(narrow, "adam", "g_loss.slope", [])[0] == pytest.approx(0.5)
    rel = trends.Override.parse("g_loss.final:15%")
    assert trends.tolerance(band, "adam", "g_loss.final", [rel]) == pytest.approx((0.15, "15% override"))
    absolute = trends.Override.parse("*.slope:0.5")
    assert absolute.matches("adam", "d_loss_real.slope") and not absolute.matches("adam", "d_loss_real.final")
    per_opt = trends.Override.parse("sgd.g_loss.*:1")
    assert per_opt.matches("sgd", "g_loss.w2") and not per_opt.matches("adam", "g_loss.w2")
