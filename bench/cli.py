"""Command line: parse arguments, call one function per subcommand, map errors to exit codes.

Exit codes: 0 success; 1 a check failed (``bench check``) or an internal error;
2 bad input (one-line message, no traceback; ``--debug`` shows it); 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import traceback
from pathlib import Path

from bench.errors import BenchError

EPILOG = """examples:
  bench run --optimizers sgd,rmsprop,adam
  bench run celeba --data ~/data/img_align_celeba.zip --seeds 0,1,2
  bench run smoke --optimizers "sgd:learning_rate=0.01,momentum=0.5,adam" --steps 50 --quiet
  bench run --resume results/faces/20261123-141500
  bench list
"""


def _seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(s) for s in text.split(",") if s.strip() != "")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 0,1,2, got {text!r}") from None
    if not seeds:
        raise argparse.ArgumentTypeError("give at least one seed")
    return seeds


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line and exit 2 (argparse prints the whole usage)."""

    def error(self, message: str):  # noqa: D401
        raise BenchError(f"{self.prog}: {message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="bench", description="Compare optimizers on GAN training: paired, reproducible runs.",
                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--debug", action="store_true", help="show tracebacks and TensorFlow's log")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    r = sub.add_parser("run", help="train the GAN once per optimizer and seed, log losses to CSV",
                       description="Train the same GAN once per (optimizer, seed), everything else fixed, and write "
                                   "results/<experiment>/<run-id>/. Options override the experiment file; the effective "
                                   "configuration is saved with the run.")
    _training_options(r, "RUN_DIR", "continue the unfinished runs of RUN_DIR from their checkpoints")
    r.set_defaults(func=cmd_run)

    sw = sub.add_parser("sweep", help="tune each optimizer with the same budget, then compare tuned with default",
                        description="Run the experiment's [sweep]: every optimizer gets the same number of settings from "
                                    "its own search space (search phase, on the search seeds), the declared criterion "
                                    "picks each one's best, and the best and the default settings are rerun side by "
                                    "side on the final seeds (final phase; --seeds sets them). Writes "
                                    "results/<experiment>/sweep-<id>/ and a report with each optimizer's sensitivity "
                                    "and the tuned-versus-default comparison. Resumable like bench run.",
                        epilog="example [sweep] table: see experiments/smoke.toml; "
                               "override with --set sweep.budget=8 --set sweep.criterion=fd_pca")
    _training_options(sw, "SWEEP_DIR", "continue an unfinished sweep")
    sw.set_defaults(func=cmd_sweep)

    rp = sub.add_parser("report", help="write the HTML report of one or more run folders",
                        description="Write reports/<experiment>/<run-id>/index.html for a run folder (or for every run "
                                    "folder below RESULTS_DIR) and refresh reports/index.html. Works on runs that are "
                                    "still going or were cut short.")
    rp.add_argument("results_dir", type=Path, metavar="RESULTS_DIR", help="a run folder, or a folder holding run folders")
    rp.add_argument("--out", type=Path, default=Path("reports"), metavar="DIR", help="reports folder (default: reports/)")
    rp.set_defaults(func=cmd_report)

    b = sub.add_parser("baseline", help="condense a finished run into a small baseline file for `bench check`",
                       description="Write per-optimizer trend bands (quarter-window means, final level, final slope, "
                                   "sample diversity, divergence count) across the run's seeds, with the experiment "
                                   "identity and versions it came from. Commit the file; use several seeds.")
    b.add_argument("results_dir", type=Path, metavar="RUN_DIR",
                   help="a finished run folder, or a folder of runs (the newest is used)")
    b.add_argument("-o", "--output", type=Path, required=True, metavar="FILE", help="baseline JSON to write")
    b.set_defaults(func=cmd_baseline)

    c = sub.add_parser("check", help="compare a run's loss trends to a baseline; exit 1 on regression",
                       description="Exit 0 when every trend metric lies in the baseline band, 1 when one does not "
                                   "(regression), 2 when the input is unusable (bad baseline, unfinished run, "
                                   "different step count; with --strict-identity, a changed configuration).")
    c.add_argument("results_dir", type=Path, metavar="RUN_DIR",
                   help="the run folder to check, or a folder of runs (the newest is used)")
    c.add_argument("--baseline", type=Path, required=True, metavar="FILE", help="baseline JSON from `bench baseline`")
    c.add_argument("--tolerance", action="append", default=[], metavar="METRIC:AMOUNT",
                   help="override a band's half-width: g_loss.final:15%% (relative), '*.slope:0.5' or "
                        "'adam.d_loss_real.w4:0.1' (absolute); repeatable, the last match wins")
    c.add_argument("--strict-identity", action="store_true",
                   help="exit 2 when the experiment configuration differs from the baseline's (default: warn, "
                        "list the differences and compare)")
    c.add_argument("--json", type=Path, metavar="FILE", help="also write the result as JSON")
    c.add_argument("--junit", type=Path, metavar="FILE", help="also write JUnit XML (one test case per metric)")
    c.add_argument("--failures-only", action="store_true", help="print only the rows that failed")
    c.set_defaults(func=cmd_check)

    ls = sub.add_parser("list", help="show the experiments, datasets and optimizers bench knows")
    ls.set_defaults(func=cmd_list)
    return p


