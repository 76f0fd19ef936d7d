"""The command line's grammar: every subcommand, option and help text (no behaviour)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from bench.core.errors import BenchError
from bench.core.names import install_hint
from bench.execute.pair import PROGRESS_EVERY

EPILOG = """examples:
  bench run --optimizers sgd,rmsprop,adam
  bench run celeba --data ~/data/img_align_celeba.zip --seeds 0,1,2
  bench run smoke --optimizers "sgd:learning_rate=0.01,momentum=0.5,adam" --steps 50 --quiet
  bench run --resume results/faces/20261123-141500
  bench compare results/faces/20261123-141500
  tensorboard --logdir results/
  bench export mlflow results/faces/20261123-141500 --uri http://127.0.0.1:5000
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


def _probability(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 0.5], got {text!r}") from None
    if not 0 < v <= 0.5:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 0.5], got {v}")
    return v


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def _positive_seconds(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not (v > 0 and math.isfinite(v)):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
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
    _training_options(r, "RUN_DIR", "continue the unfinished runs of RUN_DIR from their checkpoints", several=True)
    r.add_argument("--mlflow", nargs="?", const="", default=None, metavar="URI",
                   help="log each (optimizer, seed) to MLflow as it finishes, the report when the run ends (needs: "
                        f"{install_hint('mlflow')}): without URI to sqlite:///<out>/mlflow.db, else to that tracking "
                        "server (http(s)://...) or sqlite:///FILE. A server that is down never stops the training: "
                        "one warning, then bench export mlflow RUN_DIR --uri URI")
    r.set_defaults(func="run")

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
    sw.set_defaults(func="sweep")

    rp = sub.add_parser("report", help="write the HTML report of one or more run folders",
                        description="Write reports/<experiment>/<run-id>/index.html for a run folder (or for every run "
                                    "folder below RESULTS_DIR) and refresh reports/index.html. Works on runs that are "
                                    "still going or were cut short.")
    rp.add_argument("results_dir", type=Path, metavar="RESULTS_DIR", help="a run folder, or a folder holding run folders")
    rp.add_argument("--out", "--reports", dest="out", type=Path, default=Path("reports"), metavar="DIR",
                    help="reports folder (default: reports/; --reports as in bench run)")
    rp.set_defaults(func="report")

    b = sub.add_parser("baseline", help="condense a finished run into a small baseline file for `bench check`",
                       description="Write per-optimizer trend bands (quarter-window means, final level, final slope, "
                                   "sample diversity, divergence count) across the run's seeds, with the experiment "
                                   "identity and versions it came from. Commit the file; use several seeds.")
    b.add_argument("results_dir", type=Path, metavar="RUN_DIR",
                   help="a finished run folder, or a folder of runs (the newest is used)")
    b.add_argument("-o", "--output", type=Path, required=True, metavar="FILE", help="baseline JSON to write")
    b.set_defaults(func="baseline")

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
    c.add_argument("--across-code-versions", action="store_true",
                   help="compare against a baseline made with other code of a user optimizer (default: refused, "
                        "naming the optimizer and both SHA-256 digests of its source)")
    c.add_argument("--json", type=Path, metavar="FILE", help="also write the result as JSON")
    c.add_argument("--junit", type=Path, metavar="FILE", help="also write JUnit XML (one test case per metric)")
    c.add_argument("--markdown", type=Path, metavar="FILE",
                   help="also write a Markdown summary, regressions first (for $GITHUB_STEP_SUMMARY, which it "
                        "appends to, or a pull-request comment); with GITHUB_ACTIONS=true each failing metric is "
                        "also printed as an ::error annotation")
    c.add_argument("--failures-only", action="store_true", help="print only the rows that failed")
    c.set_defaults(func="check")

    cp = sub.add_parser("compare", help="which optimizer is better, by how much, how sure and how fast",
                        description="The paired verdict of finished runs: every optimizer pair on every metric (exact "
                                    "sign-flip test, Holm over the pairs of each metric, bootstrap intervals over seeds), "
                                    "time to target, divergence. Runs of one experiment are compared together on their "
                                    "common seeds; runs of two or more experiments sharing optimizers add a leaderboard "
                                    "(performance profile, interquartile mean, probability of improvement). Exit 0 when "
                                    "the verdict was computed, 2 on unusable input.")
    cp.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR", help="finished run folders")
    cp.add_argument("--json", type=Path, metavar="FILE", help="also write the verdicts (and leaderboard) as JSON")
    cp.add_argument("--primary", metavar="METRIC", default="",
                    help="the confirmatory metric, e.g. swd or fd_pca.best (default: the experiment's [compare] "
                         "primary, else swd)")
    cp.add_argument("--reference", metavar="LABEL", default="",
                    help="the optimizer whose median best primary value is the time-to-target target (default: the "
                         "experiment's [compare] reference, else the first optimizer)")
    cp.add_argument("--alpha", type=_probability, default=None, metavar="A",
                    help="significance level (default: the experiment's [compare] alpha, else 0.05)")
    cp.set_defaults(func="compare")

    ex = sub.add_parser("export", help="send finished (or cut-short) runs to TensorBoard or MLflow",
                        description="tensorboard: (re)write the TensorBoard event files beside each pair's CSVs, for "
                                    "runs made before or with --no-tensorboard. mlflow: log every pair to MLflow "
                                    "(one MLflow run per optimizer and seed under a parent run per bench run; pairs "
                                    "MLflow already holds finished are skipped), to --uri or, without it, to "
                                    "<results>/mlflow.db.")
    ex.add_argument("tool", choices=["tensorboard", "mlflow"], help="where to send the runs")
    ex.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run folder, or a folder holding run folders")
    ex.add_argument("--uri", metavar="URI", default=None,
                    help="mlflow: http(s)://HOST:PORT of a tracking server, or sqlite:///FILE (default: "
                         "sqlite:///<results>/mlflow.db beside the run folders)")
    ex.add_argument("--reports", type=Path, default=Path("reports"), metavar="DIR",
                    help="mlflow: where the runs' reports are, to attach them (default: reports/)")
    ex.set_defaults(func="export")

    va = sub.add_parser("validate", help="check every quality metric on the experiment's own data",
                        description="Score the validation suite against the experiment's real images: the FID paper's "
                                    "six disturbances at four levels, the failure states GANs show (the experiment's own "
                                    "untrained generator among them) and held-out real images, then judge each metric by "
                                    "the passing rule. Every run records the same table (cached per data set and metric "
                                    "version); a verdict rests only on a metric that passed.")
    va.add_argument("experiment", nargs="?", help="experiment name or TOML file (default: faces)")
    _data_options(va)
    va.add_argument("--json", type=Path, metavar="FILE", help="also write the table as JSON")
    va.add_argument("--fresh", action="store_true", help="compute it again instead of reading bench's cache")
    va.set_defaults(func="validate")

    sc = sub.add_parser("score", help="score any image set with the experiment's metrics, against its real images",
                        description="Score an image set (another GAN's samples, a disturbance of your own) with the "
                                    "experiment's quality metrics against its real images, on the same scale as its "
                                    "runs, beside held-out real images and the untrained generator from its "
                                    "validation table.")
    sc.add_argument("experiment", nargs="?", help="experiment name or TOML file (default: faces)")
    sc.add_argument("--images", type=Path, required=True, metavar="PATH",
                    help="a .npy of N x H x W x C (or N x H x W) in [0, 1] or [-1, 1] or uint8, or a folder/zip of images")
    sc.add_argument("--range", dest="value_range", choices=("auto", "0,1", "-1,1"), default="auto",
                    help="the .npy's value range (auto: [-1, 1] when any value is negative, else [0, 1])")
    _data_options(sc)
    sc.add_argument("--json", type=Path, metavar="FILE", help="also write the scores as JSON")
    sc.set_defaults(func="score")

    ls = sub.add_parser("list", help="show the experiments, datasets and optimizers bench knows")
    ls.set_defaults(func="list")
    return p


def _data_options(p: argparse.ArgumentParser, with_set: bool = True) -> None:
    """What picks an experiment's data: the same options on every command that reads one."""
    from bench.data import DATASETS  # the registry names them (a light import: no TensorFlow)

    p.add_argument("--data", metavar="PATH", help="dataset path (CelebA folder or zip, image folder, MNIST .npz)")
    p.add_argument("--dataset", metavar="NAME",
                   help=f"dataset registry name ({', '.join(sorted(DATASETS))}; see bench list)")
    p.add_argument("--limit", type=_positive_int, metavar="N", help="use the first N images in sorted order")
    if with_set:
        p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                       help="override any experiment value (repeatable)")


