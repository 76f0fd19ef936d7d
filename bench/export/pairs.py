"""The pairs of a run folder as the exporters see them: files, status, hyper-parameters, start time."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bench.core.errors import BenchError
from bench.core.names import MANIFEST, run_name
from bench.store.files import read_json
from bench.store.layout import RunFiles
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
        described = self.manifest.get("optimizers", {}).get(self.label, {"type": self.label})
        return hparams_of(self.manifest.get("experiment", ""), self.run_dir.name, self.label, self.seed, described)

    def time(self, key: str) -> float | None:
        """``started`` / ``finished`` of the pair (else of the run) as a POSIX time."""
        return posix(self.status.get(key) or self.manifest.get(key))


def posix(text: str | None) -> float | None:
    """A manifest's ISO time as seconds since the epoch (None when absent or unreadable)."""
    try:
        return datetime.fromisoformat(text).timestamp() if text else None
    except (TypeError, ValueError):
        return None


def manifest_of(run_dir: Path) -> dict:
    if not (run_dir / MANIFEST).is_file():
        raise BenchError(f"{run_dir}: no {MANIFEST}; not a bench run folder")
    return read_json(run_dir / MANIFEST)


def pairs(run_dir: Path) -> Iterator[Pair]:
    """Every pair of the run that has logged a row, in the manifest's order."""
    manifest = manifest_of(run_dir)
    try:
        labels = [str(x) for x in manifest["config"]["optimizers"]]
        seeds = [int(s) for s in manifest["config"]["seeds"]]
    except (KeyError, TypeError, ValueError):
        raise BenchError(f"{run_dir}/{MANIFEST}: no configuration with optimizers and seeds") from None
    for label in labels:
        for seed in seeds:
            files = RunFiles.of(run_dir, label, seed)
            if not files.metrics.is_file():
                continue
            status = read_json(files.status) if files.status.is_file() else {"status": "missing"}
            yield Pair(run_dir, manifest, label, seed, files, status)