def _training_options(r: argparse.ArgumentParser, resume_metavar: str, resume_help: str) -> None:
    """The options `bench run` and `bench sweep` share: what to train, where, and on which executor."""
    r.add_argument("experiment", nargs="?", help="experiment name (see `bench list`) or path to a TOML file; default: faces")
    r.add_argument("--optimizers", metavar="SPEC",
                   help='comma-separated optimizers, each optionally with hyper-parameters: '
                        '"sgd:learning_rate=0.01,momentum=0.5,adam"; label=NAME names a run; '
                        'generator.KEY / discriminator.KEY set one network. Default: the experiment\'s list')
    r.add_argument("--seeds", type=_seeds, metavar="0,1,2", help="seeds; each fixes initial weights, batches and latents")
    r.add_argument("--steps", type=_positive_int, metavar="N", help="training iterations per run")
    r.add_argument("--batch-size", type=_positive_int, metavar="N", help="batch size (D sees N/2 real + N/2 fake)")
    r.add_argument("--data", metavar="PATH", help="dataset path (CelebA folder or zip, image folder, MNIST .npz)")
    r.add_argument("--dataset", metavar="NAME", help="dataset registry name (faces, celeba, folder, mnist)")
    r.add_argument("--limit", type=_positive_int, metavar="N", help="use the first N images in sorted order")
    r.add_argument("--threads", type=_positive_int, metavar="N",
                   help="intra-op threads per run (default: all cores, or cores / --jobs; 1 with --executor ray)")
    r.add_argument("--jobs", "-j", type=_positive_int, default=None, metavar="N",
                   help="run N (optimizer, seed) pairs at once in separate processes, cores split between them "
                        "(default 1: one at a time with every core). Same numbers as --jobs 1 --threads cores/N. "
                        "With --executor ray: at most N tasks at once (default: as many as the cluster takes)")
    r.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local processes (default), or Ray tasks on a cluster (needs: pip install 'bench[ray]'); "
                        "same numbers at the same --threads")
    r.add_argument("--address", metavar="ADDR",
                   help="Ray cluster to use, e.g. 10.0.0.5:6379 or auto (default: start a local Ray)")
    xla = r.add_mutually_exclusive_group()
    xla.add_argument("--xla", dest="xla", action="store_true", default=None, help="compile the step with XLA (default)")
    xla.add_argument("--no-xla", dest="xla", action="store_false", help="plain tf.function graph (different bits than XLA)")
    r.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override any experiment value, e.g. --set model.latent_dim=64 (repeatable)")
    r.add_argument("--no-eval", action="store_true", help="skip the sample-quality metrics (quality.csv)")
    r.add_argument("--fid-weights", metavar="FILE",
                   help="local InceptionV3 weights (.h5/.keras) to add FID to the quality metrics; never downloaded")
    r.add_argument("--out", type=Path, default=Path("results"), metavar="DIR", help="results folder (default: results/)")
    r.add_argument("--resume", type=Path, metavar=resume_metavar, help=resume_help)
    r.add_argument("--fresh", action="store_true", help="always start anew (default: an interrupted one "
                                                        "with the identical configuration is resumed)")
    r.add_argument("--quiet", "-q", action="store_true", help="no progress bars (for CI)")
    r.add_argument("--reports", type=Path, default=Path("reports"), metavar="DIR",
                   help="where the HTML report goes (default: reports/)")
    r.add_argument("--no-report", action="store_true", help="do not write the HTML report afterwards")


