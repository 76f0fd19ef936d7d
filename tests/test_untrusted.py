"""Hardening, second round: outputs written where they point, run folders treated as untrusted input, every
newer surface (compare, check outputs, MLflow, TensorBoard export, bench.load) failing cleanly.

Nothing here trains but the two `bench run` cases at the end (a few iterations each); the rest reads copies
of the committed golden runs or fake runs in temporary folders. No test names a device node or a system
path: character devices are ptys this test opens, streams are FIFOs in its temporary folder.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import threading
import time
import tty
from pathlib import Path

import pytest
from fakeruns import falling_swd, make_run


@pytest.fixture
def run(golden, tmp_path) -> Path:
    """A copy of the golden verdict run (adam against adam at 1e-7, six seeds), free to damage."""
    dst = tmp_path / "results" / "smoke" / "RUN"
    shutil.copytree(golden["verdict"], dst)
    return dst


def one_line_error(r) -> str:
    lines = [ln for ln in r.err.strip().splitlines() if ln]
    assert r.code == 2 and len(lines) == 1 and lines[0].startswith("bench: error: "), (r.code, r.err)
    assert "Traceback" not in r.err and "internal error" not in r.err
    return lines[0]


# ------------------------------------------------------------------ outputs the user names


def _outputs(cli, run: Path, tmp_path: Path, target: dict[str, Path]) -> dict[str, int]:
    """Every command that takes an output file, each writing to ``target[option]``; their exit codes."""
    codes = {}
    own = tmp_path / "own-baseline.json"
    if not own.exists():
        assert cli("baseline", run, "-o", own).code == 0
    codes["check"] = cli("check", run, "--baseline", own, "--markdown", target["markdown"], "--junit",
                         target["junit"], "--json", target["json"]).code
    codes["compare"] = cli("compare", run, "--json", target["compare"]).code
    codes["baseline"] = cli("baseline", run, "-o", target["baseline"]).code
    return codes


KINDS = ("markdown", "junit", "json", "compare", "baseline")


def test_outputs_are_written_through_a_symlink_to_its_target(cli, run, tmp_path):
    links = {k: tmp_path / f"link-{k}" for k in KINDS}
    targets = {k: tmp_path / f"target-{k}" for k in KINDS}
    for k in KINDS:
        targets[k].write_text("old")
        links[k].symlink_to(targets[k])
    codes = _outputs(cli, run, tmp_path, links)
    assert codes["compare"] == 0 and codes["baseline"] == 0 and codes["check"] in (0, 1)
    for k in KINDS:
        assert links[k].is_symlink(), k  # still the user's link ...
        assert targets[k].read_text() != "old", k  # ... and the content went where it points
    assert "trend metrics" in targets["markdown"].read_text()
    assert targets["junit"].read_text().startswith("<?xml")
    assert json.loads(targets["compare"].read_text())["verdicts"]
    assert json.loads(targets["baseline"].read_text())["schema"] == 1


def test_outputs_stream_into_a_fifo(cli, run, tmp_path):
    fifos = {k: tmp_path / f"fifo-{k}" for k in KINDS}
    got: dict[str, bytes] = {}

    def reader(k: str) -> None:
        with open(fifos[k], "rb") as f:  # blocks until bench opens it for writing
            got[k] = f.read()

    threads = []
    for k in KINDS:
        os.mkfifo(fifos[k])
        t = threading.Thread(target=reader, args=(k,), daemon=True)
        t.start()
        threads.append(t)
    codes = _outputs(cli, run, tmp_path, fifos)
    for t in threads:
        t.join(timeout=30)
        assert not t.is_alive(), "a FIFO reader never saw its writer"
    assert codes["compare"] == 0 and codes["baseline"] == 0
    for k in KINDS:
        assert fifos[k].is_fifo() and not fifos[k].is_file(), k  # never replaced by a regular file
        assert got[k], k
    assert json.loads(got["compare"])["verdicts"] and got["junit"].startswith(b"<?xml")


def test_outputs_stream_into_a_character_device(cli, run, tmp_path):
    master, slave = os.openpty()  # a character device of our own: never the machine's device nodes
    try:
        tty.setraw(slave)  # no newline translation: the bytes arrive as written
        name = os.ttyname(slave)
        assert Path(name).is_char_device()
        received = bytearray()
        stop = threading.Event()

        def drain() -> None:
            import select

            while not stop.is_set():
                ready, _, _ = select.select([master], [], [], 0.1)
                if ready:
                    try:
                        received.extend(os.read(master, 1 << 16))
                    except OSError:
                        return

        t = threading.Thread(target=drain, daemon=True)
        t.start()
        r = cli("compare", run, "--json", name)
        deadline = time.time() + 10
        while time.time() < deadline and not received.rstrip().endswith(b"}"):
            time.sleep(0.05)
        stop.set()
        t.join(timeout=5)
        assert r.code == 0, r.err
        assert Path(name).is_char_device()
        assert json.loads(bytes(received))["verdicts"]
    finally:
        os.close(master)
        os.close(slave)


def test_an_output_that_is_a_folder_is_one_line(cli, run, tmp_path):
    line = one_line_error(cli("compare", run, "--json", tmp_path))
    assert "a folder" in line


# ------------------------------------------------------------------ MLflow URIs, stores and silent servers


BAD_URIS = [
    ("http://127.0.0.1:notaport", "not a valid URI"),
    ("http://[::1", "not a valid URI"),
    ("http://127.0.0.1:70000", "not a valid URI"),
    ("http://127.0.0.1:0", "port 0"),
    ("http://:5000", "no host"),
    ("http://a b:5000", "no spaces"),
    ("ftp://127.0.0.1", "expected http://HOST:PORT"),
    ("sqlite://", "names a file"),
]


@pytest.mark.parametrize("uri, fragment", BAD_URIS, ids=[u for u, _ in BAD_URIS])
def test_every_mlflow_uri_is_checked_whole_before_anything_is_written(cli, run, tmp_path, uri, fragment):
    out = tmp_path / "out"
    before = sorted(p.name for p in run.parents[1].iterdir())
    assert fragment in one_line_error(cli("run", "smoke", "--mlflow", uri, "--steps", "2", "--out", out))
    assert fragment in one_line_error(cli("export", "mlflow", run, "--uri", uri))
    assert not out.exists() and sorted(p.name for p in run.parents[1].iterdir()) == before


def test_an_unwritable_sqlite_store_is_refused_up_front(cli, run, tmp_path):
    (tmp_path / "afile").write_text("a file where a folder should be")
    store = f"sqlite:///{tmp_path / 'afile' / 'mlflow.db'}"
    t0 = time.perf_counter()
    assert "cannot" in one_line_error(cli("run", "smoke", "--mlflow", store, "--steps", "2", "--out", tmp_path / "o"))
    assert "cannot" in one_line_error(cli("export", "mlflow", run, "--uri", store))
    assert time.perf_counter() - t0 < 10  # no retries for minutes
    assert not (tmp_path / "o").exists()


@pytest.fixture
def silent_server():
    """A TCP server on 127.0.0.1 that accepts connections and never answers; always stopped."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held, stop = [], threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stop.set()
        t.join(timeout=5)
        for c in held:
            c.close()
        sock.close()


