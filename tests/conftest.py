"""Shared fixtures: an in-process CLI runner, CelebA-layout folders/zips, CSV comparison."""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# The slowest files first: `make test` hands whole files to two workers in collection order, so starting
# with the long ones keeps both busy to the end (longest-first scheduling; about 20 s of a 4-minute suite).
SLOW_FIRST = ("test_sweep.py", "test_parallel.py", "test_hardening.py", "test_fuzz.py", "test_reliability.py",
              "test_workflow.py", "test_xla_cache.py", "test_mlflow.py", "test_experiments.py", "test_report.py",
              "test_run.py", "test_tensorboard.py", "test_readme.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(SLOW_FIRST)))  # stable: within a file, as written


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # Never touch the user's ~/.cache/bench from tests.
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


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
