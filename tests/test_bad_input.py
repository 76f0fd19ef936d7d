"""Every bad input: one-line message, non-zero exit, no traceback, earlier results untouched."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import GOLDEN, make_celeba_jpegs, only_run_dir

from bench.core.config import experiment_path


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


@pytest.fixture(scope="module")
def earlier(tmp_path_factory):
    """A results folder holding one finished run (a copy of a golden one), which no bad command may touch."""
    out = tmp_path_factory.mktemp("earlier")
    shutil.copytree(GOLDEN / "base", out / "smoke" / "base", symlinks=True)
    return out


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    (d / "broken.toml").write_text("[train\nsteps = 3\n")
    (d / "typo.toml").write_text("[train]\nbatch_sise = 32\n")
    (d / "wrongtype.toml").write_text('[train]\nsteps = "many"\n')
    (d / "badtop.toml").write_text('[optimisers.adam]\nlearning_rate = 0.1\n')
    (d / "empty").mkdir()
    (d / "junk").mkdir()
    (d / "junk" / "x.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    make_celeba_jpegs(d / "celeba" / "img_align_celeba", 4)
    (d / "afile").write_text("a file where a folder should be")
    (d / "latin1.toml").write_bytes(b'name = "latin"\n# caf\xe9, saved as Latin-1\n[train]\nsteps = 2\n')
    os.symlink(d / "loopb", d / "loopa")
    os.symlink(d / "loopa", d / "loopb")
    return d


CASES = [
    # (id, args, expected message fragment)
    ("unknown optimizer", ["--optimizers", "sgd,adamm"], "unknown optimizer 'adamm' (did you mean 'adam'?)"),
    ("unknown hyper-parameter", ["--optimizers", "adam:lr=0.1"], "unknown hyper-parameter 'lr' (Keras 3 calls it 'learning_rate')"),
    ("hyper-parameter typo", ["--optimizers", "sgd:momentun=0.9"], "unknown hyper-parameter 'momentun' (did you mean 'momentum'?)"),
    ("non-numeric hyper-parameter", ["--optimizers", "adam:learning_rate=fast"], "is not a number"),
    ("optimizer twice", ["--optimizers", "adam,adam"], "listed twice"),
    ("dangling key=value", ["--optimizers", "learning_rate=0.1"], "comes before any optimizer name"),
    ("unknown dataset", ["--dataset", "celebb"], "unknown dataset 'celebb' (did you mean 'celeba'?)"),
    ("unknown experiment", ["EXP:facs"], "unknown experiment 'facs' (did you mean 'faces'?)"),
    ("experiment file missing", ["EXP:{inputs}/nothere.toml"], "experiment file not found"),
    ("malformed TOML", ["EXP:{inputs}/broken.toml"], "not valid TOML"),
    ("unknown key", ["EXP:{inputs}/typo.toml"], "unknown key 'batch_sise' (did you mean 'batch_size'?)"),
    ("wrong type", ["EXP:{inputs}/wrongtype.toml"], "train.steps: expected an integer, got 'many'"),
    ("unknown table", ["EXP:{inputs}/badtop.toml"], "unknown key 'optimisers' (did you mean 'optimizers'?)"),
    ("bad --set", ["--set", "trainsteps"], "expected SECTION.KEY=VALUE"),
    ("bad --set key", ["--set", "train.stepz=3"], "unknown key 'stepz' (did you mean 'steps'?)"),
    ("missing data path", ["EXP:celeba", "--data", "{inputs}/nope"], "data path not found"),
    ("celeba without --data", ["EXP:celeba"], "needs --data"),
    ("empty folder", ["--dataset", "folder", "--data", "{inputs}/empty"], "no image files"),
    ("no decodable image", ["--dataset", "folder", "--data", "{inputs}/junk"], "no decodable image"),
    ("limit above data", ["EXP:celeba", "--data", "{inputs}/celeba", "--limit", "50"], "only 4 decodable images"),
    ("image larger than data", ["--set", "data.image_size=[64,64]"], "larger than the source images"),
    ("crop larger than data", ["--set", "data.crop=30"], "larger than image"),
    ("batch larger than data", ["--batch-size", "300"], "needs 150 real images per step"),
    ("odd batch", ["--batch-size", "15"], "even number"),
    ("zero steps", ["--steps", "0"], "expected a positive integer"),
    ("bad seeds", ["--seeds", "a,b"], "expected comma-separated integers"),
    ("negative seed", ["--set", "seeds=[-1]"], "seeds must be in [0, 2**32)"),
    ("huge seed", ["--seeds", "4294967296"], "seeds must be in [0, 2**32)"),
    ("results not writable", ["OUT:{inputs}/afile/results"], "cannot write"),
    ("resume non-run folder", ["--resume", "{inputs}/empty"], "manifest.json: not found"),
    ("resume other experiment", ["EXP:faces", "--resume", "RUN"], "is a run of experiment 'smoke', not 'faces'"),
    ("resume with changed option", ["--resume", "RUN", "--steps", "9"], "drop --steps"),
    ("unknown option", ["--optimiser", "adam"], "unrecognized arguments"),
    ("constructor argument as hyper-parameter", ["--optimizers", "adam:name=<img src=x onerror=alert(1)>"],
     "'name' is not a hyper-parameter"),
    ("non-UTF-8 experiment file", ["EXP:{inputs}/latin1.toml"], "latin1.toml: line 2: not UTF-8 text (byte 0xe9)"),
    ("non-UTF-8 argument", ["--set", "description=caf\udce9"], "is not UTF-8 text"),
    ("symlink loop as data", ["--dataset", "folder", "--data", "{inputs}/loopa"], "loopa: not a usable path"),
    ("latent size far too large", ["--set", "model.latent_dim=1000000000"], "model.latent_dim must be at most 65,536"),
    ("not a finite number", ["--set", "train.real_label=nan"], "train.real_label: expected a finite number"),
    ("networks larger than memory", ["--set", "model.g_widths=[60000, 60000, 60000]"], "more than half this machine's"),
    ("seeds past 32 bits in a sweep", ["--set", "sweep.final_seeds=[4294967296]"], "distinct seeds in [0, 2**32)"),
]


@pytest.mark.parametrize("args, fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_one_line_nonzero_nothing_lost(cli, earlier, inputs, args, fragment):
    before = _snapshot(earlier)
    run_dir = only_run_dir(earlier, "smoke")
    experiment, out, rest = "smoke", str(earlier), []
    for a in args:
        a = a.format(inputs=inputs).replace("RUN", str(run_dir)) if a != "RUN" else str(run_dir)
        if a.startswith("EXP:"):
            experiment = a[4:]
        elif a.startswith("OUT:"):
            out = a[4:]
        else:
            rest.append(a)
    argv = ["run", *([] if "--resume" in rest and experiment == "smoke" else [experiment]), *rest, "--quiet", "--out", out]
    r = cli(*argv)
    assert r.code == 2, (r.code, r.err)
    lines = r.err.strip().splitlines()
    assert len(lines) == 1, r.err
    assert lines[0].startswith("bench: error: ") and "Traceback" not in r.err
    assert fragment in lines[0]
    assert _snapshot(earlier) == before  # nothing written, nothing lost


def _without_tf_settings() -> dict:
    """The environment of a user who set nothing: TensorFlow free to print its start-up banner."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("TF_CPP", "ABSL_"))}