@pytest.mark.training
def test_a_silent_server_is_bounded_then_one_warning_and_the_run_completes(cli, tmp_path, silent_server, monkeypatch):
    pytest.importorskip("mlflow")
    from bench.export.mlflow import SILENT_S

    assert SILENT_S <= 10
    monkeypatch.setenv("BENCH_MLFLOW_TIMEOUT", "1")
    t0 = time.perf_counter()
    r = cli("run", "smoke", "--optimizers", "adam", "--seeds", "0,1", "--steps", "3", "--no-eval", "--quiet",
            "--mlflow", silent_server, "--out", tmp_path / "out", "--reports", tmp_path / "reports")
    assert r.code == 0, r.err
    warnings = [ln for ln in r.err.splitlines() if "MLflow" in ln]
    assert len(warnings) == 1 and "unreachable" in warnings[0] and "bench export mlflow" in warnings[0]
    assert time.perf_counter() - t0 < 60
    manifest = json.loads(next((tmp_path / "out" / "smoke").glob("*/manifest.json")).read_text())
    assert manifest["status"] == "finished" and len(manifest["runs"]) == 2
    t0 = time.perf_counter()
    assert "unreachable" in one_line_error(cli("export", "mlflow", tmp_path / "out", "--uri", silent_server))
    assert time.perf_counter() - t0 < 1 + 5


def test_anything_the_mlflow_client_raises_during_a_run_is_one_warning(monkeypatch, capsys, tmp_path):
    from bench.export import mlflow as M

    def broken(*args, **kwargs):
        raise ValueError("an error MLflow's client never documented")

    monkeypatch.setattr(M, "send", broken)
    live = M.Live("http://127.0.0.1:5000", None)
    run_dir = tmp_path / "out" / "smoke" / "RUN"
    live.pair_done(run_dir, "adam", 0)
    live.pair_done(run_dir, "adam", 1)  # after the first failure: silent
    live.run_done(run_dir)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bench: warning: not sent to MLflow") and "ValueError" in err[0]


