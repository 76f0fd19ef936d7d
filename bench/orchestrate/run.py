"""`bench run`: check everything, then start or resume a run folder and execute its pairs.

The only module that joins training (bench.execute) to a run folder's records (bench.store).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench import data
from bench.core import streams
from bench.core.config import Experiment, experiment_from_dict
from bench.core.errors import BenchError, describe
from bench.core.names import MANIFEST, now, run_name
from bench.core.sweep_table import parse_sweep
from bench.execute import stop
from bench.execute.local import run_parallel, run_sequential
from bench.execute.pair import PairRun
from bench.model import optimizers
from bench.model.runtime import configure_runtime, git_info, machine_info, versions
from bench.orchestrate.request import RunOptions
from bench.orchestrate.validate import validate
from bench.quality.scorer import make_evaluator
from bench.quality.scores import VERSIONS, goals
from bench.store.files import atomic_write_bytes, atomic_write_json, remove_stale_temps
from bench.store.images import save_images
from bench.store.logs import LEARNING_RATES, write_learning_rates

SCHEMA_VERSION = 1
RESUMABLE = ("running", "interrupted", "failed", "finished-with-failures")


def check_data_fits(exp: Experiment, n_images: int) -> None:
    half = exp.train.batch_size // 2
    if half > n_images:
        raise BenchError(
            f"train.batch_size {exp.train.batch_size} needs {half} real images per step but the data has only "
            f"{n_images}; lower the batch size or add images"
        )


def check_memory(exp: Experiment, sample_shape: tuple[int, ...]) -> None:
    """Refuse networks that cannot fit in this machine's memory, before anything is built: their weights,
    gradients and two optimizer slots, four float32 copies of every parameter."""
    m = exp.model
    sample = int(np.prod(sample_shape))
    g = [m.latent_dim, *m.g_widths, sample]
    d = [sample, *m.d_widths, 1]
    params = sum(a * b + b for net in (g, d) for a, b in zip(net, net[1:], strict=False))
    need = 16 * params
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not Linux
        return
    if need > total / 2:
        raise BenchError(f"the networks have {params:,} parameters: about {need / 2**30:.1f} GiB with gradients and "
                         f"optimizer state, more than half this machine's {total / 2**30:.0f} GiB; use smaller "
                         "model.g_widths / model.d_widths / model.latent_dim or data.image_size")


@dataclass
class Prepared:
    """Everything checked and loaded before a run folder is created, so bad input leaves no trace."""

    dataset: object
    runtime: dict


def prepare(exp: Experiment) -> Prepared:
    # first: TensorFlow fixes its threads at its first op (and the XLA cache keys the user's code)
    runtime = configure_runtime(exp.train.threads, optimizers.sources_sha(exp.optimizers))
    optimizers.validate(exp.optimizers)
    if exp.sweep:  # the file's search spaces, for the optimizers this experiment runs
        optimizers.check_sweep_space(exp.optimizers, parse_sweep(exp, goals(), "sweep", lenient=True), "sweep")
    dataset = data.load(exp.data)
    check_data_fits(exp, len(dataset.images))
    check_memory(exp, dataset.images.shape[1:])
    return Prepared(dataset, runtime)


def executor_session(opts: RunOptions):
    """Connect to Ray (or start it) before any folder is made; nothing to do for local processes."""
    if opts.executor != "ray":
        return contextlib.nullcontext()
    from bench.execute.ray import session

    return session(opts.address)


def experiment_from_manifest(manifest: dict, run_dir: Path) -> Experiment:
    """The experiment a run folder was made with."""
    if "config" not in manifest:
        raise BenchError(f"{run_dir}: manifest has no configuration; not a bench run folder")
    return experiment_from_dict(manifest["config"], f"{run_dir}/{MANIFEST}")


def trained_config(config: dict) -> dict:
    """A configuration without what only judges or displays a run ([compare], train.tensorboard): those do
    not make it another run."""
    out = {k: v for k, v in (config or {}).items() if k != "compare"}
    if isinstance(out.get("train"), dict):
        out["train"] = {k: v for k, v in out["train"].items() if k != "tensorboard"}
    return out


def is_resumable(manifest: dict, exp: Experiment) -> bool:
    """A run folder that repeating the same command continues: identical configuration, not finished."""
    return trained_config(manifest.get("config")) == trained_config(exp.to_dict()) and manifest.get("status") in RESUMABLE


# ------------------------------------------------------------------ one run folder


def _start_manifest(exp: Experiment, run_dir: Path, opts: RunOptions, prepared: Prepared, manifest: dict | None) -> dict:
    dataset = prepared.dataset
    runtime = {**prepared.runtime, "jit_compile": exp.train.jit_compile}
    manifest = manifest or {}
    manifest.update({
        "schema": SCHEMA_VERSION,
        "experiment": exp.name,
        "run_id": run_dir.name,
        "identity": exp.identity(),
        "status": "running",
        "command": manifest.get("command", opts.command),
        "commands": [*manifest.get("commands", []), opts.command],
        "cwd": manifest.get("cwd", str(Path.cwd())),
        "config": exp.to_dict(),
        "optimizers": {o.label: {"type": o.name, **optimizers.describe(o)} for o in exp.optimizers},
        "seeds": list(exp.seeds),
        "data": dataset.describe(),
        "machine": machine_info(runtime),
        "versions": versions(),
        "metric_versions": dict(VERSIONS),
        "git": git_info(),
        "started": manifest.get("started", now()),
        "runs": manifest.get("runs", {}),
    })
    if manifest.get("data_sha256_first", dataset.checksum) != dataset.checksum:
        raise BenchError(f"{run_dir}: the data changed since this run started (image-set checksum differs); start a new run")
    manifest["data_sha256_first"] = dataset.checksum
    return manifest


def _evaluator(exp: Experiment, dataset, opts: RunOptions, manifest: dict, say):
    """This process's quality scorer; workers of other executors build their own."""
    if not exp.eval.enabled:
        return None
    # Built here under every executor: its noise scores (one evaluation) anchor the run's normalised
    # scores, and it runs the validation suite; workers of other executors build their own for training.
    t0 = time.perf_counter()
    evaluator = make_evaluator(exp, dataset.images)
    setup = time.perf_counter() - t0
    say(f"sample quality: {exp.eval.samples} fixed latents vs {len(evaluator.real)} real images (set-up {setup:.1f} s)")
    manifest["eval"] = {"samples": exp.eval.samples, "real_images": len(evaluator.real),
                        "held_out_images": len(evaluator.held_out), "setup_seconds": round(setup, 3),
                        "noise": evaluator.noise_scores(exp.eval.samples)}
    table = validate(exp, dataset, evaluator)
    manifest["validation"] = table
    if table.get("applicable", True):
        failed = [m for m in table["metrics"] if m not in table["passed"]]
        took = "cached" if table.get("cache") == "hit" else f"{table.get('seconds', 0):.1f} s"
        say(f"validation ({took}): passed {', '.join(table['passed']) or 'none'}; failed {', '.join(failed) or 'none'} "
            f"(bench validate {exp.name} shows the table)")
    return evaluator if opts.jobs == 1 and opts.executor == "local" else None


