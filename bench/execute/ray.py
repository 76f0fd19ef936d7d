"""``--executor ray``: the (optimizer, seed) pairs of a run folder as Ray tasks.

Each pair is one Ray task reserving as many CPUs as it has intra-op threads (a fixed
number, part of the run's identity, so the bits match ``--jobs`` and sequential runs).
The driver loads the data once and puts it in Ray's object store, so cluster nodes need
bench installed but not the data set. Results are *streamed back*, not written to a
shared path: the task trains in a scratch folder on its node and yields the pair's
folder (CSV, samples, checkpoint) at every checkpoint and at the end; the driver
unpacks each into the run folder, so the layout is the same as any other executor's
and an interrupted or failed pair resumes from its last streamed checkpoint.

A task whose worker dies (or that raises) is resubmitted once from that checkpoint,
then reported as failed, exactly like the local executor. Ray is an optional extra:
``pip install 'gan-optimizer-bench[ray]'``.
"""

from __future__ import annotations

import contextlib
import io
import os
import queue
import shutil
import tarfile
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from bench.core.config import Experiment
from bench.core.errors import BenchError, describe, first_line
from bench.core.names import install_hint, run_name
from bench.execute import hooks, stop
from bench.execute.local import Tracker
from bench.execute.pair import PairRun
from bench.model.runtime import available_cores, versions
from bench.model.step import warm_up
from bench.model.xla_cache import QUIET_TF

INSTALL_HINT = f"the ray executor needs Ray: {install_hint('ray')} (or pip install ray)"
VERSION_KEYS = ("bench", "tensorflow", "keras", "numpy")  # the bits depend on these
_evaluators: dict = {}  # per Ray worker process: the scorer of each data set, built once
_warmed: set = set()  # per Ray worker process: the experiments whose steps are traced (bench.model.step.warm_up)


def import_ray():
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no phoning home; this may run offline
    try:
        import ray
    except ImportError:
        raise BenchError(INSTALL_HINT) from None
    return ray


# ------------------------------------------------------------------ pair folders over the wire