@pytest.mark.integration
def test_console_script_prints_exactly_one_line_and_no_banner(tmp_path):
    exe = Path(sys.executable).with_name("bench")
    r = subprocess.run([str(exe), "run", "smoke", "--optimizers", "sgd,adamm", "--out", str(tmp_path)],
                       capture_output=True, text=True, env=_without_tf_settings(), timeout=120, cwd=tmp_path)
    assert r.returncode == 2
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("bench: error: unknown optimizer 'adamm' (did you mean 'adam'?); known: ")
    assert r.stdout == ""
    assert not any(tmp_path.iterdir())  # no run folder for a run that never started


@pytest.mark.integration
def test_an_error_after_tensorflow_loaded_is_still_one_line(tmp_path):
    """The optimizer is found and built (TensorFlow and Keras loaded), then refused: still one line."""
    (tmp_path / "bad.py").write_text("import keras\n\nclass Bad(keras.optimizers.SGD):\n"
                                     "    def __init__(self, **kw):\n        raise ValueError('no')\n")
    code = ("import sys\nfrom bench.cli import main\nrc = main(sys.argv[1:])\n"
            "assert 'tensorflow' in sys.modules\nsys.exit(rc)\n")
    r = subprocess.run([sys.executable, "-c", code, "run", "smoke", "--optimizers", "bad.py:Bad", "--out",
                        str(tmp_path / "out")], capture_output=True, text=True, env=_without_tf_settings(),
                       timeout=120, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.splitlines()) == 1 and "bad.py" in r.stderr and "no" in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.integration
