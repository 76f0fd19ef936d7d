"""Fuzzing the readers of run and report folders (Hypothesis): a garbled quality.csv, metrics.csv,
manifest.json, status.json, verdict.json or sample PNG behind `bench compare`, `bench report`,
`bench export tensorboard` and `bench.load` ends in exit 0, or exit 2 with one line (bench.load: a
BenchError); never an internal error or a traceback.

The suite runs a small derandomised search; `BENCH_FUZZ=long` runs BENCH_FUZZ_EXAMPLES (default 1500)
random cases per reader: `BENCH_FUZZ=long pytest tests/test_fuzz_readers.py`.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest
from fakeruns import falling_swd, make_run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

LONG = os.environ.get("BENCH_FUZZ", "suite") == "long"
settings.register_profile("readers-suite", max_examples=6, derandomize=True, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.register_profile("readers-long", max_examples=int(os.environ.get("BENCH_FUZZ_EXAMPLES", "1500")),
                          deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                 HealthCheck.function_scoped_fixture])
PROFILE = "readers-long" if LONG else "readers-suite"
COMMANDS = ("compare", "report", "export", "load")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A finished fake run of two optimizers on three seeds, with quality scores, and its report folder."""
    from bench.cli import main

    root = tmp_path_factory.mktemp("pristine")
    run = make_run(root / "results", optimizers=("sgd", "adam"), seeds=(0, 1, 2), steps=40, experiment="smoke",
                   quality=falling_swd("adam"))
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        assert main(["report", str(run), "--out", str(root / "reports")]) == 0
    return root


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False),
              st.text(max_size=12), st.sampled_from(["swd.final", "../../x", "adam", "finished", "", "bogus.final"])),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=8)


