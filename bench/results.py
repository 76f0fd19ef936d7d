"""Run folder layout, CSV columns, manifest and crash-safe writes.

    results/<experiment>/<run-id>/
        manifest.json                 configuration, command, versions, machine, data, per-run status
        real.npy, real.png            the reference grid of real training images
        runs/<label>-seed<seed>/
            metrics.csv               one row per iteration (tidy; concatenable across runs)
            quality.csv               sample-quality metrics at every sample interval (step, metric, value)
            status.json               running | finished | diverged, steps done, timings
            samples/step_000200.png   grid of the fixed latents at each sample interval
            samples/step_000200.npy   the same samples as raw float32 arrays in [-1, 1]
            checkpoint.npz            every variable of G, D and both optimizers, and the step

Files on disk are the only link between training and reporting. Writes survive a kill
at any moment: CSV rows are appended whole and flushed, everything else is written to
a temporary file and renamed over the old one.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.errors import BenchError

KEY_COLUMNS = ("optimizer", "seed", "step")
TIMING_COLUMNS = ("step_seconds", "elapsed_seconds")
MANIFEST = "manifest.json"
SCHEMA_VERSION = 1


def metric_columns() -> tuple[str, ...]:
    from bench.train import METRICS  # numpy only; train imports TF lazily

    return METRICS


def csv_columns() -> tuple[str, ...]:
    return (*KEY_COLUMNS, *metric_columns(), "status", *TIMING_COLUMNS)


QUALITY_COLUMNS = (*KEY_COLUMNS, "metric", "value", "eval_seconds")


def _os_error(e: OSError, path: Path) -> BenchError:
    if e.errno == errno.ENOSPC:
        return BenchError(f"disk full while writing {path}; free space and resume with --resume")
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return BenchError(f"cannot write to {path}: permission denied")
    return BenchError(f"cannot write {path}: {e.strerror or e}")


@contextlib.contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn OS errors while writing ``path`` into one-line BenchErrors."""
    try:
        yield
    except OSError as e:
        raise _os_error(e, path) from None


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with writing(path):
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n").encode())


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise BenchError(f"{path}: not found") from None
    except (OSError, ValueError) as e:
        raise BenchError(f"{path}: unreadable JSON ({e})") from None


def ensure_writable(folder: Path) -> None:
    """Fail early, before any training, if results cannot be written."""
    with writing(folder):
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()


def inside(root: Path, *parts: str) -> Path:
    """``root/parts...``, refused unless it stays inside ``root`` (names come from user input)."""
    path = Path(root).joinpath(*parts)
    if not path.resolve().is_relative_to(Path(root).resolve()) or path.resolve() == Path(root).resolve():
        raise BenchError(f"{'/'.join(parts)!r} would be written outside {root}; use a plain name")
    return path


def new_run_dir(out: Path, experiment: str, prefix: str = "") -> Path:
    """A fresh ``<out>/<experiment>/<prefix><timestamp>`` folder; never reuses one another process made."""
    parent = inside(out, experiment)
    ensure_writable(parent)
    stamp = prefix + time.strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        path = parent / (stamp if n == 0 else f"{stamp}-{n}")
        try:
            path.mkdir()  # atomic: two processes starting in the same second get different folders
            return path
        except FileExistsError:
            continue
        except OSError as e:
            raise _os_error(e, path) from None
    raise BenchError(f"cannot create a run folder under {parent}")


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """One writer per run folder: a second ``bench run --resume`` on it stops at once."""
    path = run_dir / ".lock"
    with writing(path):
        f = open(path, "a+")
    try:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BenchError(f"{run_dir} is being written by another bench process; wait for it to finish") from None
        yield
    finally:
        f.close()


