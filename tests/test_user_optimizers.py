"""Bring your own optimizer: user classes (files, modules, entry points, ./optimizers/, notebook classes),
schedules and update rules, under the same protocol as the built-ins; every bad input one line, exit 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import only_run_dir

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "optimizers"
QUICK = ["--seeds", "0", "--steps", "4", "--no-eval", "--quiet", "--no-report"]


@pytest.fixture
def user_dir(tmp_path) -> Path:
    """A folder of the user's code, outside the checkout and outside sys.path."""
    d = tmp_path / "mycode"
    d.mkdir()
    shutil.copy(EXAMPLES / "oadam.py", d / "oadam.py")
    (d / "syntax.py").write_text("import keras\nclass Opt(keras.optimizers.Adam)\n    pass\n")
    (d / "importerr.py").write_text("import keras\nimport not_a_module_at_all\nclass Opt(keras.optimizers.Adam):\n    pass\n")
    (d / "notopt.py").write_text("class Opt:\n    pass\n")
    (d / "ctor.py").write_text("import keras\n\n\nclass Opt(keras.optimizers.Adam):\n"
                               "    def __init__(self, learning_rate=0.001, gamma=0.5, **kw):\n"
                               "        super().__init__(learning_rate=learning_rate, **kw)\n"
                               "        if gamma > 1:\n            raise ValueError('gamma must be at most 1')\n")
    (d / "update.py").write_text("import keras\n\n\nclass Opt(keras.optimizers.Adam):\n"
                                 "    def update_step(self, gradient, variable, learning_rate):\n"
                                 "        raise RuntimeError('my update is broken')\n")
    return d


# ------------------------------------------------------------------ every bad input, by CLI and by bench.run

BAD = [
    ("missing file", "nothere.py:Opt", "file not found:", None),
    ("missing module", "nosuchpkg.mod:Opt", "module 'nosuchpkg.mod' cannot be found", None),
    ("syntax error", "syntax.py:Opt", "syntax.py:2: syntax error", None),
    ("import error", "importerr.py:Opt", "importerr.py:2: importing it failed: ModuleNotFoundError", None),
    ("not an optimizer", "notopt.py:Opt", "is not a Keras optimizer", None),
    ("no such class", "ctor.py:Nope", "has no class 'Nope'; it defines: Opt", None),
    ("unknown argument", "ctor.py:Opt:gama=0.3", "unknown hyper-parameter 'gama' (did you mean 'gamma'?)", None),
    ("constructor raises", "ctor.py:Opt:gamma=3", "ctor.py:8: ValueError: gamma must be at most 1", None),
    ("unknown schedule", 'adam:learning_rate={schedule="CosineDecy",initial_learning_rate=1e-3,decay_steps=9}',
     "unknown schedule 'CosineDecy' (did you mean 'CosineDecay'?)", None),
    ("schedule argument", 'adam:learning_rate={schedule="CosineDecay",initial_learning_rate=1e-3,decay_stepz=9}',
     "CosineDecay has no argument 'decay_stepz' (did you mean 'decay_steps'?)", None),
    ("schedule missing argument", 'adam:learning_rate={schedule="CosineDecay",initial_learning_rate=1e-3}',
     "CosineDecay needs decay_steps", None),
    ("update rule", "adam", "train.update: expected one of alternating, simultaneous, extragradient",
     "train.update=extragradent"),
    ("d_steps with simultaneous", "adam", "train.d_steps = 2 is for update = \"alternating\"",
     ["train.d_steps=2", "train.update=\"simultaneous\""]),
]