def _nodes(obj, path=()):
    yield path
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _nodes(v, (*path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _nodes(v, (*path, i))


def _set(obj, path, value):
    if not path:
        return value
    node = obj
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    return obj


@st.composite
def garbled_json(draw, blob: bytes) -> bytes:
    kind = draw(st.sampled_from(["node", "node", "node", "delete", "bytes", "truncate"]))
    if kind == "bytes":
        return draw(st.binary(max_size=60))
    if kind == "truncate":
        return blob[: draw(st.integers(0, len(blob)))]
    obj = json.loads(blob)
    paths = list(_nodes(obj))
    path = draw(st.sampled_from(paths))
    if kind == "delete" and path:
        parent = obj
        for k in path[:-1]:
            parent = parent[k]
        del parent[path[-1]]
    else:
        obj = _set(obj, path, draw(json_values))
    return json.dumps(obj).encode()


@st.composite
def garbled_csv(draw, blob: bytes) -> bytes:
    lines = blob.decode().split("\n")
    kind = draw(st.sampled_from(["field", "field", "field", "line", "drop", "bytes", "truncate"]))
    i = draw(st.integers(0, max(0, len(lines) - 2)))
    if kind == "field":
        fields = lines[i].split(",")
        j = draw(st.integers(0, len(fields) - 1))
        fields[j] = draw(st.one_of(st.text(max_size=8), st.sampled_from(["nan", "inf", "-1", "1e400", "", "ok",
                                                                         "diverged", "adam", "99999999999999999999"])))
        lines[i] = ",".join(fields)
    elif kind == "line":
        lines[i] = draw(st.text(max_size=40))
    elif kind == "drop":
        del lines[i]
    elif kind == "bytes":
        pos = draw(st.integers(0, len(blob)))
        return blob[:pos] + draw(st.binary(min_size=1, max_size=20)) + blob[pos:]
    else:
        return blob[: draw(st.integers(0, len(blob)))]
    return "\n".join(lines).encode("utf-8", "surrogatepass")


@st.composite
def garbled_png(draw, blob: bytes) -> bytes:
    kind = draw(st.sampled_from(["bytes", "truncate", "other-image", "header-only"]))
    if kind == "bytes":
        return draw(st.binary(max_size=80))
    if kind == "truncate":
        return blob[: draw(st.integers(0, len(blob)))]
    if kind == "header-only":
        return b"\x89PNG\r\n\x1a\n" + draw(st.binary(max_size=40))
    buf = io.BytesIO()
    size = draw(st.tuples(st.integers(1, 40), st.integers(1, 40)))
    mode = draw(st.sampled_from(["L", "RGB", "RGBA", "1", "P"]))
    Image.fromarray(np.zeros((size[1], size[0], 3), np.uint8)).convert(mode).save(
        buf, format=draw(st.sampled_from(["PNG", "JPEG", "GIF"])) if mode in ("L", "RGB") else "PNG")
    return buf.getvalue()


def _check(pristine: Path, target: str, garble, command: str, data) -> None:
    """Copy the pristine folders, garble ``target``, run ``command``: the contract holds."""
    from bench.cli import main
    from bench.core.errors import BenchError

    case = Path(tempfile.mkdtemp(prefix="bench-fuzz-readers-"))
    try:
        shutil.copytree(pristine, case, dirs_exist_ok=True)
        path = case / target if "*" not in target else sorted(case.glob(target))[0]
        path.write_bytes(data.draw(garble(path.read_bytes())))
        run = case / "results" / "smoke" / "20260101-000000"
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            if command == "load":
                import bench

                try:
                    bench.load(case / "results")
                    code = 0
                except BenchError:
                    code = 2
            else:
                argv = {"compare": ["compare", str(run)], "report": ["report", str(case / "results"), "--out",
                                                                        str(case / "reports")],
                        "export": ["export", "tensorboard", str(run)]}[command]
                code = main(argv)
        text = err.getvalue()
        assert "Traceback" not in text and "internal error" not in text, (command, target, text)
        assert code in (0, 2), (command, target, code, text)
        if code == 2 and command != "load":
            lines = [ln for ln in text.strip().splitlines() if not ln.startswith("bench: warning: ")]
            assert len(lines) == 1 and lines[0].startswith("bench: error: "), (command, target, text)
    finally:
        shutil.rmtree(case, ignore_errors=True)


READERS = {
    "quality": ("results/smoke/20260101-000000/runs/adam-seed1/quality.csv", garbled_csv),
    "metrics": ("results/smoke/20260101-000000/runs/sgd-seed0/metrics.csv", garbled_csv),
    "manifest": ("results/smoke/20260101-000000/manifest.json", garbled_json),
    "status": ("results/smoke/20260101-000000/runs/adam-seed2/status.json", garbled_json),
    "verdict": ("reports/smoke/*/verdict.json", garbled_json),
    "sample": ("results/smoke/20260101-000000/runs/adam-seed0/samples/step_000020.png", garbled_png),
}


@pytest.mark.parametrize("reader", list(READERS))
def test_garbled_files_are_that_files_problem(pristine, reader):
    target, garble = READERS[reader]

    @settings(settings.get_profile(PROFILE))
    @given(st.sampled_from(COMMANDS), st.data())
    def case(command, data):
        _check(pristine, target, garble, command, data)

    case()


@pytest.mark.parametrize("command", COMMANDS)
def test_a_validation_table_with_a_list_among_the_passed_metrics(pristine, command, tmp_path):
    """Found by the long search (1000 cases per reader): `"passed": [[]]` in a manifest's validation table was an
    internal error (unhashable list) in `bench compare`. Such a table validates nothing."""
    case = tmp_path / "case"
    shutil.copytree(pristine, case)
    manifest = case / "results/smoke/20260101-000000/manifest.json"
    m = json.loads(manifest.read_text())
    m["validation"]["passed"] = [[]]
    manifest.write_text(json.dumps(m))
    _check(case, "results/smoke/20260101-000000/manifest.json", lambda blob: blob, command, _AsIs())


class _AsIs:
    """``data`` for _check that draws nothing: the file stays as written."""

    def draw(self, value):
        return value
