"""Shared fixtures: an in-process CLI runner, CelebA-layout folders/zips, CSV comparison."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


_TEMP: list[str] = []  # the session's own temporary folder (the controller's, when xdist runs workers)


def pytest_configure(config):
    # Every temporary file of the session, of its subprocesses (bench, --jobs workers, Ray, MLflow, TensorBoard,
    # Chromium) and of what they leave behind when a test kills them (TensorFlow's autograph sources, Ray's
    # session folder, browser profiles) lands in one folder of the system's temporary folder, removed when the
    # session ends: the machine as the tests found it. BENCH_KEEP_TEST_TMP=1 keeps it for a look. Set once, in
    # the process that starts the others (xdist's workers inherit it).
    if not hasattr(config, "workerinput") and not _TEMP:
        _TEMP.append(tempfile.mkdtemp(prefix="bench-tests-"))
        os.environ["TMPDIR"] = tempfile.tempdir = _TEMP[0]
        # Hypothesis keeps a cache of the constants in the tested code under ./.hypothesis/ (the checkout)
        os.environ["HYPOTHESIS_STORAGE_DIRECTORY"] = os.path.join(_TEMP[0], "hypothesis")
    _share_the_cores(getattr(config, "workerinput", None))
    config.addinivalue_line("markers", "training: trains a GAN end to end (in this process or a bench subprocess); "
                                       "`make test-fast` runs the tests without it")
    config.addinivalue_line("markers", "integration: no training, but a whole command over several runs' reports, "
                                       "a real server, a browser, MLflow, a bench subprocess, InceptionV3 or a "
                                       "whole validation suite; left out of `make test-fast` too")
    config.addinivalue_line("markers", "slow: takes 15 s or more of a worker (a Ray cluster, fresh processes that "
                                       "compile, a pip install): its file starts first under `make test`")
    try:  # Hypothesis keeps no example database in the checkout (.hypothesis/); test files set their own searches
        from hypothesis import settings
        from hypothesis.configuration import set_hypothesis_home_dir

        set_hypothesis_home_dir(os.environ["HYPOTHESIS_STORAGE_DIRECTORY"])
        settings.register_profile("bench-default", database=None)
        settings.load_profile("bench-default")
    except ImportError:
        pass


_CORES: list[set[int]] = []  # every core the session may use, when this worker was given a share of them


def _share_the_cores(worker: dict | None) -> None:
    """Each xdist worker (and what it starts: bench, --jobs workers, Ray, servers) on its own share of the cores.
    TensorFlow sizes its thread pools by the cores a process may use: two workers on two cores each ran two
    threads per process, which spun against each other (about a fifth of the suite's CPU time went to that).
    What a test compares is computed at the same thread count on both sides (the committed baseline's bands
    absorb the last digits that a thread count changes)."""
    if worker is None or not hasattr(os, "sched_setaffinity"):
        return
    cores = sorted(os.sched_getaffinity(0))
    index, count = int(worker["workerid"].removeprefix("gw")), int(worker["workercount"])
    _CORES.append(set(cores))
    os.sched_setaffinity(0, set(cores[index % len(cores)::count]))


@contextlib.contextmanager
def whole_machine():
    """The session's every core, for what starts several processes at once (``--jobs 2``, a Ray cluster): what
    they start meanwhile may run on any core, as on the user's machine."""
    if not _CORES:
        yield
        return
    mine = os.sched_getaffinity(0)
    os.sched_setaffinity(0, _CORES[0])
    try:
        yield
    finally:
        os.sched_setaffinity(0, mine)


@pytest.fixture
def all_cores():
    with whole_machine():
        yield


def pytest_unconfigure(config):
    if _TEMP and not os.environ.get("BENCH_KEEP_TEST_TMP"):
        shutil.rmtree(_TEMP.pop(), ignore_errors=True)


def pytest_collection_modifyitems(items):
    """The files with slow tests first, then those with the most training or integration tests, then the most
    tests: `make test` hands whole files to two workers in collection order, so the long ones start early and both
    workers end together (a Ray test or a compiling subprocess handed out last kept one worker busy 30 s after the
    other was done). Derived from the markers and the counts, not from a list kept by hand."""
    weight: dict[Path, tuple[int, int, int]] = {}
    for item in items:
        slow, trains, count = weight.get(item.path, (0, 0, 0))
        weight[item.path] = (slow + (item.get_closest_marker("slow") is not None),
                             trains + any(item.get_closest_marker(m) for m in ("training", "integration")), count + 1)
    items.sort(key=lambda item: tuple(-w for w in weight[item.path]))  # stable: within a file, as written


_MAY_TRAIN = [False]  # whether the test being set up, run or torn down is marked training


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    _MAY_TRAIN[0] = item.get_closest_marker("training") is not None  # before its fixtures, module ones included


@pytest.fixture(scope="session", autouse=True)
def _session_isolated(tmp_path_factory):
    """The working directory of the whole session a fresh empty folder (module fixtures included), so that a
    default output (results/, reports/) never lands in the checkout; and a test not marked ``training`` that
    starts a training loop in this process fails: the fast tier stays fast by construction."""
    from bench.execute import pair

    real_loop = pair.run_loop

    def guarded(*args, **kwargs):
        if not _MAY_TRAIN[0]:
            raise AssertionError("this test trains: mark it @pytest.mark.training (make test-fast leaves those out)")
        return real_loop(*args, **kwargs)

    before = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("session-cwd"))
    pair.run_loop = guarded
    try:
        yield
    finally:
        pair.run_loop = real_loop
        os.chdir(before)


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory, monkeypatch):
    """Every test in its own empty working directory, and the user's ~/.cache/bench untouched."""
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


