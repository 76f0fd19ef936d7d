"""The pairs of a run folder as the exporters see them: files, status, hyper-parameters, start time."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bench.core.errors import BenchError
from bench.core.names import MANIFEST, run_name
from bench.store.files import outside, read_json, warn
from bench.store.layout import RunFiles
from bench.store.load import dig, manifest_plan
from bench.store.logs import read_metrics, read_quality
from bench.store.tensorboard import hparams_of, session_name


@dataclass(frozen=True)
class Pair:
    run_dir: Path
    manifest: dict
    label: str
    seed: int
    files: RunFiles
    status: dict  # status.json, or {"status": "missing"}

    @property
    def name(self) -> str:
        return run_name(self.label, self.seed)

    @property
    def session(self) -> str:
        """The pair's HParams session name."""
        return session_name(self.run_dir.name, self.name)

    @property
    def hparams(self) -> dict:
        described = dig(self.manifest, f"optimizers.{self.label}", dict, {"type": self.label})
        return hparams_of(str(dig(self.manifest, "experiment", str, "")), self.run_dir.name, self.label, self.seed,
                          described)

    def time(self, key: str) -> float | None:
        """``started`` / ``finished`` of the pair (else of the run) as a POSIX time."""
        return posix(dig(self.status, key, str) or dig(self.manifest, key, str))


def posix(text: str | None) -> float | None:
    """A manifest's ISO time as seconds since the epoch (None when absent or unreadable)."""
    try:
        return datetime.fromisoformat(text).timestamp() if text else None
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def manifest_of(run_dir: Path) -> dict:
    if not (run_dir / MANIFEST).is_file():
        raise BenchError(f"{run_dir}: no {MANIFEST}; not a bench run folder")
    manifest = read_json(run_dir / MANIFEST)
    manifest_plan(manifest, run_dir / MANIFEST)
    return manifest


def pairs(run_dir: Path) -> Iterator[Pair]:
    """Every pair of the run that has logged a row, in the manifest's order. A pair whose folder a symlink
    leads out of the run folder, or whose logs or status are garbled, is skipped with a warning naming it:
    what an exporter sends is only ever the run folder's own, whole files."""
    manifest = manifest_of(run_dir)
    plan = manifest_plan(manifest, run_dir / MANIFEST)
    for label in plan.optimizers:
        for seed in plan.seeds:
            files = RunFiles.of(run_dir, label, seed)
            if not files.metrics.is_file() or outside(run_dir, files.root, "that pair is not exported"):
                continue
            try:
                for path, read in ((files.metrics, read_metrics), (files.quality, read_quality)):
                    if path.exists() and not outside(run_dir, path):
                        read(path, label, seed)
                status = {"status": "missing"}
                if files.status.is_file() and not outside(run_dir, files.status):
                    status = read_json(files.status)
            except BenchError as e:
                warn(f"{e}; that pair is not exported")
                continue
            yield Pair(run_dir, manifest, label, seed, files, status)
