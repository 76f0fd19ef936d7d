"""One function per subcommand: turn the parsed arguments into one call, print what it returns."""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import replace
from pathlib import Path

from bench.core.errors import BenchError, describe


def request(args, experiment: str | None):
    """The parsed `bench run` / `bench sweep` options as the orchestrator's request for one experiment
    (None: the default one, or the --resume folder's)."""
    from bench.orchestrate.request import Request

    return Request(
        experiment=experiment, optimizers=args.optimizers, seeds=args.seeds, steps=args.steps,
        batch_size=args.batch_size, data=args.data, dataset=args.dataset, limit=args.limit, threads=args.threads,
        xla=args.xla, sets=tuple(args.set), no_eval=args.no_eval, no_tensorboard=args.no_tensorboard,
        fid_weights=args.fid_weights, out=args.out,
        reports=None if args.no_report else args.reports, resume=args.resume, fresh=args.fresh, quiet=args.quiet,
        progress_every=args.progress_every,
        jobs=args.jobs, executor=args.executor, address=args.address, command=shlex.join(["bench", *args.argv]))


def _quietly(build, folder: Path, reports: Path, what: str) -> None:
    """A report at the end of a command; its failure is a warning: the results are safe on disk."""
    try:
        print(f"report: {build(folder, reports)}", file=sys.stderr)
    except Exception as e:  # noqa: BLE001 - only the report failed, the run did not
        print(f"bench: warning: no {what} report ({describe(e)}); the results are intact in {folder}", file=sys.stderr)


def cmd_run(args) -> int:
    from bench.analysis.summary import console_summary
    from bench.orchestrate.commands import run_many
    from bench.report.run import build_report

    experiments = _once(args.experiment) or [None]
    if len(experiments) > 1 and args.resume is not None:
        raise BenchError("--resume continues one run folder; give no experiment names beside it")
    reqs = [request(args, e) for e in experiments]
    live = None
    if args.mlflow is not None:  # checked before anything is written
        from bench.export.mlflow import Live, require_mlflow, tracking_uri

        tracking_uri(args.mlflow, args.out)
        require_mlflow()
        live = Live(args.mlflow, reqs[0].reports)
        reqs = [replace(r, on_pair=live.pair_done) for r in reqs]

    def report(folder: Path) -> None:  # also for an interrupted run: a report of what exists
        if reqs[0].reports is not None and any(folder.glob("runs/*/metrics.csv")):
            _quietly(build_report, folder, reqs[0].reports, "run")
        if live is not None and any(folder.glob("runs/*/metrics.csv")):
            live.run_done(folder)  # the parent run, with the report; a failure was said once

    code = 0
    for run_dir, manifest in run_many(reqs, after=report):
        print(console_summary(run_dir))
        _print_verdict(run_dir)
        failed = [f"{name} ({rec.get('error')})" for name, rec in manifest["runs"].items() if rec["status"] == "failed"]
        if failed:
            print(f"bench: error: {len(failed)} run(s) failed: {'; '.join(failed)}; "
                  f"retry them with: bench run --resume {run_dir}", file=sys.stderr)
            code = 1
    return code


def _once(names: list[str]) -> list[str]:
    """The experiments named, each once: ``bench run smoke smoke`` would train the same thing twice."""
    from bench.core.config import resolve_experiment_path

    out, seen = [], {}
    for name in names:
        key = resolve_experiment_path(name).resolve()
        if key in seen:
            print(f"bench: note: {name} is {seen[key]} again: run once", file=sys.stderr)
            continue
        seen[key] = name
        out.append(name)
    return out


def _print_verdict(run_dir: Path) -> None:
    """The primary metric's verdict under the loss table (the report has every comparison)."""
    from bench.analysis.verdict import config_of, verdict
    from bench.store.load import load_run

    data = load_run(run_dir)
    v = verdict(data, config_of(data.manifest))
    print(f"\nverdict ({len(v.seeds)} seeds, primary {v.primary or 'none'}; bench compare {run_dir} for every metric):")
    print("\n".join(f"  {s}" for s in v.sentences))


def cmd_compare(args) -> int:
    from bench.analysis.compare import compare, text
    from bench.store.files import write_output_json

    result = compare(args.run_dirs, args.primary, args.reference, args.alpha)
    print(text(result))
    if args.json:
        write_output_json(args.json, {k: v for k, v in result.items() if k != "objects"})
    return 0


def cmd_sweep(args) -> int:
    from bench.orchestrate.commands import sweep
    from bench.orchestrate.sweep import summary_text
    from bench.report.sweep import build_sweep_report

    req = request(args, args.experiment)
    after = None if req.reports is None else (lambda folder: _quietly(build_sweep_report, folder, req.reports, "sweep"))
    sweep_dir, record = sweep(req, after=after)
    print(summary_text(record))
    print(f"\nsweep: {sweep_dir}")
    return 0


def cmd_report(args) -> int:
    from bench.report.build import build_reports

    for page in build_reports(args.results_dir, args.out):
        print(page)
    return 0


def cmd_baseline(args) -> int:
    from bench.analysis import trends
    from bench.store.files import write_output_json
    from bench.store.layout import latest_run

    b = trends.make_baseline(latest_run(args.results_dir))
    write_output_json(args.output, b)
    n = sum(len(v) for v in b["metrics"].values())
    print(f"baseline: {args.output} ({len(b['metrics'])} optimizers x {len(b['seeds'])} seeds, {n} trend metrics, "
          f"experiment {b['experiment']} identity {b['identity']})")
    if len(b["seeds"]) < 3:
        print("note: fewer than 3 seeds: the bands rest mostly on the tolerance floors", file=sys.stderr)
    return 0