# ------------------------------------------------------------------ commands


def _effective_experiment(args):
    from bench import config, optimizers

    path = config.resolve_experiment_path(args.experiment)
    raw = config.load_raw(path)
    data = raw.setdefault("data", {})
    train = raw.setdefault("train", {})
    if not isinstance(data, dict) or not isinstance(train, dict):
        raise BenchError(f"{path}: [data] and [train] must be tables")
    for key, value in (("path", args.data), ("source", args.dataset), ("limit", args.limit)):
        if value is not None:
            data[key] = str(Path(value).expanduser().resolve()) if key == "path" else value
    for key, value in (("steps", args.steps), ("batch_size", args.batch_size), ("threads", args.threads),
                       ("jit_compile", args.xla)):
        if value is not None:
            train[key] = value
    if args.seeds is not None:
        raw["seeds"] = list(args.seeds)
    ev = raw.setdefault("eval", {})
    if not isinstance(ev, dict):
        raise BenchError(f"{path}: [eval] must be a table")
    if args.no_eval:
        ev["enabled"] = False
    if args.fid_weights is not None:
        ev["fid_weights"] = str(Path(args.fid_weights).expanduser().resolve())
    for assignment in args.set:
        config.apply_override(raw, assignment)
    if args.executor == "ray":
        # a fixed count: Ray reserves that many CPUs per task, on nodes whose core counts may differ
        train["threads"] = args.threads or train.get("threads", 0) or 1
    elif (args.jobs or 1) > 1:
        from bench.train import available_cores

        cores = available_cores()
        threads = args.threads or train.get("threads", 0) or max(1, cores // args.jobs)
        if threads * args.jobs > cores:
            raise BenchError(f"--jobs {args.jobs} x {threads} threads each would oversubscribe the {cores} cores; "
                             f"use --threads {max(1, cores // args.jobs)} or fewer jobs")
        train["threads"] = threads  # part of the identity: bits depend on the thread count
    exp = config.experiment_from_dict(raw, str(path))
    if args.optimizers is not None:
        exp = type(exp)(**{**exp.__dict__, "optimizers": optimizers.merge_inline(exp.optimizers, args.optimizers)})
    return exp


def _find_resumable(out: Path, exp) -> Path | None:
    """The newest run folder of ``exp`` with the identical configuration that did not finish."""
    from bench.results import MANIFEST, newest_unfinished

    want = exp.to_dict()
    return newest_unfinished(out / exp.name, "*", MANIFEST, lambda m: m.get("config") == want and m.get("status") in
                             ("running", "interrupted", "finished-with-failures"))


def _refuse_changes_on_resume(args, what: str) -> None:
    """--resume takes the configuration from the folder; a setting given beside it would be ignored."""
    changed = [f"--{k.replace('_', '-')}" for k in ("optimizers", "seeds", "steps", "batch_size", "data", "dataset",
                                                    "limit", "threads", "xla", "fid_weights") if getattr(args, k) is not None]
    changed += ["--no-eval"] if args.no_eval else []
    if changed or args.set:
        raise BenchError(f"--resume continues a {what} exactly as it was configured; drop {', '.join(changed or ['--set'])}")


def _same_experiment(args, exp, folder: Path, what: str) -> None:
    from bench import config

    if args.experiment is not None:
        asked = config.experiment_from_dict(config.load_raw(config.resolve_experiment_path(args.experiment)), args.experiment)
        if asked.name != exp.name:
            raise BenchError(f"{folder} is a {what} of experiment '{exp.name}', not '{asked.name}'")


def _run_options(args):
    from bench import runner

    if args.address and args.executor != "ray":
        raise BenchError("--address is for --executor ray")
    jobs = args.jobs if args.jobs is not None else (0 if args.executor == "ray" else 1)
    return runner.RunOptions(quiet=args.quiet, command=shlex.join(["bench", *args.argv]), jobs=jobs,
                             executor=args.executor, address=args.address)


def _executor_session(opts):
    """Connect to Ray (or start it) before any folder is made; nothing to do for local processes."""
    import contextlib

    if opts.executor != "ray":
        return contextlib.nullcontext()
    from bench.ray_executor import session

    return session(opts.address)


def cmd_run(args) -> int:
    from bench import config, results, runner

    opts = _run_options(args)
    if args.resume is not None:
        run_dir = args.resume
        _refuse_changes_on_resume(args, "run")
        manifest = results.read_json(run_dir / results.MANIFEST)
        if "config" not in manifest:
            raise BenchError(f"{run_dir}: manifest has no configuration; not a bench run folder")
        exp = config.experiment_from_dict(manifest["config"], f"{run_dir}/manifest.json")
        _same_experiment(args, exp, run_dir, "run")
        results.ensure_writable(run_dir)
        prepared = runner.prepare(exp)
    else:
        exp = _effective_experiment(args)
        results.ensure_writable(args.out)
        run_dir = None if args.fresh else _find_resumable(args.out, exp)
        if run_dir is not None:
            manifest = results.read_json(run_dir / results.MANIFEST)
            print(f"resuming the interrupted run with the same configuration: {run_dir} (--fresh starts anew)",
                  file=sys.stderr)
        else:
            manifest = None
        prepared = runner.prepare(exp)  # every check that can fail runs before a folder is made
    with _executor_session(opts):
        if run_dir is None:
            run_dir = results.new_run_dir(args.out, exp.name)
        try:
            with results.run_lock(run_dir):
                final = runner.execute(exp, run_dir, opts, prepared, manifest)
        finally:  # an interrupted run still gets a report of what exists
            if not args.no_report and any(run_dir.glob("runs/*/metrics.csv")):
                _report_quietly(run_dir, args.reports)
    _print_summary(final, run_dir)
    failed = [f"{name} ({rec.get('error')})" for name, rec in final["runs"].items() if rec["status"] == "failed"]
    if failed:
        print(f"bench: error: {len(failed)} run(s) failed: {'; '.join(failed)}; "
              f"retry them with: bench run --resume {run_dir}", file=sys.stderr)
        return 1
    return 0


def cmd_sweep(args) -> int:
    from bench import config, results, runner
    from bench import sweep as SW

    opts = _run_options(args)
    if args.resume is not None:
        sweep_dir = args.resume
        _refuse_changes_on_resume(args, "sweep")
        record = results.read_json(sweep_dir / SW.SWEEP_FILE)
        if "config" not in record or "sweep_table" not in record:
            raise BenchError(f"{sweep_dir}/{SW.SWEEP_FILE}: not a bench sweep record")
        exp = config.experiment_from_dict({**record["config"], "sweep": record["sweep_table"]}, f"{sweep_dir}/sweep.json")
        _same_experiment(args, exp, sweep_dir, "sweep")
        sw = SW.parse_sweep(exp, "sweep", selected=True)
        results.ensure_writable(sweep_dir)
    else:
        exp = _effective_experiment(args)
        sw = SW.parse_sweep(exp, f"{exp.name}: sweep", selected=True)
        results.ensure_writable(args.out)
        sweep_dir = None if args.fresh else SW.find_resumable(args.out, exp, sw)
        record = None
        if sweep_dir is not None:
            record = results.read_json(sweep_dir / SW.SWEEP_FILE)
            print(f"resuming the unfinished sweep with the same configuration: {sweep_dir} (--fresh starts anew)",
                  file=sys.stderr)
    prepared = runner.prepare(exp)
    # the table as swept: spaces of optimizers left out with --optimizers would not validate on --resume
    table = {**exp.sweep, "space": {k: v for k, v in exp.sweep["space"].items() if k in sw.space}}
    record = {**(record or {}), "sweep_table": table}
    with _executor_session(opts):  # one Ray session for both phases: workers keep TensorFlow loaded
        if sweep_dir is None:
            sweep_dir = results.new_run_dir(args.out, exp.name, prefix="sweep-")
        try:
            with results.run_lock(sweep_dir):
                final = SW.run_sweep(exp, sw, sweep_dir, opts, prepared, record)
        finally:
            if not args.no_report:
                _sweep_report_quietly(sweep_dir, args.reports)
    print(SW.summary_text(final))
    print(f"\nsweep: {sweep_dir}")
    return 0


def _sweep_report_quietly(sweep_dir: Path, reports: Path) -> None:
    from bench.report.sweep import build_sweep_report

    try:
        path = build_sweep_report(sweep_dir, reports)
        if path is not None:
            print(f"report: {path}", file=sys.stderr)
    except Exception as e:  # noqa: BLE001 - the results are safe on disk; only the report failed
        print(f"bench: warning: no sweep report ({type(e).__name__}: {e}); the results are intact in {sweep_dir}",
              file=sys.stderr)


def _report_quietly(run_dir: Path, reports: Path) -> None:
    from bench.report import build_report

    try:
        path = build_report(run_dir, reports)
        print(f"report: {path}", file=sys.stderr)
    except Exception as e:  # noqa: BLE001 - the results are safe on disk; only the report failed
        print(f"bench: warning: no report ({type(e).__name__}: {e}); the results are intact in {run_dir}", file=sys.stderr)


def _run_dirs(folder: Path) -> list[Path]:
    if (folder / "manifest.json").exists():
        return [folder]
    if not folder.is_dir():
        raise BenchError(f"{folder}: not found")
    found = sorted({p.parent for pattern in ("*/manifest.json", "*/*/manifest.json") for p in folder.glob(pattern)})
    if not found:
        raise BenchError(f"{folder}: no run folders (manifest.json) found")
    return found


def cmd_report(args) -> int:
    from bench.report import build_report
    from bench.report.sweep import build_sweep_report
    from bench.sweep import SWEEP_FILE

    folder = args.results_dir
    sweeps = sorted({p.parent for pattern in (SWEEP_FILE, f"*/{SWEEP_FILE}", f"*/*/{SWEEP_FILE}")
                     for p in folder.glob(pattern)})
    runs = []
    if not (folder / SWEEP_FILE).exists():
        try:
            runs = [d for d in _run_dirs(folder) if d.parent not in sweeps]
        except BenchError:
            if not sweeps:
                raise
    for run_dir in runs:
        print(build_report(run_dir, args.out))
    for sweep_dir in sweeps:  # its page, and the reports of its two phases
        print(build_sweep_report(sweep_dir, args.out))
    return 0


def _print_summary(manifest: dict, run_dir: Path) -> None:
    import pandas as pd

    from bench import summary

    data = summary.load_run(run_dir)
    rows = []
    for runs in summary.summarize(data).values():
        for r in runs:
            rows.append({"optimizer": r.optimizer, "seed": r.seed,
                         "status": r.status + (f" at {r.diverged_at}" if r.diverged_at else ""),
                         "D-real": r.final["d_loss_real"], "D-fake": r.final["d_loss_fake"], "G": r.final["g_loss"],
                         "ms/step": r.ms_per_step})
    table = pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3f}")
    print(f"\n{manifest['experiment']}: data {manifest['data']['source']}\n"
          f"mean losses over the last {int(summary.FINAL_FRACTION * 100)}% of iterations (before any divergence):\n"
          f"{table}\n\nresults: {run_dir}")


