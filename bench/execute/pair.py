"""One (optimizer, seed) pair, trained or resumed in a run folder: the training loop's callbacks
write its CSV rows, sample grids, quality scores, checkpoints and status record.

Before anything trains, the pair's files are verified: every CSV row up to the checkpoint it resumes
from (or up to the end, for a pair already finished) must be there once, whole and in order, and the
checkpoint must be whole and belong to this experiment, optimizer and seed. A damaged log is repaired
by recomputing from the newest checkpoint before the damage (every value is a pure function of the
seed, so the recomputed rows are the lost ones); a damaged newest checkpoint falls back to the one
before it; a checkpoint of something else is refused.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from bench.core.config import Experiment
from bench.core.errors import BenchError, describe
from bench.core.metric_table import LOSSES
from bench.core.names import now
from bench.execute import stop
from bench.model import optimizers, xla_cache
from bench.model.optimizers import source_of
from bench.model.sources import error_in
from bench.model.step import LoopResult, eval_latents, run_loop, sample_latents, trainer_for
from bench.store.checkpoint import (
    Checkpoint,
    Unreadable,
    checkpoints,
    read_checkpoint,
    save_checkpoint,
    step_of,
)
from bench.store.files import atomic_write_json, read_json
from bench.store.images import save_arrays, save_images
from bench.store.layout import RunFiles
from bench.store.logs import MetricsLog, QualityLog, Scan, scan_metrics, scan_quality
from bench.store.tensorboard import PairEvents, hparams_of, session_name

DONE = ("finished", "diverged")  # a pair in one of these states is not trained again (unless its files are damaged)


PROGRESS_EVERY = 30.0  # seconds between a pair's progress lines when stderr is a file or a pipe (--progress-every)


class Progress:
    """How a pair's training shows: a tqdm bar on a terminal; plain lines in a log (CI, nohup, a cluster job's
    file), at most one every ``every`` seconds while it trains and one when it ends, never a carriage return;
    nothing in quiet mode."""

    def __init__(self, label: str, seed: int, total: int, start: int, quiet: bool, every: float = PROGRESS_EVERY):
        self.name, self.total, self.every = f"{label} seed {seed}", total, every
        self.bar = None
        self.lines = not quiet and not _is_terminal(sys.stderr)
        self.start = self.step = start
        self.t0 = self.last = time.perf_counter()
        self.values: np.ndarray | None = None
        if not quiet and not self.lines:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=start, desc=self.name, unit="step", dynamic_ncols=True,
                            leave=True, file=sys.stderr, mininterval=0.5)

    def _losses(self) -> str:
        v = self.values
        return "" if v is None else f"  D-real {v[0]:.3f}  D-fake {v[1]:.3f}  G {v[2]:.3f}"

    def __call__(self, step: int, values: np.ndarray) -> None:
        self.step, self.values = step, values
        if self.bar is not None:
            self.bar.update(1)
            if step % 25 == 0:
                self.bar.set_postfix_str(self._losses().strip(), refresh=False)
        elif self.lines and (now := time.perf_counter()) - self.last >= self.every:
            self.last = now
            rate = (step - self.start) / max(now - self.t0, 1e-9)
            print(f"{self.name}: step {step}/{self.total}{self._losses()}  ({rate:.1f} steps/s)", file=sys.stderr,
                  flush=True)

    def close(self, status: str | None = None) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.lines and status is not None:
            print(f"{self.name}: {status} at step {self.step}/{self.total}{self._losses()}  "
                  f"({time.perf_counter() - self.t0:.1f} s)", file=sys.stderr, flush=True)


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stream: not a terminal
        return False


def duration(seconds: float) -> str:
    for unit, size in (("years", 365.25 * 86400), ("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:,.0f} {unit}"
    return f"{seconds:.0f} s"


@dataclass
class Plan:
    """Where a pair (re)starts: the step, the checkpoint it loads (None: the seed's initial state), the
    verified rows it keeps, and a line to say why when that is not simply its newest checkpoint."""

    start: int
    checkpoint: Checkpoint | None
    keep_metrics: list[str]
    keep_quality: list[str]
    note: str = ""


class PairRun:
    """Train (or resume) one pair; ``run()`` returns its status record.

    ``after_checkpoint(step)`` runs once the pair's files are consistent at a checkpoint (the Ray
    executor streams them back then)."""

    def __init__(self, exp: Experiment, label: str, seed: int, images: np.ndarray, run_dir: Path,
                 evaluator=None, quiet: bool = True, after_checkpoint: Callable[[int], None] | None = None,
                 progress_every: float = PROGRESS_EVERY):
        self.exp, self.label, self.seed, self.images = exp, label, seed, images
        self.run_dir, self.evaluator, self.quiet, self.after_checkpoint = run_dir, evaluator, quiet, after_checkpoint
        self.progress_every = progress_every
        self.files = RunFiles.of(run_dir, label, seed)
        self.name = f"{label} seed {seed}"

    def prior(self) -> dict:
        return read_json(self.files.status) if self.files.status.exists() else {}

    def finished_intact(self) -> bool:
        """Done (finished or diverged) with every file verified: nothing to train."""
        prior = self.prior()
        return prior.get("status") in DONE and self.plan(prior) is None

    def run(self) -> dict:
        prior = self.prior()
        plan = self.plan(prior)
        if plan is None:
            return prior  # finished, every row verified: never redone
        if plan.note:
            print(f"! {self.name}: {plan.note}", file=sys.stderr)
        try:
            return self.train(prior, plan)
        except (Exception, KeyboardInterrupt) as e:
            # never left "running": a failed pair says why, and is retried from its checkpoint next time
            failed = isinstance(e, Exception) and not isinstance(e, BenchError)
            status = "failed" if failed else "interrupted"
            atomic_write_json(self.files.status, {**getattr(self, "record", prior), "status": status,
                                                  **({"error": self.error(e)} if failed else {})})
            raise

    def error(self, e: BaseException) -> str:
        """An exception that ended the pair, in one line: where in the user's code it was raised, when it was
        (a user optimizer's update step), else its type and message."""
        spec = self.exp.optimizer(self.label)
        if spec.source and spec.source.get("kind") != "notebook":
            line = error_in(source_of(dict(spec.source)), e)
            if not line.startswith(f"{spec.source['where']}: "):  # a frame in their file: their line
                return line
        return describe(e)

    # ------------------------------------------------------------------ where to start

    def eval_steps(self, upto: int, before: bool = False) -> list[int]:
        """The steps at which quality is scored, up to ``upto`` (``before``: strictly before it)."""
        if not self.exp.eval.enabled:
            return []
        t, every = self.exp.train, self.exp.eval.every or self.exp.train.sample_every
        steps = [s for s in range(0, upto + 1, t.sample_every) if s % every == 0]
        if upto == t.steps and steps[-1] != upto:
            steps.append(upto)
        return [s for s in steps if s < upto] if before else steps

    def check(self, ckpt: Checkpoint) -> None:
        """Refuse a checkpoint of another optimizer, seed, experiment configuration or Keras version:
        never load it into the wrong variables."""
        import keras

        meta = ckpt.meta
        for key, want, what in (("optimizer", self.label, "optimizer {!r}"), ("seed", self.seed, "seed {}"),
                                ("identity", self.exp.identity(), "experiment configuration {} (its identity)"),
                                ("keras", keras.__version__, "Keras {}")):
            if meta.get(key) != want:
                raise BenchError(f"{ckpt.path}: a checkpoint of {what.format(meta.get(key))}, but this pair is "
                                 f"{what.format(want)}; refusing to load it (move it away to recompute this pair)")

    def usable_checkpoints(self, notes: list[str], at_most: int | None = None):
        """The pair's readable checkpoints (of step ``at_most`` or earlier), newest first, each read and
        checked only when asked for; an unreadable one is skipped with a note, one of something else is
        refused."""
        for path in checkpoints(self.files.root):
            if at_most is not None and step_of(path) > at_most:
                continue
            try:
                ckpt = read_checkpoint(path)
            except Unreadable as e:
                notes.append(f"{path.name} is unreadable ({e})")
                continue
            self.check(ckpt)
            yield ckpt

    def plan(self, prior: dict) -> Plan | None:
        """Verify the pair's files; None when it is finished and intact."""
        status = prior.get("status")
        done = status in DONE
        notes: list[str] = []
        newest = None if done else next(self.usable_checkpoints(notes), None)
        # the rows the files must hold: to the end of a done pair, else to its newest usable checkpoint
        upto = int(prior.get("steps_done") or 0) if done else (newest.step if newest else 0)
        if upto == 0:  # nothing trained that a checkpoint holds: start from the seed, keep no row
            return Plan(0, None, [], [], "; ".join(notes) + ("; starting from the seed (iteration 0)" if notes else ""))
        metrics = scan_metrics(self.files.metrics, self.label, self.seed)
        if metrics.problem.endswith("is not bench's header"):
            raise BenchError(f"{metrics.problem}; refusing to overwrite it (move it away to recompute this pair)")
        quality = scan_quality(self.files.quality, self.label, self.seed,
                               self.eval_steps(upto, before=done and status == "diverged"), upto)
        good = min(metrics.good, quality.good, upto)
        intact = good >= upto and (status != "diverged" or _last_status(metrics) == "diverged")
        if done and intact:
            return None
        start_from = newest if newest is not None and newest.step <= good else next(
            self.usable_checkpoints(notes, at_most=good), None)
        if not intact:
            damage = (metrics.problem if metrics.good < upto else quality.problem) or \
                f"rows after iteration {good} are missing"
            notes.append(f"{damage}; recomputing from {start_from.path.name if start_from else 'the seed (iteration 0)'}")
        elif notes and start_from is not None:
            notes[-1] += f"; falling back to {start_from.path.name}"
        start = start_from.step if start_from else 0
        # from the seed, step 0's samples and scores are made again: keep none of the old ones
        return Plan(start, start_from, metrics.upto(start), quality.upto(start) if start else [], "; ".join(notes))

    # ------------------------------------------------------------------ training

    def train(self, prior: dict, plan: Plan) -> dict:
        exp, files, start = self.exp, self.files, plan.start
        meta = plan.checkpoint.meta if plan.checkpoint else {}
        self.trainer = trainer_for(exp, exp.optimizer(self.label), self.images, self.seed,
                                   plan.checkpoint.arrays if plan.checkpoint else None)
        self.elapsed0 = float(meta.get("elapsed", 0.0))
        self.eval_seconds_before = float(meta.get("eval_seconds", 0.0))
        self.eval_seconds = self.eval_seconds_before
        self.log = MetricsLog(files.metrics, self.label, self.seed, plan.keep_metrics)
        self.quality = QualityLog(files.quality, self.label, self.seed, plan.keep_quality) if self.evaluator else None
        self.events = self.open_events(plan, prior) if exp.train.tensorboard else None
        self.z_fixed = sample_latents(exp)
        self.z_bank = eval_latents(exp) if self.evaluator else None
        self.plot_features = exp.model.d_widths[-1] == 2  # the 2-D toy: D's 2-unit layer is worth a plot
        self.real_ref = np.load(self.run_dir / "real.npy") if self.plot_features else None
        self.record = {"optimizer": self.label, "type": exp.optimizer(self.label).name, "seed": self.seed,
                       "status": "running", "steps_total": exp.train.steps, "steps_done": start, "diverged_at": None,
                       "resumed_from": start or None, "started": prior.get("started", now())}
        atomic_write_json(files.status, self.record)
        self.blocks = 0
        self.t_start = time.perf_counter()

        progress = Progress(self.label, self.seed, exp.train.steps, start, self.quiet, self.progress_every)
        ended = None  # the line a log gets when the pair ends (none on an error: that has its own line)
        try:
            if start == 0:
                self.on_sample(0)
            out = run_loop(self.trainer, start, exp.train.steps, self.on_row, self.on_sample, self.on_checkpoint,
                           exp.train.sample_every, exp.train.checkpoint_every, progress,
                           should_stop=lambda: stop.requested() is not None, on_block=self.on_block)
            if self.events is not None:
                self.events.end(out.status)
            ended = out.status
        finally:
            progress.close(ended)
            self.log.close()
            if self.quality is not None:
                self.quality.close()
            if self.events is not None:  # also on an error: what was written reaches the disk, the thread ends
                self.events.close()
        return self.finish(out)

    def open_events(self, plan: Plan, prior: dict) -> PairEvents:
        """The pair's TensorBoard events, rewritten from the rows it keeps (a resume), then appended to."""
        spec = self.exp.optimizer(self.label)
        hparams = hparams_of(self.exp.name, self.run_dir.name, self.label, self.seed,
                             {"type": spec.name, **optimizers.describe(spec)})
        started = prior.get("started")
        return PairEvents(self.files.root, hparams, session=session_name(self.run_dir.name, self.files.root.name),
                          keep_metrics=plan.keep_metrics, keep_quality=plan.keep_quality,
                          samples_upto=plan.start if plan.start else -1,
                          start_time=datetime.fromisoformat(started).timestamp() if started else None)

    def elapsed(self) -> float:
        return self.elapsed0 + time.perf_counter() - self.t_start

    # ------------------------------------------------------------------ the loop's callbacks

    def on_row(self, step: int, values: np.ndarray, seconds: float) -> None:
        ok = bool(np.all(np.isfinite(values[: len(LOSSES)])))
        elapsed = self.elapsed()
        self.log.write(step, values, "ok" if ok else "diverged", seconds, elapsed)
        if self.events is not None:
            self.events.metrics(step, values, float(f"{seconds:.6f}"), float(f"{elapsed:.3f}"))  # the CSV's text

    def on_block(self, n: int, seconds: float) -> None:
        """After the first block that did not compile: how long the whole pair will take, once."""
        self.blocks += 1
        left = self.exp.train.steps - self.record["steps_done"]
        estimate = seconds / n * left
        if self.blocks == 2 and self.quiet and estimate > 60:
            print(f"{self.name}: {1000 * seconds / n:.1f} ms per iteration; {left:,} iterations will take about "
                  f"{duration(estimate)} (estimate; Ctrl-C stops with a checkpoint)", file=sys.stderr)

    def on_sample(self, step: int) -> None:
        exp, trainer = self.exp, self.trainer
        fake = trainer.generate(self.z_fixed)
        png = save_images(self.files.samples, f"step_{step:06d}", fake)
        if self.events is not None and png is not None:
            self.events.image(step, png)
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
            if self.events is not None:
                self.events.quality(step, values)

    def on_checkpoint(self, step: int) -> None:
        import keras

        self.log.sync()  # every row the checkpoint covers is on disk before the checkpoint is
        if self.quality is not None:
            self.quality.sync()
        if self.events is not None:
            self.events.flush()
        meta = {"identity": self.exp.identity(), "optimizer": self.label, "seed": self.seed,
                "keras": keras.__version__, "names": self.trainer.state_names(),
                "elapsed": self.elapsed(), "eval_seconds": self.eval_seconds}
        save_checkpoint(self.files.root, step, meta, self.trainer.get_state())
        self.record["steps_done"] = step
        atomic_write_json(self.files.status, {**self.record, "elapsed_at_checkpoint": self.elapsed(),
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
        if out.status == "interrupted":
            record.pop("finished")
        atomic_write_json(self.files.status, record)
        xla_cache.publish()  # what this process compiled, for the next one (a worker, a resume, the next run)
        if out.status == "diverged":
            print(f"! {self.name} diverged at step {out.diverged_at} (non-finite loss); the other runs go on",
                  file=sys.stderr)
        return record


def _last_status(scan: Scan) -> str:
    return scan.rows[-1][1].rstrip("\n").split(",")[-3] if scan.rows else ""