def _final_status(states: list[str], complete: bool, interrupted: bool) -> str:
    if interrupted or not complete or "interrupted" in states:
        return "interrupted"
    if all(s == "finished" for s in states):
        return "finished"
    return "finished-with-failures" if "failed" in states else "finished-with-divergence"


def _dispatch(exp: Experiment, run_dir: Path, todo: list[tuple[str, int]], opts: RunOptions, dataset, evaluator,
              record) -> list[tuple[str, int, str]]:
    """Hand the pairs to the executor; returns those that failed for good."""
    if opts.executor == "ray":
        from bench.execute.ray import run_ray

        return run_ray(exp, run_dir, todo, opts.jobs, record, opts.quiet, opts.address, dataset.images, dataset.checksum)
    if opts.jobs > 1:
        return run_parallel(exp, run_dir, todo, opts.jobs, record, opts.quiet)
    return run_sequential(exp, run_dir, todo, dataset.images, evaluator, record, opts.quiet, opts.progress_every)


def execute(exp: Experiment, run_dir: Path, opts: RunOptions, prepared: Prepared, manifest: dict | None = None) -> dict:
    """Run every (optimizer, seed) pair of ``exp`` in ``run_dir``; resume what is unfinished.

    Returns the final manifest. The manifest is rewritten (atomically) after every pair.
    """
    dataset = prepared.dataset
    say = (lambda *a: None) if opts.quiet else (lambda *a: print(*a, file=sys.stderr))
    shape = "x".join(str(d) for d in dataset.images.shape[1:])
    kind = "points" if dataset.is_points else "images"
    say(f"data: {dataset.source}; {len(dataset.images)} {kind} of {shape} (decode cache: {dataset.cache})")
    say(f"run folder: {run_dir}")

    if removed := remove_stale_temps(run_dir):
        say(f"removed {removed} temporary file(s) a killed writer left in {run_dir}")
    manifest = _start_manifest(exp, run_dir, opts, prepared, manifest)
    path = run_dir / MANIFEST
    atomic_write_json(path, manifest)
    for name, text in optimizers.source_files(exp.optimizers).items():  # the user's code, beside what it made
        (run_dir / "optimizers").mkdir(exist_ok=True)
        atomic_write_bytes(run_dir / "optimizers" / name, text.encode("utf-8"))
    rates = optimizers.learning_rate_table(exp.optimizers, exp.train.steps, exp.train.update, exp.train.d_steps)
    if rates:  # schedules: the learning rate each network's optimizer uses, for the report (which has no Keras)
        write_learning_rates(run_dir / LEARNING_RATES, rates)
    real = dataset.images[streams.rng(exp.train.sample_seed, streams.REAL_GRID).choice(
        len(dataset.images), size=min(exp.train.sample_count, len(dataset.images)), replace=False)]
    save_images(run_dir, "real", real)
    evaluator = _evaluator(exp, dataset, opts, manifest, say)
    atomic_write_json(path, manifest)

    def record(label: str, seed: int, rec: dict) -> None:
        manifest["runs"][run_name(label, seed)] = rec
        atomic_write_json(path, manifest)
        if opts.on_pair is not None:  # e.g. MLflow, pair by pair; it reports its own failures, never raises
            opts.on_pair(run_dir, label, seed)

    pairs = [(o.label, seed) for o in exp.optimizers for seed in exp.seeds]
    manifest["machine"]["jobs"] = opts.jobs
    manifest["machine"]["executor"] = opts.executor + (f" ({opts.address})" if opts.address else "")
    interrupted, signum = False, None
    try:
        with stop.graceful(quiet=opts.quiet):
            todo = []
            for label, seed in pairs:  # finished pairs (a resumed run) are verified and recorded, not sent anywhere
                pair = PairRun(exp, label, seed, dataset.images, run_dir)
                if pair.finished_intact():
                    record(label, seed, pair.prior())
                else:
                    todo.append((label, seed))
            failed = _dispatch(exp, run_dir, todo, opts, dataset, evaluator, record)
            signum = stop.requested()
        for label, seed, reason in failed:
            record(label, seed, {"optimizer": label, "seed": seed, "status": "failed", "error": reason})
    except KeyboardInterrupt:
        interrupted = True
    except BaseException as e:  # a bug or an unusable file: the folder says so, it is never left "running"
        manifest.update(status="failed", error=describe(e), finished=now())
        atomic_write_json(path, manifest)
        raise
    states = [r["status"] for r in manifest["runs"].values()]
    manifest["status"] = _final_status(states, len(states) == len(pairs), interrupted or signum is not None)
    manifest["finished"] = now()
    atomic_write_json(path, manifest)
    if manifest["status"] == "interrupted" and (interrupted or signum is not None):
        raise BenchError(f"interrupted; continue with: bench run --resume {run_dir}",
                         exit_code=stop.exit_code(signum) if signum else 130)
    return manifest