def cmd_baseline(args) -> int:
    from bench import trends

    b = trends.write_baseline(_latest_run(args.results_dir), args.output)
    n = sum(len(v) for v in b["metrics"].values())
    print(f"baseline: {args.output} ({len(b['metrics'])} optimizers x {len(b['seeds'])} seeds, {n} trend metrics, "
          f"experiment {b['experiment']} identity {b['identity']})")
    if len(b["seeds"]) < 3:
        print("note: fewer than 3 seeds: the bands rest mostly on the tolerance floors", file=sys.stderr)
    return 0


def _latest_run(folder: Path) -> Path:
    """A run folder as given, or the newest run folder below ``folder``."""
    runs = _run_dirs(folder)
    return max(runs, key=lambda p: (p / "manifest.json").stat().st_mtime) if len(runs) > 1 else runs[0]


def cmd_check(args) -> int:
    from bench import trends

    overrides = [trends.Override.parse(t) for t in args.tolerance]
    baseline = trends.load_baseline(args.baseline)
    run_dir = _latest_run(args.results_dir)
    result = trends.check(run_dir, baseline, overrides, args.strict_identity)
    for note in result.notes:
        print(note)
    print(f"bench check {run_dir} against {args.baseline}")
    print(trends.table(result, only_failures=args.failures_only))
    if args.json:
        trends.write_json(result, args.json)
    if args.junit:
        trends.write_junit(result, args.junit)
    failed = result.failed
    if failed:
        moved = ", ".join(f"{r.optimizer} {r.metric} {r.value:.4g} (band {r.low:.4g}..{r.high:.4g})" for r in failed[:5])
        print(f"FAILED: {len(failed)} of {len(result.rows)} trend metrics left their baseline band: {moved}"
              + (" ..." if len(failed) > 5 else ""))
    else:
        print(f"passed: all {len(result.rows)} trend metrics within their baseline bands")
    return result.exit_code


