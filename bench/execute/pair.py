"""One (optimizer, seed) pair, trained or resumed in a run folder: the training loop's callbacks
write its CSV rows, sample grids, quality scores, checkpoints and status record."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.core.config import Experiment
from bench.core.metric_table import LOSSES
from bench.core.names import now
from bench.model.step import LoopResult, eval_latents, run_loop, sample_latents, trainer_for
from bench.store.checkpoint import load_checkpoint, save_checkpoint
from bench.store.files import atomic_write_json, read_json
from bench.store.images import save_arrays, save_images
from bench.store.layout import RunFiles
from bench.store.logs import MetricsLog, QualityLog

DONE = ("finished", "diverged")  # a pair in one of these states is never trained again


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


class PairRun:
    """Train (or resume) one pair; ``run()`` returns its status record.

    ``after_checkpoint(step)`` runs once the pair's files are consistent at a checkpoint (the Ray
    executor streams them back then)."""

    def __init__(self, exp: Experiment, label: str, seed: int, images: np.ndarray, run_dir: Path,
                 evaluator=None, quiet: bool = True, after_checkpoint: Callable[[int], None] | None = None):
        self.exp, self.label, self.seed, self.images = exp, label, seed, images
        self.run_dir, self.evaluator, self.quiet, self.after_checkpoint = run_dir, evaluator, quiet, after_checkpoint
        self.files = RunFiles.of(run_dir, label, seed)

    def run(self) -> dict:
        exp, files = self.exp, self.files
        prior = read_json(files.status) if files.status.exists() else {}
        if prior.get("status") in DONE:
            return prior  # never redo a finished run (a "failed" pair is retried from its checkpoint)

        self.trainer = trainer_for(exp, exp.optimizer(self.label), self.images, self.seed)
        start, elapsed0 = 0, 0.0
        ckpt = load_checkpoint(files.checkpoint)
        if ckpt is not None:
            start, state = ckpt
            self.trainer.set_state(state)
            elapsed0 = float(prior.get("elapsed_at_checkpoint", 0.0))
        self.elapsed0 = elapsed0
        self.eval_seconds_before = float(prior.get("eval_seconds_at_checkpoint", 0.0)) if start else 0.0
        self.eval_seconds = self.eval_seconds_before
        self.log = MetricsLog(files.metrics, self.label, self.seed, resume_step=start)
        self.quality = QualityLog(files.quality, self.label, self.seed, resume_step=start) if self.evaluator else None
        self.z_fixed = sample_latents(exp)
        self.z_bank = eval_latents(exp) if self.evaluator else None
        self.plot_features = exp.model.d_widths[-1] == 2  # the 2-D toy: D's 2-unit layer is worth a plot
        self.real_ref = np.load(self.run_dir / "real.npy") if self.plot_features else None
        self.record = {"optimizer": self.label, "type": exp.optimizer(self.label).name, "seed": self.seed,
                       "status": "running", "steps_total": exp.train.steps, "steps_done": start, "diverged_at": None,
                       "resumed_from": start or None, "started": prior.get("started", now())}
        atomic_write_json(files.status, self.record)
        self.t_start = time.perf_counter()

        if start == 0:
            self.on_sample(0)
        progress = Progress(self.label, self.seed, exp.train.steps, start, self.quiet)
        try:
            out = run_loop(self.trainer, start, exp.train.steps, self.on_row, self.on_sample, self.on_checkpoint,
                           exp.train.sample_every, exp.train.checkpoint_every, progress)
        finally:
            progress.close()
            self.log.close()
            if self.quality is not None:
                self.quality.close()
        return self.finish(out)

    def elapsed(self) -> float:
        return self.elapsed0 + time.perf_counter() - self.t_start

    # ------------------------------------------------------------------ the loop's callbacks

    def on_row(self, step: int, values: np.ndarray, seconds: float) -> None:
        ok = bool(np.all(np.isfinite(values[: len(LOSSES)])))
        self.log.write(step, values, "ok" if ok else "diverged", seconds, self.elapsed())

    def on_sample(self, step: int) -> None:
        exp, trainer = self.exp, self.trainer
        fake = trainer.generate(self.z_fixed)
        save_images(self.files.samples, f"step_{step:06d}", fake)
        if self.plot_features:
            save_arrays(self.files.samples, f"dfeat_step_{step:06d}",
                        real=trainer.d_features(self.real_ref), fake=trainer.d_features(fake))
        if self.evaluator is not None and (step % (exp.eval.every or exp.train.sample_every) == 0
                                           or step == exp.train.steps):
            t0 = time.perf_counter()
            values, _ = self.evaluator(trainer.generate(self.z_bank))
            seconds = time.perf_counter() - t0  # generation included: all of it is evaluation, not training
            self.eval_seconds += seconds
            self.quality.write(step, values, seconds)

    def on_checkpoint(self, step: int) -> None:
        save_checkpoint(self.files.checkpoint, step, self.trainer.get_state())
        atomic_write_json(self.files.status, {**self.record, "steps_done": step, "elapsed_at_checkpoint": self.elapsed(),
                                              "eval_seconds_at_checkpoint": self.eval_seconds})
        if self.after_checkpoint is not None and step < self.exp.train.steps:  # the last one is the final result
            self.after_checkpoint(step)

    # ------------------------------------------------------------------ the end

    def finish(self, out: LoopResult) -> dict:
        wall = time.perf_counter() - self.t_start
        session_eval = self.eval_seconds - self.eval_seconds_before
        record = self.record
        record.update(status=out.status, steps_done=out.last_step, diverged_at=out.diverged_at, finished=now(),
                      train_seconds=round(out.train_seconds, 3), eval_seconds=round(self.eval_seconds, 3),
                      wall_seconds=round(wall, 3),
                      # what the harness itself costs: wall time that is neither training nor evaluation
                      harness_overhead=round(1 - (out.train_seconds + session_eval) / wall, 4) if wall > 0 else None,
                      elapsed_at_checkpoint=self.elapsed())
        atomic_write_json(self.files.status, record)
        if out.status == "diverged":
            print(f"! {self.label} seed {self.seed} diverged at step {out.diverged_at} (non-finite loss); "
                  "the other runs go on", file=sys.stderr)
        return record
