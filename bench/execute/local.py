"""Run the (optimizer, seed) pairs of one run folder one at a time, or in parallel worker processes.

Every pair is independent (paired design: all randomness comes from the seed), so any
executor gives the same numbers as long as each pair runs with the same thread count;
the thread count is part of the effective configuration, and ``--jobs N`` sets it to
cores // N so that N workers never oversubscribe the cores.

N spawned worker processes (TensorFlow is not fork-safe) import TensorFlow and load the
data once, then train the pairs the parent hands them one at a time into the shared run
folder; the pair's outcome is read back from its own files, and the parent alone writes
the manifest. A worker that dies is replaced and its pair retried once from its last
checkpoint, then reported as failed: never silently lost, and no other pair goes with it.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import wait
from pathlib import Path

import numpy as np

from bench.core import banner, process
from bench.core.config import Experiment
from bench.core.errors import BenchError
from bench.core.names import run_name
from bench.execute import hooks, stop
from bench.execute.pair import PROGRESS_EVERY, PairRun
from bench.model.step import warm_up
from bench.model.xla_cache import QUIET_TF
from bench.store.files import read_json
from bench.store.layout import RunFiles

RETRIES = 1


def run_sequential(exp: Experiment, run_dir: Path, pairs: list[tuple[str, int]], images: np.ndarray, evaluator,
                   on_done: Callable[[str, int, dict], None], quiet: bool,
                   progress_every: float = PROGRESS_EVERY) -> list[tuple[str, int, str]]:
    """Every pair in this process, one after the other, with every core; nothing fails "for good" here:
    an exception stops the run (the caller marks it)."""
    if pairs:
        warm_up(exp, images)
    failed = []
    for label, seed in pairs:
        if stop.requested() is not None:
            break  # asked to stop: the pairs not started stay unrecorded, and the run says how to resume
        pair = PairRun(exp, label, seed, images, run_dir, evaluator, quiet, progress_every=progress_every)
        try:
            on_done(label, seed, pair.run())
        except BenchError:
            raise  # bad input (a checkpoint of another run, a full disk): the command's problem
        except Exception as e:  # noqa: BLE001 - this pair's failure (a user's update step, say): recorded, the others go on
            reason = pair.error(e)
            print(f"! {label} seed {seed} failed: {reason}; the other runs go on", file=sys.stderr)
            failed.append((label, seed, reason))
    return failed


def _worker(config: dict, run_dir: str, conn, worker_hooks: list) -> None:
    """A long-lived worker: imports TensorFlow and loads the data once, then trains the pairs
    the parent sends, one at a time, answering ("done" | "error", label, seed, message)."""
    ending = process.SkipTeardown()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", QUIET_TF)
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") >= "2":  # quiet, unless the parent runs with --debug
        banner.hide()
    from bench import data
    from bench.core.config import experiment_from_dict
    from bench.model.optimizers import sources_sha
    from bench.model.runtime import configure_runtime
    from bench.quality.scorer import make_evaluator

    exp = experiment_from_dict(config, "worker")
    configure_runtime(exp.train.threads, sources_sha(exp.optimizers))
    images = data.load(exp.data).images
    evaluator = make_evaluator(exp, images)
    warm_up(exp, images)
    # SIGINT (a terminal's Ctrl-C reaches the whole group) or SIGTERM (forwarded by the parent): finish
    # the block, checkpoint, report the pair as interrupted; the parent decides when to stop at once
    with stop.graceful(hard_on_second=False, quiet=True):
        while (task := conn.recv()) is not None:
            label, seed = task
            hooks.before_pair(run_name(label, seed), worker_hooks)
            pair = PairRun(exp, label, seed, images, Path(run_dir), evaluator)
            try:
                pair.run()
                conn.send(("done", label, seed, ""))
            except Exception as e:  # noqa: BLE001 - reported to the parent in one line; the worker goes on
                conn.send(("error", label, seed, pair.error(e)))
    ending.code = 0  # told to stop; the parent waits for this process: no teardown (bench.core.process)


class _Slot:
    """One worker process and the pair it is training (None when idle)."""

    def __init__(self, ctx, config: dict, run_dir: Path):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(config, str(run_dir), child, list(hooks.BEFORE_PAIR)),
                                daemon=True)
        self.proc.start()
        child.close()
        self.pair: tuple[str, int] | None = None

    def give(self, pair: tuple[str, int] | None) -> None:
        self.pair = pair
        self.conn.send(pair)

    def stop(self) -> None:
        if self.proc.is_alive():
            self.proc.terminate()
        self.proc.join()


class Tracker:
    """What every executor shares: the queue, attempts per pair, retry-or-report, progress lines."""

    def __init__(self, run_dir: Path, pairs: list[tuple[str, int]], on_done: Callable[[str, int, dict], None],
                 quiet: bool):
        self.run_dir, self.on_done = run_dir, on_done
        self.queue = list(pairs)
        self.attempts = dict.fromkeys(pairs, 0)
        self.failed: list[tuple[str, int, str]] = []
        self.total, self.done, self.t0 = len(pairs), 0, time.perf_counter()
        self.quiet = quiet

    def say(self, *args) -> None:
        if not self.quiet:
            print(*args, file=sys.stderr)

    def settle(self, pair: tuple[str, int], ok: bool, reason: str, retry: bool = True) -> None:
        label, seed = pair
        self.attempts[pair] += 1
        if ok:
            record = read_json(RunFiles.of(self.run_dir, label, seed).status)
            self.done += 1
            self.on_done(label, seed, record)
            self.say(f"[{self.done}/{self.total}] {label} seed {seed}: {record['status']} "
                     f"({record.get('wall_seconds', 0):.1f} s; {time.perf_counter() - self.t0:.0f} s elapsed)")
        elif retry and self.attempts[pair] <= RETRIES:
            self.say(f"! {label} seed {seed}: {reason}; retrying from its last checkpoint")
            self.queue.append(pair)
        else:
            self.say(f"! {label} seed {seed}: {reason}; giving up after {self.attempts[pair]} attempt(s)")
            self.failed.append((label, seed, reason))


def run_parallel(exp: Experiment, run_dir: Path, pairs: list[tuple[str, int]], jobs: int,
                 on_done: Callable[[str, int, dict], None], quiet: bool = False) -> list[tuple[str, int, str]]:
    """Run ``pairs`` on ``jobs`` worker processes; ``on_done`` gets each record as its pair finishes.

    Returns the pairs that failed for good, with the reason.
    """
    config = exp.to_dict()
    ctx = mp.get_context("spawn")
    tracker = Tracker(run_dir, pairs, on_done, quiet)
    queue, settle = tracker.queue, tracker.settle

    slots = [_Slot(ctx, config, run_dir) for _ in range(min(jobs, len(pairs)))]
    forwarded = False
    try:
        for slot in slots:
            slot.give(queue.pop(0))
        while any(s.pair for s in slots):
            busy = [s for s in slots if s.pair]
            if stop.requested() is not None:  # asked to stop: no new pairs; busy workers checkpoint and stop
                queue.clear()
                if not forwarded:  # SIGTERM reaches only this process (SLURM, `timeout`, Kubernetes)
                    for s in busy:
                        with contextlib.suppress(OSError):
                            os.kill(s.proc.pid, signal.SIGTERM)
                    forwarded = True
            ready = set(wait([s.conn for s in busy] + [s.proc.sentinel for s in busy], timeout=0.5))
            for i, slot in enumerate(slots):
                if slot.pair is None:
                    continue
                message = None
                if slot.conn in ready:
                    try:
                        message = slot.conn.recv()
                    except (EOFError, OSError):  # the worker's end closed: it died
                        message = None
                if message is not None:
                    status, _, _, reason = message
                    pair = slot.pair
                    slot.pair = None
                    settle(pair, status == "done", reason)
                elif slot.conn in ready or slot.proc.sentinel in ready:  # died mid-pair: replace, retry
                    slot.proc.join()
                    code = slot.proc.exitcode
                    pair, slot.pair = slot.pair, None  # settled below: a dead slot left unreplaced holds no pair
                    slot.stop()
                    settle(pair, False, f"worker process died (exit code {code})" if code and code > 0
                           else f"worker process killed by signal {-(code or 0)}")
                    if stop.requested() is None and queue:  # a new worker only if there is a pair for it
                        slots[i] = slot = _Slot(ctx, config, run_dir)
                if slot.pair is None and queue and slot.proc.is_alive() and stop.requested() is None:
                    slot.give(queue.pop(0))
    finally:  # done, Ctrl-C or an error in the parent: no orphan workers keep writing
        for slot in slots:
            if slot.proc.is_alive() and slot.pair is None:
                try:
                    slot.conn.send(None)
                except OSError:
                    pass
            slot.stop() if slot.pair is not None else slot.proc.join(timeout=30)
    return tracker.failed