GOLDEN = Path(__file__).resolve().parent / "data" / "golden" / "smoke"


@pytest.fixture(scope="session")
def golden() -> dict[str, Path]:
    """Three frozen real smoke runs (tests/data/make_golden.py): read them, never write into them."""
    return {name: GOLDEN / name for name in ("base", "fast", "verdict")}


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys):
    """Run ``bench ARGS`` in this process; returns exit code and captured output."""
    from bench.cli import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = main([str(a) for a in args])
        cap = capsys.readouterr()
        return CliResult(code, cap.out, cap.err)

    return run


def only_run_dir(out: Path, experiment: str) -> Path:
    dirs = [p for p in (out / experiment).iterdir() if p.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0]


def read_values(csv: Path) -> pd.DataFrame:
    """A run's CSV without its timing columns: what must be identical between runs."""
    from bench.store.logs import TIMING_COLUMNS

    return pd.read_csv(csv).drop(columns=list(TIMING_COLUMNS))


def make_celeba_jpegs(folder: Path, n: int, seed: int = 0) -> list[Path]:
    """``n`` random 178x218 JPEGs named like CelebA (000001.jpg ...)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(1, n + 1):
        # smooth colour blobs, so JPEG round-trips are stable and crops differ from image to image
        base = rng.integers(0, 256, size=(7, 6, 3), dtype=np.uint8)
        img = Image.fromarray(base).resize((178, 218), Image.Resampling.BILINEAR)
        p = folder / f"{i:06d}.jpg"
        img.save(p, quality=90)
        paths.append(p)
    return paths


def make_celeba_faces(folder: Path, n: int, seed: int = 0) -> Path:
    """``n`` CelebA-layout JPEGs (178x218, ``000001.jpg`` ...) made of the bundled LFW faces: each face placed
    where CelebA's aligned faces are, varied (mirrored, scaled, shifted, tinted, on its own background) so that
    the set has as many looks as images. Real CelebA needs a download; these need nothing."""
    import importlib.resources

    folder.mkdir(parents=True, exist_ok=True)
    with importlib.resources.as_file(importlib.resources.files("skimage.data") / "lfw_subset.npy") as f:
        faces = np.load(f)[:100]
    rng = np.random.default_rng(seed)
    for i in range(n):
        face = faces[rng.integers(100)]
        face = face[:, ::-1] if rng.random() < 0.5 else face
        rgb = np.clip((face[..., None] ** rng.uniform(0.7, 1.4)) * rng.uniform(0.55, 1.0, 3) * 255, 0, 255)
        size = int(rng.integers(96, 121))
        img = Image.fromarray(rgb.astype(np.uint8)).resize((size, size), Image.Resampling.BICUBIC)
        frame = Image.new("RGB", (178, 218), tuple(int(x) for x in rng.integers(30, 220, 3)))
        dx, dy = rng.integers(-6, 7, 2)
        frame.paste(img, (89 - size // 2 + int(dx), 109 - size // 2 + int(dy)))
        frame.save(folder / f"{i + 1:06d}.jpg", quality=90)
    return folder


@pytest.fixture
def celeba_dir(tmp_path) -> Path:
    root = tmp_path / "celeba"
    make_celeba_jpegs(root / "img_align_celeba", 12)
    (root / "list_eval_partition.txt").write_text("".join(f"{i:06d}.jpg 0\n" for i in range(1, 13)))
    return root


def zip_folder(folder: Path, zip_path: Path, arc_prefix: str) -> Path:
    with zipfile.ZipFile(zip_path, "w") as zf:
        for p in sorted(folder.iterdir()):
            zf.write(p, f"{arc_prefix}/{p.name}")
    return zip_path