@pytest.mark.parametrize("spec, fragment, sets", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_user_code_is_one_line_exit_2_and_nothing_written(cli, user_dir, tmp_path, monkeypatch, spec, fragment,
                                                              sets):
    import bench

    monkeypatch.chdir(user_dir)
    sets = [sets] if isinstance(sets, str) else (sets or [])
    out = tmp_path / "out"
    r = cli("run", "smoke", "--optimizers", f"sgd,{spec}", *[x for s in sets for x in ("--set", s)], *QUICK,
            "--out", out)
    lines = r.err.strip().splitlines()
    assert r.code == 2 and len(lines) == 1 and fragment in lines[0], r.err
    with pytest.raises(bench.BenchError, match=None) as e:
        bench.run("smoke", optimizers=f"sgd,{spec}", seeds=[0], steps=4, out=out, sets=sets, no_eval=True)
    assert fragment in str(e.value) and "\n" not in str(e.value)
    assert not out.exists()


@pytest.mark.training
def test_an_update_step_that_raises_fails_its_pairs_and_the_others_go_on(cli, user_dir, tmp_path, monkeypatch):
    """Beside them, a class whose apply() (which bench's step calls itself) branches on a tensor in Python:
    AutoGraph converts it, as it would in any tf.function."""
    monkeypatch.chdir(user_dir)
    (user_dir / "clip.py").write_text(
        "import keras\nimport tensorflow as tf\n\nclass Clipping(keras.optimizers.SGD):\n"
        "    def apply(self, grads, trainable_variables=None):\n        norm = tf.linalg.global_norm(grads)\n"
        "        if norm > 1.0:\n            grads = [g / norm for g in grads]\n"
        "        return super().apply(grads, trainable_variables)\n")
    r = cli("run", "smoke", "--optimizers", "adam,update.py:Opt,clip.py:Clipping", "--seeds", "0,1", "--steps", "4",
            "--no-eval", "--quiet", "--no-report", "--out", tmp_path)
    assert r.code == 1
    assert "update.py:6: RuntimeError: my update is broken" in r.err
    run_dir = only_run_dir(tmp_path, "smoke")
    m = json.loads((run_dir / "manifest.json").read_text())
    assert {m["runs"][f"opt-seed{s}"]["status"] for s in (0, 1)} == {"failed"}
    assert {m["runs"][f"{o}-seed{s}"]["status"] for o in ("adam", "clipping") for s in (0, 1)} == {"finished"}
    assert "opt failed in 2 of 2 seeds: failed (" in r.out  # the verdict counts it the worst, and says why


# ------------------------------------------------------------------ provenance and identity


@pytest.mark.training
def test_the_source_is_hashed_recorded_copied_and_part_of_the_identity(cli, user_dir, tmp_path, monkeypatch):
    import hashlib

    monkeypatch.chdir(user_dir)
    text = (user_dir / "oadam.py").read_text()
    r = cli("run", "smoke", "--optimizers", "adam,oadam.py:OptimisticAdam:label=oadam,learning_rate=2e-4",
            *QUICK, "--out", tmp_path / "a")
    assert r.code == 0, r.err
    run_dir = only_run_dir(tmp_path / "a", "smoke")
    m = json.loads((run_dir / "manifest.json").read_text())
    src = m["config"]["optimizers"]["oadam"]["source"]
    assert src["sha256"] == hashlib.sha256(text.encode()).hexdigest() and src["where"] == str(user_dir / "oadam.py")
    assert m["optimizers"]["oadam"]["source_sha256"] == src["sha256"]
    assert (run_dir / "optimizers" / "oadam.py").read_text() == text
    # a comment changes the code: another identity, never the same experiment
    (user_dir / "oadam.py").write_text(text + "\n# tuned\n")
    assert cli("run", "smoke", "--optimizers", "adam,oadam.py:OptimisticAdam:label=oadam,learning_rate=2e-4",
               *QUICK, "--out", tmp_path / "b").code == 0
    other = json.loads((only_run_dir(tmp_path / "b", "smoke") / "manifest.json").read_text())
    assert other["identity"] != m["identity"]
    # built-in experiments keep the identity they had before user code existed (committed baseline)
    from bench.core import config

    base = json.loads((ROOT / "results/baselines/smoke.json").read_text())
    smoke = config.experiment_from_dict(config.load_raw(config.experiment_path("smoke")), "smoke")
    assert smoke.identity() == base["identity"]


@pytest.mark.training
def test_check_refuses_a_baseline_made_with_other_code(cli, user_dir, tmp_path):
    spec = f"{user_dir / 'oadam.py'}:OptimisticAdam:label=oadam"
    assert cli("run", "smoke", "--optimizers", spec, *QUICK, "--out", tmp_path / "a").code == 0
    assert cli("baseline", tmp_path / "a" / "smoke", "-o", tmp_path / "base.json").code == 0
    (user_dir / "oadam.py").write_text((user_dir / "oadam.py").read_text() + "\n# edited\n")
    assert cli("run", "smoke", "--optimizers", spec, *QUICK, "--out", tmp_path / "b").code == 0
    r = cli("check", tmp_path / "b" / "smoke", "--baseline", tmp_path / "base.json")
    assert r.code == 2 and "other code for oadam" in r.err and "--across-code-versions" in r.err
    r = cli("check", tmp_path / "b" / "smoke", "--baseline", tmp_path / "base.json", "--across-code-versions")
    assert r.code in (0, 1) and "compared across code versions" in r.out


# ------------------------------------------------------------------ where a class may come from


@pytest.mark.training
def test_modules_entry_points_and_the_optimizers_folder(cli, user_dir, tmp_path, monkeypatch):
    pkg = tmp_path / "site" / "mypkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    shutil.copy(EXAMPLES / "adabelief.py", pkg / "belief.py")
    dist = tmp_path / "site" / "mypkg-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mypkg\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[bench.optimizers]\nbelief = mypkg.belief:AdaBelief\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    work = tmp_path / "work"
    (work / "optimizers").mkdir(parents=True)
    shutil.copy(EXAMPLES / "oadam.py", work / "optimizers" / "oadam.py")
    monkeypatch.chdir(work)
    r = cli("run", "smoke", "--optimizers", "mypkg.belief:AdaBelief,belief:label=by_entry_point,optimisticadam",
            *QUICK, "--out", tmp_path / "out")
    assert r.code == 0, r.err
    m = json.loads((only_run_dir(tmp_path / "out", "smoke") / "manifest.json").read_text())
    kinds = {label: o["source"]["kind"] for label, o in m["config"]["optimizers"].items()}
    assert kinds == {"adabelief": "module", "by_entry_point": "entry point", "optimisticadam": "file"}
    listed = cli("list").out
    assert "your optimizers" in listed and "belief" in listed and "optimisticadam" in listed
    assert "beta_2=0.999" in listed and "from " in listed and "multioptimizer" not in listed


@pytest.mark.training
def test_a_notebook_class_trains_and_is_recorded(tmp_path):
    import keras

    import bench

    class HalfAdam(keras.optimizers.Adam):  # defined here, as in a notebook cell
        pass

    runs = bench.run("smoke", optimizers=["adam", HalfAdam], seeds=[0], steps=4, out=tmp_path, no_eval=True)
    assert sorted(runs.pairs.optimizer) == ["adam", "halfadam"] and set(runs.pairs.status) == {"finished"}
    src = next(iter(runs.manifests.values()))["config"]["optimizers"]["halfadam"]["source"]
    assert "class HalfAdam(keras.optimizers.Adam)" in src["text"] or "HalfAdam" in src["text"]


# ------------------------------------------------------------------ the worked examples against the papers' rules


def _numpy_oadam(grads, w, lr, b1, b2, eps):
    m = v = u = np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        direction = (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
        w = w - lr * (2 * direction - u)  # Daskalakis et al. 2018, Algorithm 1
        u = direction
    return w


def _numpy_adabelief(grads, w, lr, b1, b2, eps):
    m = s = np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        s = b2 * s + (1 - b2) * (g - m) ** 2 + eps  # Zhuang et al. 2020, Algorithm 2
        w = w - lr * (m / (1 - b1 ** t)) / (np.sqrt(s / (1 - b2 ** t)) + eps)
    return w


@pytest.mark.parametrize("module, cls, reference, kwargs", [
    ("oadam", "OptimisticAdam", _numpy_oadam, {"learning_rate": 0.01, "beta_1": 0.5, "beta_2": 0.999, "epsilon": 1e-7}),
    ("adabelief", "AdaBelief", _numpy_adabelief, {"learning_rate": 0.01, "beta_1": 0.9, "beta_2": 0.999,
                                                   "epsilon": 1e-8}),
])
def test_each_example_follows_its_papers_update_rule(module, cls, reference, kwargs):
    import importlib.util

    import keras

    spec = importlib.util.spec_from_file_location(module, EXAMPLES / f"{module}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(5, 3)).astype(np.float32)
    grads = [rng.normal(size=(5, 3)).astype(np.float32) for _ in range(6)]
    var = keras.Variable(w0)
    opt = getattr(mod, cls)(**kwargs)
    for g in grads:
        opt.apply([keras.ops.convert_to_tensor(g)], [var])
    want = reference([g.astype(np.float64) for g in grads], w0.astype(np.float64), *kwargs.values())
    np.testing.assert_allclose(np.asarray(var), want, rtol=2e-5, atol=2e-6)


# ------------------------------------------------------------------ schedules


@pytest.mark.training
def test_a_schedules_learning_rates_are_kerass_own(cli, tmp_path):
    import keras

    sched = '{schedule="CosineDecay",initial_learning_rate=2e-3,decay_steps=30,alpha=0.1}'
    r = cli("run", "smoke", "--optimizers", f"adam:learning_rate={sched}", "--seeds", "0", "--steps", "20",
            "--no-eval", "--quiet", "--out", tmp_path / "out", "--reports", tmp_path / "reports",
            "--set", "train.d_steps=2")
    assert r.code == 0, r.err
    run_dir = only_run_dir(tmp_path / "out", "smoke")
    lr = pd.read_csv(run_dir / "learning_rates.csv")
    want = keras.optimizers.schedules.CosineDecay(2e-3, 30, alpha=0.1)
    for net, per in (("generator", 1), ("discriminator", 4)):  # D: real and fake steps, twice (d_steps = 2)
        rows = lr[lr.network == net]
        expected = [float(want((s - 1) * per)) for s in rows.step]
        np.testing.assert_allclose(rows.learning_rate, expected, rtol=1e-6)
    assert "learning-rates" in next((tmp_path / "reports").glob("smoke/*/index.html")).read_text()
    # the optimizer really stepped with it: D's learning rate after 20 iterations (80 updates) is the schedule's
    from bench.store.checkpoint import checkpoints, read_checkpoint

    ckpt = read_checkpoint(checkpoints(run_dir / "runs/adam-seed0")[0])
    names = ckpt.meta["names"]
    iters = ckpt.arrays[names.index(next(n for n in names if n.startswith("discriminator_optimizer/iteration")))]
    assert int(iters) == 80


# ------------------------------------------------------------------ the README tutorial, as written


def _tutorial() -> tuple[dict[str, str], list[str]]:
    text = (ROOT / "README.md").read_text()
    block = text[text.index("<!-- tutorial:start -->"): text.index("<!-- tutorial:end -->")]
    files = {}
    for name, code in __import__("re").findall(r"`([\w/.-]+\.py)`[^\n]*:\n\n```python\n(.*?)```", block, __import__("re").S):
        files[name] = code
    commands = [ln.strip()[2:] for ln in __import__("re").findall(r"```sh\n(.*?)```", block, __import__("re").S)[0].splitlines()
                if ln.strip().startswith("$ ")]
    return files, commands


@pytest.mark.training
@pytest.mark.slow
def test_the_readme_tutorial_runs_as_written(tmp_path, monkeypatch, capsys):
    """The tutorial's file and commands, as a user types them in a fresh folder (in this process: the console
    script's own start-up is the bad-input tests' business)."""
    import shlex

    from bench.cli import main

    files, commands = _tutorial()
    assert files and commands
    for name, code in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(code)
    monkeypatch.chdir(tmp_path)
    outputs = []
    for cmd in commands:
        assert cmd.startswith("bench "), cmd
        capsys.readouterr()
        code = main(shlex.split(cmd)[1:])
        out, err = capsys.readouterr()
        assert code == 0, (cmd, err[-2000:])
        outputs.append(out)
    assert "optimisticsgd" in outputs[0] and "OptimisticSGD" in outputs[0]  # bench list shows the class and its file
    verdict = outputs[-1].split("verdict (", 1)[1]
    assert verdict.startswith("6 seeds") and "optimisticsgd" in verdict
    # the tutorial's run learns: a decided verdict, not "did not learn" or "underpowered"
    assert " beats " in verdict and "did not learn" not in verdict and "underpowered" not in verdict, verdict


@pytest.mark.training
@pytest.mark.parametrize("sets", [["train.d_steps=2"], ['train.update="extragradient"']],
                         ids=["d_steps=2", "extragradient"])  # (alternating: the tutorial and the tests above)
def test_the_oadam_example_against_adam_ends_with_a_verdict(cli, tmp_path, sets):
    r = cli("run", "smoke", "--optimizers", f"adam,{EXAMPLES / 'oadam.py'}:OptimisticAdam:learning_rate=2e-4",
            "--seeds", "0,1,2", "--steps", "20", *[x for s in sets for x in ("--set", s)], "--quiet", "--no-report",
            "--out", tmp_path)
    assert r.code == 0, r.err
    assert "verdict (3 seeds, primary rfd.final" in r.out and "optimisticadam" in r.out.split("verdict (")[1]
    m = json.loads((only_run_dir(tmp_path, "smoke") / "manifest.json").read_text())
    assert m["config"]["train"].get("d_steps", 1) == (2 if "d_steps" in str(sets) else 1)
    assert m["config"]["train"].get("update", "alternating") == ("extragradient" if "extra" in str(sets) else "alternating")


def test_a_user_optimizers_arguments_and_schedules_are_sweepable_with_the_same_checks(user_dir):
    from bench.core.config import OptimizerSpec
    from bench.core.errors import BenchError
    from bench.core.sweep_table import parse_sweep
    from bench.model import optimizers
    from bench.quality.scores import goals

    spec = optimizers.resolve((OptimizerSpec("oadam", f"{user_dir / 'oadam.py'}:OptimisticAdam", params={
        "learning_rate": {"schedule": "ExponentialDecay", "initial_learning_rate": 1e-3, "decay_steps": 100,
                          "decay_rate": 0.9}}),))

    from types import SimpleNamespace

    class Exp:  # what parse_sweep reads of an experiment
        name, optimizers, seeds = "x", spec, (0,)
        eval = SimpleNamespace(enabled=True, fid_weights="")
        train = SimpleNamespace(steps=10)

        def __init__(self, space):
            self.sweep = {"budget": 2, "space": {"oadam": space}}

    good = parse_sweep(Exp({"beta_1": [0.0, 0.5], "learning_rate": {"decay_steps": [50, 200]}}), goals(), selected=True)
    optimizers.check_sweep_space(spec, good, "sweep")
    bad = parse_sweep(Exp({"beta1": [0.0, 0.5]}), goals(), selected=True)
    with pytest.raises(BenchError, match="has no hyper-parameter 'beta1' \\(did you mean 'beta_1'\\?\\)"):
        optimizers.check_sweep_space(spec, bad, "sweep")
    bad = parse_sweep(Exp({"learning_rate": {"decay_stepz": [50, 200]}}), goals(), selected=True)
    with pytest.raises(BenchError, match="ExponentialDecay has no argument 'decay_stepz'"):
        optimizers.check_sweep_space(spec, bad, "sweep")
    tuned = optimizers.with_params(spec[0], {"learning_rate.decay_steps": 50, "beta_1": 0.0}, "oadam.t00", "sweep")
    assert tuned.params["learning_rate"]["decay_steps"] == 50 and tuned.source == spec[0].source
    optimizers.validate((tuned,))


def test_tensorboard_and_mlflow_params_say_where_the_code_comes_from(user_dir):
    from bench.core.config import OptimizerSpec
    from bench.model import optimizers
    from bench.store.tensorboard import hparams_of

    (spec,) = optimizers.resolve((OptimizerSpec("oadam", f"{user_dir / 'oadam.py'}:OptimisticAdam"),))
    hp = hparams_of("smoke", "RUN", "oadam", 0, {"type": spec.name, **optimizers.describe(spec)})
    assert hp["class"] == f"{user_dir / 'oadam.py'}:OptimisticAdam" and hp["source_sha256"] == spec.source["sha256"]
    assert hp["beta_1"] == 0.5 and hp["optimizer"] == "oadam"