# ------------------------------------------------------------------ symlinks out of a run folder


@pytest.fixture
def secret(tmp_path) -> Path:
    s = tmp_path / "elsewhere" / "secret.png"
    s.parent.mkdir()
    s.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not yours to read " * 20)
    return s


def test_report_never_embeds_a_file_a_symlink_leads_to(cli, run, secret, tmp_path):
    (run / "real.png").unlink()
    (run / "real.png").symlink_to(secret)
    sample = run / "runs" / "adam-seed0" / "samples" / "step_000400.png"
    sample.unlink()
    sample.symlink_to(secret)
    r = cli("report", run, "--out", tmp_path / "reports")
    assert r.code == 0, r.err
    html = next((tmp_path / "reports").glob("*/*/index.html")).read_text()
    assert base64.b64encode(secret.read_bytes()).decode()[:40] not in html
    assert str(run / "real.png") in r.err and str(sample) in r.err and "leads out of" in r.err


def test_export_never_writes_or_deletes_through_a_pair_folder_symlink(cli, run, tmp_path):
    elsewhere = tmp_path / "elsewhere-pair"
    shutil.copytree(run / "runs" / "adam-seed0", elsewhere)
    (elsewhere / "events.out.tfevents.1.keep").write_bytes(b"someone else's file")
    before = sorted(p.name for p in elsewhere.iterdir())
    shutil.rmtree(run / "runs" / "adam-seed0")
    (run / "runs" / "adam-seed0").symlink_to(elsewhere)
    r = cli("export", "tensorboard", run)
    assert r.code == 0, r.err
    assert sorted(p.name for p in elsewhere.iterdir()) == before  # nothing deleted, nothing written there
    assert "adam-seed0" in r.err and "leads out of" in r.err
    assert list((run / "runs" / "adam-seed1").glob("events.out.tfevents.*"))  # the other pairs were exported


@pytest.mark.integration
def test_mlflow_export_never_uploads_a_file_a_symlink_leads_to(cli, golden, secret, tmp_path):
    pytest.importorskip("mlflow")
    run = tmp_path / "results" / "smoke" / "RUN"  # a short run: MLflow's store takes ~0.3 ms per value logged
    shutil.copytree(golden["base"], run)
    pairs = sorted(p.name for p in (run / "runs").iterdir())
    sample = run / "runs" / "adam-seed0" / "samples" / "step_000000.png"
    sample.unlink()
    sample.symlink_to(secret)
    r = cli("export", "mlflow", run)
    assert r.code == 0, r.err
    uploaded = [p for p in (run.parents[1] / "mlartifacts").rglob("*") if p.is_file()]
    assert uploaded and not any(p.read_bytes() == secret.read_bytes() for p in uploaded)
    assert len(pairs) == 9 and sum(p.name == "step_000000.png" for p in uploaded) == len(pairs) - 1  # all but the link


def test_resume_refuses_a_run_folder_with_a_symlink_out(cli, run, tmp_path):
    target = tmp_path / "elsewhere.npz"
    target.write_bytes(b"x")
    (run / "runs" / "adam-seed0" / "checkpoint-000000999.npz").symlink_to(target)
    line = one_line_error(cli("run", "--resume", run, "--quiet"))
    assert "symlink leading out of" in line and "checkpoint-000000999.npz" in line
    assert target.read_bytes() == b"x"


def test_load_skips_a_run_folder_linked_from_elsewhere(run, tmp_path, capsys):
    import bench

    elsewhere = tmp_path / "other" / "RUN2"
    shutil.copytree(run, elsewhere)
    (run.parent / "RUN2").symlink_to(elsewhere)
    runs = bench.load(run.parents[1])
    assert set(runs.pairs.run) == {"RUN"}
    assert "leads out of" in capsys.readouterr().err


# ------------------------------------------------------------------ compare takes each run once


def test_compare_takes_a_run_given_twice_once(cli, run, tmp_path):
    twice = cli("compare", run, run.parent / ".." / "smoke" / "RUN", "--json", tmp_path / "v.json")
    once = cli("compare", run, "--json", tmp_path / "once.json")
    assert twice.code == 0 and once.code == 0
    assert "compared once" in twice.out
    v2, v1 = (json.loads((tmp_path / n).read_text()) for n in ("v.json", "once.json"))
    assert [c["a"] + c["b"] for c in v2["comparisons"]] == [c["a"] + c["b"] for c in v1["comparisons"]]
    assert all(c["a"] != c["b"] for c in v2["comparisons"])