def cmd_list(args) -> int:
    from bench import config, data, optimizers

    print("experiments (bench run NAME):")
    for name in config.experiment_names():
        raw = config.load_raw(config.EXPERIMENTS_DIR / f"{name}.toml")
        tunable = "  (has a [sweep]: bench sweep " + name + ")" if raw.get("sweep") else ""
        print(f"  {name:<12} {raw.get('description', '')}{tunable}")
    print("\ndatasets ([data] source = NAME, or --dataset NAME):")
    for name, (_, desc) in data.DATASETS.items():
        print(f"  {name:<12} {desc}")
    print("\noptimizers (--optimizers NAME[:key=value,...]); hyper-parameters and Keras defaults:")
    for name in optimizers.registry():
        hp = optimizers.hyperparameters(name)
        shown = ", ".join(f"{k}={v}" for k, v in hp.items() if k not in optimizers.COMMON_HYPERPARAMETERS)
        print(f"  {name:<12} {shown}")
    print(f"  (all also take: {', '.join(sorted(optimizers.COMMON_HYPERPARAMETERS))})")
    return 0


# ------------------------------------------------------------------ entry point


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    if not debug:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ INFO/WARNING lines
        os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        args.argv = list(argv)  # recorded verbatim in the manifest, to reproduce the run
        if args.command is None:
            parser.print_help()
            return 2
        return args.func(args)
    except BenchError as e:
        if debug:
            traceback.print_exc()
        print(f"bench: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug, not bad input: still one line unless --debug
        if debug:
            traceback.print_exc()
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        print(f"bench: internal error: {type(e).__name__}: {msg} (rerun with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