def cmd_check(args) -> int:
    from bench.analysis import trends
    from bench.store.files import os_error, write_output
    from bench.store.layout import latest_run

    overrides = [trends.Override.parse(t) for t in args.tolerance]
    baseline = trends.load_baseline(args.baseline)
    run_dir = latest_run(args.results_dir)
    result = trends.check(run_dir, baseline, overrides, args.strict_identity, args.across_code_versions)
    # every output's content first: nothing is written unless all of it could be made
    outputs = []
    if args.markdown:
        outputs.append((args.markdown, trends.markdown(result, f"bench check: {run_dir.name} against "
                                                                f"{args.baseline.name}").encode("utf-8")))
    if args.json:
        outputs.append((args.json, trends.json_bytes(result)))
    if args.junit:
        outputs.append((args.junit, trends.junit_bytes(result)))
    print(trends.console_text(result, f"bench check {run_dir} against {args.baseline}", args.failures_only))
    if os.environ.get("GITHUB_ACTIONS") == "true":
        print("\n".join(trends.annotations(result)))
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    for path, data in outputs:
        if path is args.markdown and summary and _same_file(path, Path(summary)):
            try:
                with path.open("ab") as f:  # the job's summary: every step appends
                    f.write(data)
            except OSError as e:
                raise os_error(e, path) from None
        else:
            write_output(path, data)
    return result.exit_code


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except (OSError, RuntimeError):
        return False


def cmd_export(args) -> int:
    if args.tool == "tensorboard":
        from bench.export.tensorboard import export

        if args.uri is not None:
            raise BenchError("bench export tensorboard: --uri is for mlflow; the events go beside each pair's CSVs")
        written = export(args.run_dir)
        print(f"tensorboard: events written for {len(written)} pair(s); view them with: "
              f"tensorboard --logdir {args.run_dir}")
        return 0
    from bench.export.mlflow import send

    print(send(args.run_dir, args.uri or "", reports=args.reports).line())
    return 0


def _experiment_and_data(args):
    """The experiment and its data, as `bench run` would resolve and load them (every check included)."""
    from bench import data
    from bench.model.runtime import configure_runtime
    from bench.orchestrate.request import Request, resolve_experiment

    exp = resolve_experiment(Request(experiment=args.experiment, data=args.data, dataset=args.dataset,
                                     limit=args.limit, sets=tuple(args.set)))
    configure_runtime(exp.train.threads)
    return exp, data.load(exp.data)


def cmd_validate(args) -> int:
    from bench.orchestrate.validate import table_text, validate
    from bench.quality.scorer import make_evaluator
    from bench.store.files import write_output_json

    exp, dataset = _experiment_and_data(args)
    evaluator = make_evaluator(replace_eval(exp), dataset.images)
    result = validate(exp, dataset, evaluator, use_cache=not args.fresh)
    print(f"{exp.name}: {dataset.source}")
    print(table_text(result))
    if args.json:
        write_output_json(args.json, {k: v for k, v in result.items() if k != "cache"})
    return 0


def replace_eval(exp):
    """The experiment with its quality metrics on (validate and score need them, --no-eval or not)."""
    from dataclasses import replace

    return replace(exp, eval=replace(exp.eval, enabled=True))


def cmd_score(args) -> int:
    import math

    import numpy as np

    from bench.orchestrate.validate import load_images, validate
    from bench.quality.scorer import make_evaluator
    from bench.quality.scores import INFO
    from bench.store.files import write_output_json

    exp, dataset = _experiment_and_data(args)
    if dataset.is_points:
        raise BenchError(f"experiment {exp.name} trains on points; bench score scores images")
    images, what = load_images(args.images, exp, args.value_range)
    evaluator = make_evaluator(replace_eval(exp), dataset.images)
    scores, _ = evaluator(images)
    table = validate(exp, dataset, evaluator)
    sets = table.get("sets", {})
    untrained = [s for name, s in sets.items() if name.startswith("untrained")]
    print(f"{exp.name}: {what}, scored against {len(evaluator.real)} real images of {dataset.source}")
    print(f"  {'metric':<13}{'your images':>13}{'held-out real':>15}{'untrained G':>13}  validated on these data")
    for m, v in scores.items():
        if m not in INFO:
            continue
        ref = sets.get("held_out", {}).get(m, math.nan)
        unt = float(np.median([u.get(m, math.nan) for u in untrained])) if untrained else math.nan
        print(f"  {m:<13}{v:>13.4g}{ref:>15.4g}{unt:>13.4g}  {'yes' if m in table.get('passed', []) else 'no'} "
              f"({INFO[m].arrow} is better)")
    if args.json:
        write_output_json(args.json, {"experiment": exp.name, "images": str(args.images), "count": len(images),
                                      "scores": scores, "held_out": sets.get("held_out", {}),
                                      "validated": table.get("passed", [])})
    return 0


def cmd_list(args) -> int:
    from bench.orchestrate.catalog import catalog_text

    print(catalog_text())
    return 0


COMMANDS = {"run": cmd_run, "sweep": cmd_sweep, "report": cmd_report, "baseline": cmd_baseline, "check": cmd_check,
            "compare": cmd_compare, "export": cmd_export, "list": cmd_list, "validate": cmd_validate, "score": cmd_score}