def test_compare_of_a_copy_in_another_results_folder_is_one_run(cli, run, tmp_path):
    copy = tmp_path / "elsewhere" / "smoke" / "RUN"
    shutil.copytree(run, copy)
    r = cli("compare", run, copy, "--json", tmp_path / "v.json")
    assert r.code == 0 and "a copy" in r.out
    v = json.loads((tmp_path / "v.json").read_text())
    assert len(v["runs"]) == 1 and v["verdicts"][0]["optimizers"] == ["adam", "frozen"]


def test_two_runs_with_one_id_get_unique_labels(cli, tmp_path):
    a = make_run(tmp_path / "one", optimizers=("sgd", "adam"), seeds=tuple(range(6)), quality=falling_swd("adam"))
    b = make_run(tmp_path / "two", optimizers=("sgd", "adam"), seeds=tuple(range(6)), quality=falling_swd("sgd"))
    manifest = json.loads((b / "manifest.json").read_text())
    (b / "manifest.json").write_text(json.dumps({**manifest, "started": "another time"}))
    r = cli("compare", a, b, "--json", tmp_path / "v.json")
    assert r.code == 0, r.err
    v = json.loads((tmp_path / "v.json").read_text())["verdicts"][0]
    assert len(set(v["optimizers"])) == 4 and all(c["a"] != c["b"] for c in v["comparisons"])


def test_compare_accepts_an_experiment_or_results_folder(cli, run, tmp_path):
    for folder in (run.parent, run.parents[1]):
        r = cli("compare", folder)
        assert r.code == 0, r.err
        assert "adam" in r.out


@pytest.mark.integration
def test_compare_grows_linearly_with_the_runs(tmp_path):
    from bench.analysis.compare import compare

    roots = []
    for i in range(4):  # 12 optimizers: past ALL_PAIRS_MAX, each against the reference only
        roots.append(make_run(tmp_path / f"r{i}", optimizers=("sgd", "adam", "rmsprop"), seeds=tuple(range(6)),
                              run_id=f"2026010{i}-000000", quality=falling_swd("adam"), steps=40))
    result = compare(roots)
    v = result["objects"][0]
    k = len(v.optimizers)
    per_metric = {c.metric: 0 for c in v.comparisons}
    for c in v.comparisons:
        per_metric[c.metric] += 1
    assert k == 12 and set(per_metric.values()) == {k - 1}  # each against the reference, not 66 pairs
    assert len(json.dumps({x: y for x, y in result.items() if x != "objects"}, default=str)) < 10_000_000


# ------------------------------------------------------------------ garbled files


def test_text_in_a_csv_is_one_line_naming_the_file(cli, run):
    q = run / "runs" / "adam-seed1" / "quality.csv"
    lines = q.read_text().splitlines(keepends=True)
    lines[3] = lines[3].rsplit(",", 2)[0] + ",hello,0.1\n"
    q.write_text("".join(lines))
    line = one_line_error(cli("compare", run))
    assert "quality.csv: line 4" in line and "hello" in line
    m = run / "runs" / "frozen-seed2" / "metrics.csv"
    text = m.read_text().replace(m.read_text().splitlines()[5].split(",")[4], "abc", 1)
    q.write_text("".join(lines).replace("hello", "1.5"))
    m.write_text(text)
    assert "metrics.csv: line 6" in one_line_error(cli("compare", run))


def test_bench_compare_raises_bench_error_not_value_error(run):
    import bench

    m = run / "runs" / "adam-seed0" / "metrics.csv"
    m.write_text(m.read_text().replace(",ok,", ",maybe,", 1))
    with pytest.raises(bench.BenchError, match="metrics.csv: line 2"):
        bench.compare(run)


def test_a_sample_that_is_not_an_image_is_skipped_before_any_event_is_removed(cli, run):
    pair = run / "runs" / "adam-seed0"
    assert cli("export", "tensorboard", run).code == 0
    (pair / "samples" / "step_000200.png").write_bytes(b"\x89PNG\r\n\x1a\n but nothing after it")
    r = cli("export", "tensorboard", run)
    assert r.code == 0 and "step_000200.png: not a readable PNG" in r.err
    from tbread import accumulator, assert_scalars_equal_csv

    assert_scalars_equal_csv(pair)  # every row there: not deleted and half rewritten
    assert len(accumulator(pair).Images("samples")) == len(list((pair / "samples").glob("*.png"))) - 1


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    """Fake runs of two experiments (adam better in 7 of 7 seeds) and their reports with a leaderboard, built once;
    each test works on its own copy."""
    from bench.cli import main

    root = tmp_path_factory.mktemp("reported")
    for e in ("faces", "digits"):
        make_run(root / "res", optimizers=("sgd", "adam"), seeds=tuple(range(7)), steps=40, experiment=e,
                 quality=falling_swd("adam"))
    assert main(["report", str(root / "res"), "--out", str(root / "reports")]) == 0
    assert (root / "reports" / "leaderboard.html").exists() and (root / "reports" / "leaderboard.json").exists()
    return root


