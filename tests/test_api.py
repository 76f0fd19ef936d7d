"""bench from Python: the README's notebook example runs as written; load and compare return tidy tables."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def test_the_readme_notebook_example_runs_as_written(monkeypatch):
    code = re.search(r"<!-- notebook:start -->\s*```python\n(.*?)```", README.read_text(), re.S).group(1)
    monkeypatch.chdir(ROOT)  # its paths are the repository's, as in a notebook opened at the top of a clone
    namespace: dict = {}
    exec(compile(code, "README.md (notebook example)", "exec"), namespace)  # noqa: S102 - the README's own code
    assert isinstance(namespace["table"], pd.DataFrame) and len(namespace["primary"]) >= 1


def test_load_returns_the_documented_columns_and_every_csv_row(golden):
    import bench

    runs = bench.load(golden["base"].parent)  # the experiment folder: three runs
    assert list(runs.metrics.columns) == ["experiment", "run", "optimizer", "seed", "step", "d_loss_real",
                                          "d_loss_fake", "g_loss", "d_acc_real", "d_acc_fake", "d_x", "d_g_z",
                                          "d_grad_norm_real", "d_grad_norm_fake", "g_grad_norm", "status",
                                          "step_seconds", "elapsed_seconds"]
    assert list(runs.quality.columns) == ["experiment", "run", "optimizer", "seed", "step", "metric", "value",
                                          "eval_seconds"]
    assert set(runs.manifests) == {"smoke/base", "smoke/fast", "smoke/verdict"}
    csvs = sorted(golden["base"].parent.glob("*/runs/*/metrics.csv"))
    assert len(runs.metrics) == sum(len(pd.read_csv(c)) for c in csvs)
    one = runs.metrics[(runs.metrics.run == "fast") & (runs.metrics.optimizer == "adam") & (runs.metrics.seed == 2)]
    csv = pd.read_csv(golden["fast"] / "runs/adam-seed2/metrics.csv")
    pd.testing.assert_frame_equal(one.drop(columns=["experiment", "run"]).reset_index(drop=True), csv,
                                  check_exact=True)
    assert len(runs.pairs) == len(csvs) and set(runs.pairs.status) == {"finished"}
    assert bench.load(golden["base"]).manifests.keys() == {"smoke/base"}  # a run folder alone


def test_compare_is_the_command_lines_verdict(cli, golden, tmp_path):
    import bench

    result = bench.compare(golden["verdict"])
    assert cli("compare", golden["verdict"], "--json", tmp_path / "v.json").code == 0
    saved = json.loads((tmp_path / "v.json").read_text())
    assert json.loads(json.dumps(result.json, allow_nan=False)) == saved  # strict JSON, the same content
    assert result.sentences == saved["verdicts"][0]["sentences"]
    row = result.table[(result.table.metric == "swd.final")].iloc[0]
    c = next(c for c in saved["comparisons"] if c["metric"] == "swd.final")
    assert (row.a, row.b, row.estimate, row.p_holm, row.ci_low) == (c["a"], c["b"], c["estimate"], c["p_holm"],
                                                                   c["ci"][0])


def test_errors_are_benchs_one_line_errors(tmp_path):
    import bench

    with pytest.raises(bench.BenchError, match="not found"):
        bench.load(tmp_path / "nowhere")
    with pytest.raises(bench.BenchError):
        bench.compare()


@pytest.mark.integration
def test_import_bench_and_load_need_no_tensorflow(golden):
    code = f"import sys, bench; bench.load({str(golden['base'])!r}); print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "False"