def pack_pair(run_dir: Path, name: str) -> bytes:
    """The pair's folder (and the run's real.npy, which the 2-D toy's feature plots need) as a tar."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for rel in (f"runs/{name}", "real.npy"):
            if (run_dir / rel).exists():
                tar.add(run_dir / rel, arcname=rel)
    return buf.getvalue()


def unpack_pair(blob: bytes, run_dir: Path, name: str) -> None:
    """Replace ``runs/<name>`` with the copy in ``blob``: extracted beside it, then swapped in."""
    runs = run_dir / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=runs, prefix=f".{name}.incoming-"))
    try:
        with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
            tar.extractall(tmp, members=[m for m in tar.getmembers() if m.name.startswith(f"runs/{name}")],
                           filter="data")
        target, old = runs / name, runs / f".{name}.old-{os.getpid()}"
        if target.exists():
            target.rename(old)
        (tmp / "runs" / name).rename(target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------ the task (runs on a Ray worker)


def _versions_differ(want: dict) -> str:
    mine = versions()
    bad = [f"{k} {mine.get(k)} (driver {want.get(k)})" for k in VERSION_KEYS if mine.get(k) != want.get(k)]
    return f"worker {os.uname().nodename} has different versions: {', '.join(bad)}" if bad else ""


def pair_task(config: dict, label: str, seed: int, images: np.ndarray, blob: bytes, threads: int,
              driver_versions: dict, data_key: str, task_hooks: list):
    """Train one pair; yields ("checkpoint", step, tar) at each checkpoint, then ("done", step, tar)
    or ("error", None, message). A generator, so that Ray streams each snapshot back as it is made."""
    from bench.core import banner

    banner.hide()  # Ray forwards a worker's stderr to the driver's terminal: TensorFlow's banner stays out of it
    from bench.core.config import experiment_from_dict
    from bench.model.optimizers import sources_sha
    from bench.model.runtime import configure_runtime
    from bench.quality.scorer import make_evaluator

    exp = experiment_from_dict(config, "ray task")  # the user's code travels in it: nothing to install on the node
    runtime = configure_runtime(threads, sources_sha(exp.optimizers))
    if runtime["intra_op_threads"] != threads:
        yield ("error", None, f"worker runs {runtime['intra_op_threads']} threads, the run needs {threads}")
        return
    if problem := _versions_differ(driver_versions):
        yield ("error", None, problem)
        return
    key = (data_key, repr(exp.eval))
    if exp.eval.enabled and key not in _evaluators:
        _evaluators[key] = make_evaluator(exp, images)
    evaluator = _evaluators.get(key)
    if exp.identity() not in _warmed:  # once per Ray worker process: the steps' names, then the XLA cache
        warm_up(exp, images)
        _warmed.add(exp.identity())
    name = run_name(label, seed)
    snapshots: queue.Queue = queue.Queue()

    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        run_dir = Path(tmp)
        with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
            tar.extractall(run_dir, filter="data")
        hooks.before_pair(name, task_hooks)

        def train() -> None:
            pair = PairRun(exp, label, seed, images, run_dir, evaluator,
                           after_checkpoint=lambda step: snapshots.put(("checkpoint", step, pack_pair(run_dir, name))))
            try:
                pair.run()
                snapshots.put(("done", None, pack_pair(run_dir, name)))
            except Exception as e:  # noqa: BLE001 - reported to the driver in one line
                snapshots.put(("error", None, pair.error(e)))

        # training runs in a thread so that this generator can yield each snapshot while it goes on
        worker = threading.Thread(target=train, daemon=True)
        worker.start()
        while True:
            item = snapshots.get()
            yield item
            if item[0] != "checkpoint":
                break
        worker.join()


# ------------------------------------------------------------------ the driver


def _probe(address: str) -> None:
    """Fail in seconds on an address nobody listens on (Ray itself retries for minutes)."""
    import socket

    if address in ("auto", "local") or address.startswith(("ray://", "http")):
        return
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
    except ValueError:
        raise BenchError(f"--address {address!r}: expected HOST:PORT, e.g. 10.0.0.5:6379") from None
    except OSError as e:
        raise BenchError(f"cannot reach the Ray cluster at {address}: {e.strerror or e}") from None


@contextlib.contextmanager
def session(address: str | None) -> Iterator[None]:
    """Ray for the length of a command: join the cluster at ``address`` or start a local one with every
    core, and disconnect (or stop the local one) afterwards. Opened before any run folder is made, so a
    wrong address leaves nothing behind."""
    ray = import_ray()
    if ray.is_initialized():  # already connected (an API caller): leave it as it is
        yield
        return
    opts = {"include_dashboard": False, "logging_level": "ERROR", "log_to_driver": False}
    try:
        if address:
            _probe(address)
            ray.init(address=address, **opts)
        else:
            ray.init(num_cpus=available_cores(), **opts)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as e:
        msg = first_line(e) or type(e).__name__
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        hint = ("; if the cluster uses token authentication, set RAY_AUTH_MODE=token (and RAY_AUTH_TOKEN, or the "
                "token in ~/.ray/auth_token)") if address and not os.environ.get("RAY_AUTH_MODE") else ""
        raise BenchError(f"cannot connect to {where}: {msg}{hint}") from None
    try:
        yield
    finally:
        ray.shutdown()


def _reason(e: Exception) -> str:
    import ray

    if isinstance(e, ray.exceptions.WorkerCrashedError):
        return "Ray worker process died"
    if isinstance(e, ray.exceptions.NodeDiedError):
        return "Ray node died"
    if isinstance(e, ray.exceptions.OutOfMemoryError):
        return "Ray killed the worker: out of memory"
    if isinstance(e, ray.exceptions.RayTaskError) and getattr(e, "cause", None) is not None:
        return describe(e.cause)  # the task's own exception, not Ray's wrapper around it
    return describe(e)


def run_ray(exp: Experiment, run_dir: Path, pairs: list[tuple[str, int]], jobs: int | None,
            on_done: Callable[[str, int, dict], None], quiet: bool, address: str | None,
            images: np.ndarray, data_key: str) -> list[tuple[str, int, str]]:
    """Run ``pairs`` as Ray tasks (at most ``jobs`` at once if given); returns the pairs that failed."""
    ray = import_ray()
    threads = exp.train.threads
    if threads <= 0:
        raise BenchError("the ray executor needs a fixed thread count per run (--threads N); it is part of the bits")
    if not ray.is_initialized():
        with session(address):
            return run_ray(exp, run_dir, pairs, jobs, on_done, quiet, address, images, data_key)
    tracker = Tracker(run_dir, pairs, on_done, quiet)
    live: dict = {}  # streaming generator -> pair
    try:
        env = {"BENCH_THREADS": str(threads), "TF_CPP_MIN_LOG_LEVEL": QUIET_TF}  # one worker pool per thread count
        task = ray.remote(pair_task).options(num_cpus=threads, max_retries=0, runtime_env={"env_vars": env})
        images_ref = ray.put(images)
        config, driver_versions, task_hooks = exp.to_dict(), versions(), list(hooks.BEFORE_PAIR)
        cpus = ray.cluster_resources().get("CPU", 0)
        if cpus < threads:
            raise BenchError(f"the Ray cluster has {cpus:g} CPUs; a run needs {threads} (--threads)")
        tracker.say(f"ray: {len(pairs)} runs as tasks of {threads} CPU(s) on a cluster of {cpus:g} CPUs"
                    + (f", at most {jobs} at once" if jobs else ""))
        while tracker.queue or live:
            if stop.requested() is not None:
                # asked to stop: the tasks are cancelled below; each pair resumes from its last streamed checkpoint
                break
            while tracker.queue and (not jobs or len(live) < jobs):
                label, seed = pair = tracker.queue.pop(0)
                gen = task.remote(config, label, seed, images_ref, pack_pair(run_dir, run_name(label, seed)),
                                  threads, driver_versions, data_key, task_hooks)
                live[gen] = pair
            ready, _ = ray.wait(list(live), num_returns=1, timeout=0.5)
            for gen in ready:
                label, seed = pair = live[gen]
                try:
                    kind, step, payload = ray.get(next(gen))
                except StopIteration:
                    del live[gen]
                    tracker.settle(pair, False, "the task ended without a result")
                    continue
                except ray.exceptions.RayError as e:
                    del live[gen]
                    tracker.settle(pair, False, _reason(e))
                    continue
                if kind == "checkpoint":
                    unpack_pair(payload, run_dir, run_name(label, seed))
                    tracker.say(f"  {label} seed {seed}: checkpoint at iteration {step} streamed back")
                    continue
                del live[gen]
                if kind == "done":
                    unpack_pair(payload, run_dir, run_name(label, seed))
                    tracker.settle(pair, True, "")
                else:  # the task reported an error; version mismatches are not worth a retry
                    tracker.settle(pair, False, payload, retry="different versions" not in payload)
    finally:  # done, Ctrl-C or an error: no task keeps training for nobody
        for gen in live:
            try:
                ray.cancel(gen, force=True)
            except Exception:  # noqa: BLE001, S110 - best effort while stopping
                pass
    return tracker.failed