def writer_alive(run_dir: Path) -> bool:
    """Whether a bench process holds ``run_dir``'s lock right now (a run in progress)."""
    try:
        with open(run_dir / ".lock", "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return False
    except BlockingIOError:
        return True
    except OSError:
        return False


# ------------------------------------------------------------------ per-run files


def newest_unfinished(folder: Path, pattern: str, record: str, matches) -> Path | None:
    """The newest folder ``folder/pattern`` whose ``record`` JSON satisfies ``matches`` and that no live
    bench process is writing: what repeating a command picks up again (runs and sweeps alike)."""
    if not folder.is_dir():
        return None
    for d in sorted((p for p in folder.glob(pattern) if p.is_dir()), reverse=True):
        try:
            rec = read_json(d / record)
        except BenchError:
            continue
        if matches(rec) and not writer_alive(d):
            return d
    return None


def run_name(label: str, seed: int) -> str:
    return f"{label}-seed{seed}"


@dataclass(frozen=True)
class RunFiles:
    root: Path

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.csv"

    @property
    def status(self) -> Path:
        return self.root / "status.json"

    @property
    def checkpoint(self) -> Path:
        return self.root / "checkpoint.npz"

    @property
    def quality(self) -> Path:
        return self.root / "quality.csv"

    @property
    def samples(self) -> Path:
        return self.root / "samples"

    @classmethod
    def of(cls, run_dir: Path, label: str, seed: int) -> RunFiles:
        return cls(run_dir / "runs" / run_name(label, seed))


def _fmt(v: float) -> str:
    # repr of a float64 round-trips exactly: equal CSV text means equal values.
    return "nan" if v != v else repr(float(v))


class CsvLog:
    """Append-only CSV whose third column is the step; each row is one whole ``write``, flushed at once.

    Opening at ``resume_step`` drops rows past the checkpoint (and any partial last line),
    so a resumed run neither loses nor repeats rows.
    """

    def __init__(self, path: Path, columns: tuple[str, ...], resume_step: int = 0):
        self.path = path
        header = ",".join(columns) + "\n"
        with writing(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            if resume_step and path.exists():
                keep = [header]
                with open(path) as f:
                    next(f, None)
                    for line in f:
                        if not line.endswith("\n"):
                            break  # torn last line from a kill
                        if int(line.split(",", 3)[2]) > resume_step:
                            break
                        keep.append(line)
                atomic_write_bytes(path, "".join(keep).encode())
            else:
                atomic_write_bytes(path, header.encode())
            self._f = open(path, "a", buffering=1 << 16)

    def write_line(self, line: str) -> None:
        with writing(self.path):
            self._f.write(line)
            self._f.flush()

    def close(self) -> None:
        self._f.close()


class MetricsLog(CsvLog):
    """``metrics.csv``: one row per iteration."""

    def __init__(self, path: Path, label: str, seed: int, resume_step: int = 0):
        super().__init__(path, csv_columns(), resume_step)
        self.prefix = f"{label},{seed},"

    def write(self, step: int, values: np.ndarray, status: str, step_seconds: float, elapsed: float) -> None:
        self.write_line(f"{self.prefix}{step}," + ",".join(_fmt(v) for v in values)
                        + f",{status},{step_seconds:.6f},{elapsed:.3f}\n")


class QualityLog(CsvLog):
    """``quality.csv``: (step, metric, value) rows at every sample interval."""

    def __init__(self, path: Path, label: str, seed: int, resume_step: int = 0):
        super().__init__(path, QUALITY_COLUMNS, resume_step)
        self.prefix = f"{label},{seed},"

    def write(self, step: int, values: dict[str, float], seconds: float) -> None:
        self.write_line("".join(f"{self.prefix}{step},{k},{_fmt(v)},{seconds:.4f}\n" for k, v in values.items()))


def to_grid(images: np.ndarray, cols: int | None = None, pad: int = 1) -> np.ndarray:
    """Tile (N, H, W, C) images in [-1, 1] into one uint8 grid image."""
    n, h, w, c = images.shape
    cols = cols or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), 255, np.uint8)
    pixels = np.clip(np.round((images + 1) * 127.5), 0, 255).astype(np.uint8)
    for i in range(n):
        r, col = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        grid[y: y + h, x: x + w] = pixels[i]
    return grid[..., 0] if c == 1 else grid


def save_arrays(folder: Path, stem: str, **arrays: np.ndarray) -> None:
    """Several arrays in one ``.npz``, written to a temporary file and renamed."""
    with writing(folder):
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{stem}.npz.tmp"
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, folder / f"{stem}.npz")


def save_images(folder: Path, stem: str, images: np.ndarray, scale: int = 1) -> None:
    """Raw float32 array and a PNG grid (upscaled ``scale`` times, nearest) of the same images.

    Point data (N, D) gets the array only: the report draws it (training never imports matplotlib).
    """
    from PIL import Image

    with writing(folder):
        folder.mkdir(parents=True, exist_ok=True)
        buf = folder / f".{stem}.npy.tmp"
        with open(buf, "wb") as f:
            np.save(f, images.astype(np.float32))
        os.replace(buf, folder / f"{stem}.npy")
        if images.ndim != 4:
            return
        img = Image.fromarray(to_grid(images))
        if scale > 1:
            img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
        tmp = folder / f".{stem}.png.tmp"
        img.save(tmp, format="PNG")
        os.replace(tmp, folder / f"{stem}.png")


def save_checkpoint(path: Path, step: int, arrays: list[np.ndarray]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with writing(path):
        with open(tmp, "wb") as f:
            np.savez(f, step=np.int64(step), **{f"v{i}": a for i, a in enumerate(arrays)})
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


def load_checkpoint(path: Path) -> tuple[int, list[np.ndarray]] | None:
    """(step, arrays), or None when there is no usable checkpoint."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            n = len([k for k in z.files if k.startswith("v")])
            return int(z["step"]), [z[f"v{i}"] for i in range(n)]
    except (OSError, ValueError, KeyError):
        return None
