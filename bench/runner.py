"""Orchestrates one ``bench run``: data, then every (optimizer, seed) pair, into one run folder.

This is the only module that joins training (``train``) to files (``results``).
"""

from __future__ import annotations

import datetime as dt
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench import results
from bench.config import Experiment
from bench.errors import BenchError
from bench.results import RunFiles

PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def _now() -> str:
    return dt.datetime.now(dt.UTC).astimezone().isoformat(timespec="seconds")


def _versions() -> dict:
    import importlib.metadata as md

    import keras
    import tensorflow as tf

    # Module versions, not distribution names: tensorflow may be installed as tensorflow-cpu.
    out = {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
           "numpy": np.__version__}
    for pkg in ("bench", "pillow", "scikit-image", "pandas"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git() -> dict:
    def git(*args: str) -> str | None:
        try:
            r = subprocess.run(["git", "-C", str(PACKAGE_ROOT), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return r.stdout.strip() if r.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    return {"commit": commit, "dirty": bool(git("status", "--porcelain", "--untracked-files=no")) if commit else None}


def machine_info(runtime: dict) -> dict:
    from bench.train import available_cores

    return {"platform": platform.platform(), "cpu": _cpu_model(), "cores": available_cores(),
            "hostname": platform.node(), **runtime}


@dataclass
class RunOptions:
    quiet: bool = False
    jobs: int = 1  # parallel worker processes (bench.executors); with Ray: tasks in flight (0 = no cap)
    executor: str = "local"  # local | ray
    address: str | None = None  # Ray cluster address; None starts a local Ray
    command: str = field(default_factory=lambda: shlex.join(["bench", *sys.argv[1:]]))  # as typed


class Progress:
    """A tqdm bar per (optimizer, seed): step, losses, steps/s. Silent in quiet mode."""

    def __init__(self, label: str, seed: int, total: int, start: int, quiet: bool):
        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=start, desc=f"{label} seed {seed}", unit="step", disable=quiet,
                        dynamic_ncols=True, leave=True, file=sys.stderr, mininterval=0.5)

    def __call__(self, step: int, values: np.ndarray) -> None:
        self.bar.update(1)
        if step % 25 == 0:
            self.bar.set_postfix_str(f"D-real {values[0]:.3f}  D-fake {values[1]:.3f}  G {values[2]:.3f}", refresh=False)

    def close(self) -> None:
        self.bar.close()


def eval_latents(exp: Experiment) -> np.ndarray:
    """The fixed latent bank the quality metrics score: the same for every optimizer and seed."""
    from bench.train import draw_latents

    rng = np.random.default_rng([exp.eval.seed, 0xB4])
    return draw_latents(rng, (exp.eval.samples, exp.model.latent_dim), exp.model.latent)


def _train_one(exp: Experiment, label: str, seed: int, images: np.ndarray, run_dir: Path, opts: RunOptions,
               evaluator=None, after_checkpoint=None) -> dict:
    """Train (or resume) one (optimizer, seed) pair; return its status record.

    ``after_checkpoint(step)`` runs once the pair's files are consistent at a checkpoint (the Ray
    executor streams them back then)."""
    from bench.train import LOSSES, run_loop, sample_latents, trainer_for

    files = RunFiles.of(run_dir, label, seed)
    prior = results.read_json(files.status) if files.status.exists() else {}
    if prior.get("status") in ("finished", "diverged"):
        return prior  # never redo a finished run (a "failed" pair is retried from its checkpoint)

    trainer = trainer_for(exp, exp.optimizer(label), images, seed)
    start, elapsed0 = 0, 0.0
    ckpt = results.load_checkpoint(files.checkpoint)
    if ckpt is not None:
        start, state = ckpt
        trainer.set_state(state)
        elapsed0 = float(prior.get("elapsed_at_checkpoint", 0.0))
    log = results.MetricsLog(files.metrics, label, seed, resume_step=start)
    quality = results.QualityLog(files.quality, label, seed, resume_step=start) if evaluator else None
    z_fixed = sample_latents(exp)
    z_bank = eval_latents(exp) if evaluator else None
    eval_seconds = float(prior.get("eval_seconds_at_checkpoint", 0.0)) if start else 0.0
    record = {"optimizer": label, "type": exp.optimizer(label).name, "seed": seed, "status": "running",
              "steps_total": exp.train.steps, "steps_done": start, "diverged_at": None,
              "resumed_from": start or None, "started": prior.get("started", _now())}
    results.atomic_write_json(files.status, record)
    t_start = time.perf_counter()

    def elapsed() -> float:
        return elapsed0 + time.perf_counter() - t_start

    def on_row(step: int, values: np.ndarray, seconds: float) -> None:
        ok = bool(np.all(np.isfinite(values[: len(LOSSES)])))
        log.write(step, values, "ok" if ok else "diverged", seconds, elapsed())

    plot_features = exp.model.d_widths[-1] == 2  # the 2-D toy: D's 2-unit layer is worth a plot
    real_ref = np.load(run_dir / "real.npy") if plot_features else None

    def on_sample(step: int) -> None:
        nonlocal eval_seconds
        fake = trainer.generate(z_fixed)
        results.save_images(files.samples, f"step_{step:06d}", fake)
        if plot_features:
            results.save_arrays(files.samples, f"dfeat_step_{step:06d}",
                                real=trainer.d_features(real_ref), fake=trainer.d_features(fake))
        if evaluator is not None and (step % (exp.eval.every or exp.train.sample_every) == 0 or step == exp.train.steps):
            t0 = time.perf_counter()
            values, _ = evaluator(trainer.generate(z_bank))
            seconds = time.perf_counter() - t0  # generation included: all of it is evaluation, not training
            eval_seconds += seconds
            quality.write(step, values, seconds)

    def on_checkpoint(step: int) -> None:
        results.save_checkpoint(files.checkpoint, step, trainer.get_state())
        results.atomic_write_json(files.status, {**record, "steps_done": step, "elapsed_at_checkpoint": elapsed(),
                                                 "eval_seconds_at_checkpoint": eval_seconds})
        if after_checkpoint is not None and step < exp.train.steps:  # the last one is the final result
            after_checkpoint(step)

    if start == 0:
        on_sample(0)
    progress = Progress(label, seed, exp.train.steps, start, opts.quiet)
    try:
        out = run_loop(trainer, start, exp.train.steps, on_row, on_sample, on_checkpoint,
                       exp.train.sample_every, exp.train.checkpoint_every, progress)
    finally:
        progress.close()
        log.close()
        if quality is not None:
            quality.close()
    wall = time.perf_counter() - t_start
    session_eval = eval_seconds - (float(prior.get("eval_seconds_at_checkpoint", 0.0)) if start else 0.0)
    record.update(status=out.status, steps_done=out.last_step, diverged_at=out.diverged_at, finished=_now(),
                  train_seconds=round(out.train_seconds, 3), eval_seconds=round(eval_seconds, 3),
                  wall_seconds=round(wall, 3),
                  # what the harness itself costs: wall time that is neither training nor evaluation
                  harness_overhead=round(1 - (out.train_seconds + session_eval) / wall, 4) if wall > 0 else None,
                  elapsed_at_checkpoint=elapsed())
    results.atomic_write_json(files.status, record)
    if out.status == "diverged":
        print(f"! {label} seed {seed} diverged at step {out.diverged_at} (non-finite loss); the other runs go on",
              file=sys.stderr)
    return record


def make_evaluator(exp: Experiment, images: np.ndarray):
    """The run's sample-quality scorer (None when disabled): fixed real subset, PCA, optional FID."""
    if not exp.eval.enabled:
        return None
    from bench.metrics import Evaluator

    evaluator = Evaluator(images, exp.eval.real, exp.eval.pca_dims, exp.eval.seed, exp.eval.patches_per_image)
    if exp.eval.fid_weights:
        from bench.fid import fid_scorer

        evaluator.extras.append(fid_scorer(Path(exp.eval.fid_weights), evaluator.real))
    return evaluator


def check_data_fits(exp: Experiment, n_images: int) -> None:
    half = exp.train.batch_size // 2
    if half > n_images:
        raise BenchError(
            f"train.batch_size {exp.train.batch_size} needs {half} real images per step but the data has only "
            f"{n_images}; lower the batch size or add images"
        )


@dataclass
class Prepared:
    """Everything checked and loaded before a run folder is created, so bad input leaves no trace."""

    dataset: object
    runtime: dict


def prepare(exp: Experiment) -> Prepared:
    from bench import data, optimizers
    from bench.train import configure_runtime

    optimizers.validate(exp.optimizers)
    runtime = configure_runtime(exp.train.threads)
    dataset = data.load(exp.data)
    check_data_fits(exp, len(dataset.images))
    return Prepared(dataset, runtime)


def execute(exp: Experiment, run_dir: Path, opts: RunOptions, prepared: Prepared, manifest: dict | None = None) -> dict:
    """Run every (optimizer, seed) pair of ``exp`` in ``run_dir``; resume what is unfinished.

    Returns the final manifest. The manifest is rewritten (atomically) after every pair.
    """
    from bench import optimizers

    dataset, runtime = prepared.dataset, prepared.runtime
    say = (lambda *a: None) if opts.quiet else (lambda *a: print(*a, file=sys.stderr))
    shape = "x".join(str(d) for d in dataset.images.shape[1:])
    kind = "points" if dataset.is_points else "images"
    say(f"data: {dataset.source}; {len(dataset.images)} {kind} of {shape} (decode cache: {dataset.cache})")
    say(f"run folder: {run_dir}")

    runtime = {**runtime, "jit_compile": exp.train.jit_compile}
    manifest = manifest or {}
    manifest.update({
        "schema": results.SCHEMA_VERSION,
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
        "versions": _versions(),
        "git": _git(),
        "started": manifest.get("started", _now()),
        "runs": manifest.get("runs", {}),
    })
    if manifest.get("data_sha256_first", dataset.checksum) != dataset.checksum:
        raise BenchError(f"{run_dir}: the data changed since this run started (image-set checksum differs); start a new run")
    manifest["data_sha256_first"] = dataset.checksum
    results.atomic_write_json(run_dir / results.MANIFEST, manifest)

    real = dataset.images[np.random.default_rng([exp.train.sample_seed, 0x8E]).choice(
        len(dataset.images), size=min(exp.train.sample_count, len(dataset.images)), replace=False)]
    results.save_images(run_dir, "real", real)

    evaluator = None
    if exp.eval.enabled and opts.jobs == 1 and opts.executor == "local":
        t0 = time.perf_counter()
        evaluator = make_evaluator(exp, dataset.images)
        say(f"sample quality: {exp.eval.samples} fixed latents vs {len(evaluator.real)} real images "
            f"(set-up {time.perf_counter() - t0:.1f} s)")
        manifest["eval"] = {"samples": exp.eval.samples, "real_images": len(evaluator.real),
                            "setup_seconds": round(time.perf_counter() - t0, 3)}
        results.atomic_write_json(run_dir / results.MANIFEST, manifest)
    elif exp.eval.enabled:
        manifest["eval"] = {"samples": exp.eval.samples, "real_images": min(exp.eval.real, len(dataset.images))}

    def record(label: str, seed: int, rec: dict) -> None:
        manifest["runs"][results.run_name(label, seed)] = rec
        results.atomic_write_json(run_dir / results.MANIFEST, manifest)

    pairs = [(o.label, seed) for o in exp.optimizers for seed in exp.seeds]
    manifest["machine"]["jobs"] = opts.jobs
    manifest["machine"]["executor"] = opts.executor + (f" ({opts.address})" if opts.address else "")
    interrupted = False
    try:
        failed, todo = [], []
        for label, seed in pairs:  # finished pairs (a resumed run) are recorded, not sent anywhere
            status = RunFiles.of(run_dir, label, seed).status
            prior = results.read_json(status) if status.exists() else {}
            if prior.get("status") in ("finished", "diverged"):
                record(label, seed, prior)
            else:
                todo.append((label, seed))
        if opts.executor == "ray":
            from bench.ray_executor import run_ray

            failed = run_ray(exp, run_dir, todo, opts.jobs, record, opts.quiet, opts.address, dataset.images,
                             dataset.checksum)
        elif opts.jobs > 1:
            from bench.executors import run_parallel

            failed = run_parallel(exp, run_dir, todo, opts.jobs, record, opts.quiet)
        else:
            for label, seed in todo:
                record(label, seed, _train_one(exp, label, seed, dataset.images, run_dir, opts, evaluator))
        for label, seed, reason in failed:
            record(label, seed, {"optimizer": label, "seed": seed, "status": "failed", "error": reason})
    except KeyboardInterrupt:
        interrupted = True
    states = [r["status"] for r in manifest["runs"].values()]
    complete = len(states) == len(pairs)
    manifest["status"] = "interrupted" if interrupted or not complete else (
        "finished" if all(s == "finished" for s in states) else
        "finished-with-failures" if "failed" in states else "finished-with-divergence")
    manifest["finished"] = _now()
    results.atomic_write_json(run_dir / results.MANIFEST, manifest)
    if interrupted:
        raise BenchError(f"interrupted; continue with: bench run --resume {run_dir}", exit_code=130)
    return manifest