def _copy_of(reported: Path, where: Path) -> tuple[Path, Path]:
    shutil.copytree(reported, where, symlinks=True)
    return where / "res", where / "reports"


@pytest.mark.integration
def test_one_garbled_verdict_json_does_not_stop_the_reports(cli, tmp_path, reported):
    res, reports = _copy_of(reported, tmp_path / "w")
    runs = {e: next((res / e).iterdir()) for e in ("faces", "digits")}
    v = reports / "faces" / runs["faces"].name / "verdict.json"
    v.write_text(v.read_text().replace('"primary": "swd.final"', '"primary": "bogus.final"', 1))
    r = cli("report", runs["digits"], "--out", reports)
    assert r.code == 0, r.err
    assert "bogus.final" in r.err and "left out of the leaderboard" in r.err


def test_a_torn_manifest_skips_that_run_in_load(run, tmp_path, capsys):
    import bench

    other = run.parent / "RUN2"
    shutil.copytree(run, other)
    (other / "manifest.json").write_text((other / "manifest.json").read_text()[:100])
    runs = bench.load(run.parents[1])
    assert set(runs.pairs.run) == {"RUN"} and "RUN2/manifest.json" in capsys.readouterr().err
    with pytest.raises(bench.BenchError, match="manifest.json: unreadable JSON"):
        bench.load(other)


def test_load_of_an_empty_path_is_refused():
    import bench

    for bad in ("", None, 3):
        with pytest.raises(bench.BenchError, match="expected the path"):
            bench.load(bad)


# ------------------------------------------------------------------ smaller items


def test_a_swd_of_zero_or_below_is_not_a_300_digit_percentage(run, cli):
    for seed in (0, 1):
        q = run / "runs" / f"adam-seed{seed}" / "quality.csv"
        q.write_text("".join(ln if ",swd," not in ln else ",".join(ln.split(",")[:4] + ["-5.0", ln.split(",")[5]])
                             for ln in q.read_text().splitlines(keepends=True)))
    r = cli("compare", run)
    assert r.code == 0, r.err
    assert not any(len(tok) > 12 and tok.rstrip("%]").lstrip("[+-").isdigit() for tok in r.out.split())
    assert "swd" in r.out and "not positive" in r.out


def test_time_to_target_never_names_a_reference_that_failed_everywhere(tmp_path, cli):
    run = make_run(tmp_path, optimizers=("sgd", "adam"), seeds=tuple(range(6)), steps=60,
                   diverge={("sgd", s): 30 for s in range(6)}, quality=falling_swd("adam"))
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["config"]["compare"] = {"reference": "sgd"}
    (run / "manifest.json").write_text(json.dumps(manifest))
    r = cli("compare", run)
    assert r.code == 0, r.err
    line = next(ln for ln in r.out.splitlines() if "time to target" in ln)
    assert "sgd's" not in line and "failed on every seed" in line


def test_markdown_escapes_pipes_and_html():
    from bench.analysis.trends import CheckResult, Row, markdown

    row = Row("a|b<img src=x onerror=alert(1)>", "g_loss.final", 1.0, 0.5, 1.5, 9.0, "REGRESSION", "floor")
    text = markdown(CheckResult([row], ["note | <b>"], False), "head")
    cells = [ln for ln in text.splitlines() if ln.startswith("| a")][0]
    assert "<img" not in text and "&lt;img" in cells and "a\\|b" in cells
    assert cells.count("|") - cells.count("\\|") == 7  # six cells: the label added none


@pytest.mark.integration
def test_stale_leaderboard_goes_with_its_reports(cli, tmp_path, reported):
    res, reports = _copy_of(reported, tmp_path / "w")
    shutil.rmtree(reports / "digits")
    assert cli("report", res / "faces", "--out", reports).code == 0
    assert not (reports / "leaderboard.html").exists() and not (reports / "leaderboard.json").exists()


@pytest.mark.training
def test_the_same_experiment_twice_runs_once(cli, tmp_path):
    r = cli("run", "smoke", "smoke", "--optimizers", "adam", "--seeds", "0", "--steps", "2", "--no-eval", "--quiet",
            "--no-report", "--out", tmp_path)
    assert r.code == 0, r.err
    assert "smoke is smoke again: run once" in r.err
    assert len(list((tmp_path / "smoke").iterdir())) == 1