def test_the_console_exit_skips_only_the_teardown(tmp_path, capsys):
    """``bench`` leaves with os._exit after main(): the interpreter's teardown is skipped (an object that says so
    when it is freed stays silent), while its exit code and every line of its output are main's (a redirected
    stdout is flushed) and the atexit handlers registered while it ran (Ray's, MLflow's) still run."""
    from bench.cli import main

    assert main(["list"]) == 0
    listed = capsys.readouterr().out
    code = ("import atexit, os, sys\nfrom bench import cli\n"
            "class Freed:\n    def __del__(self, write=os.write):\n        write(2, b'teardown ran\\n')\n"
            "freed = Freed()\nreal = cli.main\n"
            "def main():\n    atexit.register(lambda: sys.stderr.write('handler ran\\n'))\n"
            "    rc = real(sys.argv[2:])\n    assert rc or 'tensorflow' in sys.modules\n    return rc\n"
            "cli.main = main\ncli.console() if sys.argv[1] == 'console' else sys.exit(main())\n")

    def bench(how: str, *args: str, **kw) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", code, how, *args], text=True, timeout=120, cwd=tmp_path, **kw)

    with open(tmp_path / "out.txt", "w") as out:  # a file, not a pipe: block-buffered, lost without a flush
        r = bench("console", "list", stdout=out, stderr=subprocess.PIPE)
    assert r.returncode == 0 and r.stderr == "handler ran\n", r.stderr
    assert (tmp_path / "out.txt").read_text() == listed and listed.count("\n") > 20  # all of it, flushed
    r = bench("plain", "run", "smok", capture_output=True)  # the probe works: a usual exit frees it
    assert r.returncode == 2 and r.stderr.splitlines()[1:] == ["handler ran", "teardown ran"], r.stderr
    r = bench("console", "run", "smok", capture_output=True)
    assert r.returncode == 2 and r.stderr.splitlines()[1:] == ["handler ran"], r.stderr
    r = subprocess.run([sys.executable, "-m", "bench", "run", "smok"], capture_output=True, text=True, timeout=120,
                       cwd=tmp_path)
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1 and "did you mean 'smoke'" in r.stderr, r.stderr


@pytest.mark.integration
def test_the_banner_filter_keeps_what_is_not_banner(tmp_path):
    """A stand-in ``tensorflow`` that writes the banner and a real complaint to descriptor 2 as it loads: the
    complaint gets through, the banner does not, and the import is the stand-in's."""
    pkg = tmp_path / "tensorflow"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "import os\n"
        "os.write(2, b'WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n')\n"
        "os.write(2, b'I0000 port.cc:153] oneDNN custom operations are on. You may see slightly different\\n')\n"
        "os.write(2, b'E0000 something real went wrong\\n')\n"
        "VALUE = 42\n")
    code = ("from bench.core import banner\nbanner.hide()\nimport tensorflow\n"
            "assert tensorflow.VALUE == 42\nimport sys\nsys.stderr.write('after\\n')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == ["E0000 something real went wrong", "after"]


TRAVERSALS = ["name=../../../escaped", "name=/tmp/escaped-abs", "name=a/b", "name=..", "name=."]


@pytest.mark.parametrize("assignment", TRAVERSALS)
def test_experiment_names_are_plain_names_never_paths(cli, tmp_path, assignment):
    out, reports = tmp_path / "area" / "out", tmp_path / "area" / "reports"
    r = cli("run", "smoke", "--set", assignment, "--steps", "2", "--quiet", "--out", out, "--reports", reports)
    assert r.code == 2 and "plain name" in r.err and len(r.err.strip().splitlines()) == 1
    assert not any(tmp_path.rglob("*")) or {p.name for p in tmp_path.rglob("*")} <= {"area"}
    assert not out.exists() and not reports.exists()


def test_a_bare_word_is_an_experiment_name_even_beside_a_folder_of_that_name(tmp_path, monkeypatch):
    """A folder ./celeba/ (where a user keeps the data) does not hide the celeba experiment; a path is a path."""
    from bench.core.config import resolve_experiment_path
    from bench.core.errors import BenchError

    monkeypatch.chdir(tmp_path)
    (tmp_path / "celeba").mkdir()
    assert resolve_experiment_path("celeba") == experiment_path("celeba")
    for written in ("./celeba", "celeba/", str(tmp_path / "celeba"), "celeba.toml"):
        with pytest.raises(BenchError, match="experiment file not found"):
            resolve_experiment_path(written)
    (tmp_path / "mine").write_text(experiment_path("smoke").read_text())  # a TOML file named without the suffix
    assert resolve_experiment_path("mine") == Path("mine")
    with pytest.raises(BenchError, match=r"unknown experiment 'celebaa' \(did you mean 'celeba'\?\)"):
        resolve_experiment_path("celebaa")


def test_experiment_file_name_key_cannot_escape(cli, tmp_path):
    exp = tmp_path / "exp.toml"
    exp.write_text(experiment_path("smoke").read_text()
                   .replace('name = "smoke"', 'name = "../../x"'))
    r = cli("run", exp, "--steps", "2", "--quiet", "--out", tmp_path / "out")
    assert r.code == 2 and "plain name" in r.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp.toml"]
