"""Property-based tests (Hypothesis): generated experiment files and command lines end in exit 0, or in
exit 2 with one line and no new file; never an internal error or a traceback.

The suite runs a fixed, derandomised search (BENCH_FUZZ=suite, under a minute); BENCH_FUZZ=long runs a
longer random one: `BENCH_FUZZ=long pytest tests/test_fuzz.py`.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import tomllib
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from fakeruns import make_run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.core.config import experiment_path

settings.register_profile("suite", max_examples=25, derandomize=True, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=int(os.environ.get("BENCH_FUZZ_EXAMPLES", "1500")), deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("BENCH_FUZZ", "suite"))

SMOKE = tomllib.loads(experiment_path("smoke").read_text())
# what makes a valid run cheap, appended after the generated options (argparse: the last one wins)
CHEAP = ["--steps", "1", "--no-eval", "--no-report", "--quiet", "--set", "sweep.budget=1", "--set", "train.steps_per_call=1"]

odd_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
numbers = st.one_of(st.integers(-3, 40), st.sampled_from([0, -1, 2**31, 2**32, 2**63 - 1, -(2**63), 10**30]),
                    st.floats(allow_nan=True, allow_infinity=True, width=64))
scalars = st.one_of(numbers, st.booleans(), odd_text, st.sampled_from(["adam", "faces", "tanh", "grid", "swd"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(odd_text, inner, max_size=3)), max_leaves=6)
known_keys = [(section, key) for section, table in SMOKE.items() if isinstance(table, dict) for key in table] + [
    ("data", "source"), ("data", "image_size"), ("data", "channels"), ("data", "crop"), ("data", "limit"),
    ("model", "latent"), ("model", "output_activation"), ("model", "d_dropout"), ("eval", "samples"), ("eval", "real"),
    ("eval", "every"), ("eval", "pca_dims"), ("train", "steps_per_call"), ("train", "threads"), ("train", "real_label"),
    ("sweep", "method"), ("sweep", "criterion"), ("sweep", "goal"), ("sweep", "search_seeds"), ("sweep", "space")]


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return {float("inf"): "inf", float("-inf"): "-inf"}.get(v, "nan" if v != v else repr(v))
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').encode("unicode_escape").decode().replace("\\\\u", "\\u") + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f'"{k}" = {_toml_value(x)}' for k, x in v.items()) + "}"


@st.composite
def experiment_files(draw) -> bytes:
    """The smoke experiment with a few keys changed, unknown keys added or values of the wrong type; or
    broken TOML; or bytes that are not UTF-8."""
    kind = draw(st.sampled_from(["mutated", "mutated", "mutated", "broken", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=80))
    if kind == "broken":
        return draw(st.text(max_size=80)).encode("utf-8", "surrogatepass") + b"\n[train\n"
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in SMOKE.items()}
    raw["sweep"] = {k: v for k, v in SMOKE["sweep"].items()}
    for _ in range(draw(st.integers(1, 3))):
        section, key = draw(st.one_of(st.sampled_from(known_keys), st.tuples(st.sampled_from(list(raw)), odd_text)))
        if isinstance(raw.get(section), dict):
            raw[section][key] = draw(values)
        else:
            raw[section] = draw(values)
    lines = []
    for key, v in raw.items():
        if not isinstance(v, dict):
            lines.append(f'"{key}" = {_toml_value(v)}' if key.isidentifier() else f"{_toml_value(key)} = {_toml_value(v)}")
    for key, v in raw.items():
        if isinstance(v, dict):
            lines.append(f"[{_toml_value(key)}]")
            lines += [f"{_toml_value(k)} = {_toml_value(x)}" for k, x in v.items()]
    return "\n".join(lines).encode("utf-8", "surrogatepass")


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _bench(argv: list[str], root: Path, allow_regression: bool = False) -> int:
    """Run the CLI in this process; check the contract on its outcome."""
    from bench.cli import main

    before = _tree(root)
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(argv)
    text = err.getvalue()
    assert "Traceback" not in text and "internal error" not in text, (argv, text)
    assert code in ((0, 1, 2) if allow_regression else (0, 2)), (argv, code, text)
    if code == 2:
        lines = [ln for ln in text.strip().splitlines() if ln]
        assert len(lines) == 1 and lines[0].startswith("bench: error: "), (argv, text)
        assert _tree(root) == before, (argv, sorted(_tree(root) - before))  # nothing written
    return code


@pytest.fixture(scope="module")
def area():
    root = Path(tempfile.mkdtemp(prefix="bench-fuzz-"))
    make_run(root / "runs", optimizers=("sgd", "adam"), seeds=(0, 1, 2), steps=40)
    (root / "garbage.json").write_text('{"schema": 1, "metrics": ')
    (root / "empty").mkdir()
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.training
@given(experiment_files())
def test_generated_experiment_files_never_crash(area, blob):
    case = Path(tempfile.mkdtemp(dir=area))
    try:
        (case / "exp.toml").write_bytes(blob)
        out = case / "out"
        _bench(["run", str(case / "exp.toml"), *CHEAP, "--out", str(out)], case)
    finally:
        shutil.rmtree(case, ignore_errors=True)


paths = st.sampled_from(["RUN", "runs", "garbage.json", "empty", "nowhere", "exp.toml", "", "/"])
run_options = st.lists(st.one_of(
    st.tuples(st.sampled_from(["--optimizers"]), st.one_of(odd_text, st.sampled_from(
        ["adam", "sgd,adam", "adam:learning_rate=1e-3", "adam:label=x,beta_1=2", "lion:foo=1", ",", "adam:"]))),
    st.tuples(st.sampled_from(["--seeds"]), st.one_of(odd_text, st.sampled_from(["0", "0,0", "-1", "4294967296", "1,2"]))),
    st.tuples(st.sampled_from(["--steps", "--batch-size", "--limit", "--threads", "--jobs"]),
              st.one_of(odd_text, numbers.map(str))),
    st.tuples(st.sampled_from(["--set"]), st.one_of(odd_text, st.sampled_from(
        ["model.latent_dim=8", "train.batch_size=4", "eval.every=3", "name=x/y", "data.seed=-1", "seeds=[]",
         "model.g_widths=[]", "train.sample_every=0", "data.image_size=[8, 8]", "optimizers={}", "x.y.z=1"]))),
    st.tuples(st.sampled_from(["--dataset"]), st.one_of(odd_text, st.sampled_from(["faces", "celeba", "folder", "mnist",
                                                                                   "digits", "quadratic"]))),
    st.tuples(st.sampled_from(["--executor"]), st.sampled_from(["local", "ray", "slurm"])),
    st.tuples(st.sampled_from(["--resume"]), paths),
    st.just(("--no-xla",)), st.just(("--fresh",)), st.just(("--xla",)), st.just(("--bogus",)),
), max_size=4)


@pytest.mark.training
@settings(max_examples=6 if os.environ.get("BENCH_FUZZ", "suite") == "suite" else None)  # valid ones train
@given(st.sampled_from(["run", "sweep"]), st.sampled_from(["smoke", "faces", "nope", "exp.toml"]), run_options)
def test_generated_run_and_sweep_command_lines_never_crash(area, command, experiment, options):
    case = Path(tempfile.mkdtemp(dir=area))
    try:
        (case / "exp.toml").write_text(experiment_path("smoke").read_text())
        argv = [command, str(case / experiment) if experiment == "exp.toml" else experiment]
        for opt in options:
            argv += [opt[0], *(_path(case, area, v) if opt[0] == "--resume" else v for v in opt[1:])]
        _bench([*argv, *CHEAP, "--executor", "local", "--jobs", "1", "--out", str(case / "out")], case)
    finally:
        shutil.rmtree(case, ignore_errors=True)


def _path(case: Path, area: Path, name: str) -> str:
    if name == "RUN":
        return str(area / "runs" / "fake" / "20260101-000000")
    return name if name in ("", "/") else str(case / name)


@given(st.sampled_from(["report", "baseline", "check", "list"]), paths, paths,
       st.lists(st.sampled_from(["--failures-only", "--strict-identity", "--tolerance", "g_loss.final:15%",
                                 "--tolerance", "x", "--json", "--junit", "-o"]), max_size=3))
def test_generated_report_baseline_and_check_command_lines_never_crash(area, command, target, other, extra):
    case = Path(tempfile.mkdtemp(dir=area))
    try:
        shutil.copytree(area / "runs", case / "runs")
        target = str(case / "runs/fake/20260101-000000") if target == "RUN" else str(case / target) if target else ""
        other = str(case / other) if other not in ("", "/") else other
        argv = [command] + ([] if command == "list" else [target])
        if command == "report":
            argv += ["--out", str(case / "reports")]
        elif command == "baseline":
            argv += ["-o", str(case / "base.json")]
        elif command == "check":
            argv += ["--baseline", other]
        argv += [e if not e.startswith("-") or e in ("--failures-only", "--strict-identity", "--tolerance", "-o")
                 else e for e in extra]
        _bench(argv, case, allow_regression=command == "check")
    finally:
        shutil.rmtree(case, ignore_errors=True)