def _training_options(r: argparse.ArgumentParser, resume_metavar: str, resume_help: str, several: bool = False) -> None:
    """The options `bench run` and `bench sweep` share: what to train, where, and on which executor."""
    if several:
        r.add_argument("experiment", nargs="*", help="experiment names (see `bench list`) or paths to TOML files, run "
                                                     "one after another, each into its own run folder; default: faces")
    else:
        r.add_argument("experiment", nargs="?", help="experiment name (see `bench list`) or path to a TOML file; "
                                                     "default: faces")
    r.add_argument("--optimizers", metavar="SPEC",
                   help='comma-separated optimizers, each optionally with hyper-parameters: '
                        '"sgd:learning_rate=0.01,momentum=0.5,adam"; a class of your own by file or module: '
                        '"path/to/file.py:ClassName:learning_rate=2e-4" or "package.module:ClassName"; label=NAME '
                        'names a run; generator.KEY / discriminator.KEY set one network; a schedule: '
                        'learning_rate={schedule="CosineDecay",initial_learning_rate=2e-4,decay_steps=5000}. '
                        'Default: the experiment\'s list')
    r.add_argument("--seeds", type=_seeds, metavar="0,1,2", help="seeds; each fixes initial weights, batches and latents")
    r.add_argument("--steps", type=_positive_int, metavar="N", help="training iterations per run")
    r.add_argument("--batch-size", type=_positive_int, metavar="N", help="batch size (D sees N/2 real + N/2 fake)")
    _data_options(r, with_set=False)
    r.add_argument("--threads", type=_positive_int, metavar="N",
                   help="intra-op threads per run (default: all cores, or cores / --jobs; 1 with --executor ray)")
    r.add_argument("--jobs", "-j", type=_positive_int, default=None, metavar="N",
                   help="run N (optimizer, seed) pairs at once in separate processes, cores split between them "
                        "(default 1: one at a time with every core). Same numbers as --jobs 1 --threads cores/N. "
                        "With --executor ray: at most N tasks at once (default: as many as the cluster takes)")
    r.add_argument("--executor", choices=("local", "ray"), default="local",
                   help=f"local processes (default), or Ray tasks on a cluster (needs: {install_hint('ray')}); "
                        "same numbers at the same --threads")
    r.add_argument("--address", metavar="ADDR",
                   help="Ray cluster to use, e.g. 10.0.0.5:6379 or auto (default: start a local Ray)")
    xla = r.add_mutually_exclusive_group()
    xla.add_argument("--xla", dest="xla", action="store_true", default=None, help="compile the step with XLA (default)")
    xla.add_argument("--no-xla", dest="xla", action="store_false", help="plain tf.function graph (different bits than XLA)")
    r.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override any experiment value, e.g. --set model.latent_dim=64 (repeatable)")
    r.add_argument("--no-eval", action="store_true", help="skip the sample-quality metrics (quality.csv)")
    r.add_argument("--no-tensorboard", action="store_true",
                   help="write no TensorBoard event files (default: beside each pair's CSVs; tensorboard --logdir "
                        "results/ shows them; bench export tensorboard writes them later)")
    r.add_argument("--fid-weights", metavar="FILE",
                   help="local InceptionV3 weights (.h5/.keras) to add FID to the quality metrics; never downloaded")
    r.add_argument("--out", type=Path, default=Path("results"), metavar="DIR", help="results folder (default: results/)")
    r.add_argument("--resume", type=Path, metavar=resume_metavar, help=resume_help)
    r.add_argument("--fresh", action="store_true", help="always start anew (default: an interrupted one "
                                                        "with the identical configuration is resumed)")
    r.add_argument("--quiet", "-q", action="store_true", help="no progress bars or lines (for CI)")
    r.add_argument("--progress-every", type=_positive_seconds, default=PROGRESS_EVERY, metavar="SECONDS",
                   help="when stderr is not a terminal (a log file, CI), progress is plain lines: one per pair as it "
                        f"ends and at most one every SECONDS while it trains (default {PROGRESS_EVERY:g})")
    r.add_argument("--reports", type=Path, default=Path("reports"), metavar="DIR",
                   help="where the HTML report goes (default: reports/)")
    r.add_argument("--no-report", action="store_true", help="do not write the HTML report afterwards")
