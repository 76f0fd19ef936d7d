"""Experiment configuration: frozen dataclasses loaded from TOML files: the experiments bench ships (package data,
``bench/experiments/*.toml``), the user's own in ``./experiments/*.toml``, or any file by path.

Every table and key is checked against the dataclass fields, so a typo is a one-line
error that names the closest valid key instead of a silently ignored setting.
The same validator loads the effective configuration back from a run's manifest
(``--resume``), so what is saved is exactly what can be re-run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.core.errors import BenchError, first_line
from bench.core.metric_table import metric_key
from bench.core.names import NETWORKS, PLAIN_NAME, check_plain_name
from bench.core.schema import build, coerce, positive, suggest

SHIPPED_EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"  # package data: in the wheel too
USER_EXPERIMENTS = "experiments"  # ./experiments/*.toml of the working directory, found by name like the shipped ones
DEFAULT_EXPERIMENT = "faces"


@dataclass(frozen=True)
class DataConfig:
    source: str = "faces"  # a name in bench.data.DATASETS
    path: str = ""  # folder, zip or .npz; empty for bundled sources
    image_size: tuple[int, int] = (25, 25)  # (height, width) the model sees
    channels: int = 1  # 1 grey, 3 RGB; images are converted, never guessed per file
    crop: int = 0  # centre crop (square side, source pixels) before resizing; 0 = none
    limit: int = 0  # use the first N images in sorted order; 0 = all
    resample: str = "bilinear"  # Pillow filter for resizing
    seed: int = 0  # generator seed of synthetic sources (quadratic)
    standardize: bool = False  # point data: zero mean, unit variance per dimension (plots undo it)


@dataclass(frozen=True)
class ModelConfig:
    kind: str = "dense"  # a builder of bench.model.models.MODELS
    latent_dim: int = 100
    g_widths: tuple[int, ...] = (256, 512, 1024)
    d_widths: tuple[int, ...] = (512, 256)
    leaky_slope: float = 0.2
    bn_momentum: float = 0.8  # the classic GAN's value (Keras default is 0.99)
    d_dropout: float = 0.0  # dropout after each hidden layer of D (MNIST tutorial: 0.3)
    batch_norm: bool = True  # BatchNormalization after each hidden layer of G (the 2-D toy has none)
    output_activation: str = "tanh"  # tanh for images in [-1, 1]; linear for point data
    latent: str = "normal"  # z ~ N(0, 1), or "uniform" on [-1, 1] (the 2-D toy)


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 32  # D sees half real, half fake; G sees a full batch
    steps: int = 5000
    sample_every: int = 200
    sample_count: int = 25  # fixed latents drawn once, identical for every optimizer and seed
    sample_seed: int = 1234
    checkpoint_every: int = 500
    real_label: float = 1.0  # 0.9 = one-sided label smoothing
    jit_compile: bool = True  # XLA: measured faster on CPU; part of the run's identity
    threads: int = 0  # intra-op threads; 0 = every core this process may use
    steps_per_call: int = 8  # iterations per compiled call (bit-identical for any value; speed only)
    tensorboard: bool = True  # TensorBoard event files beside the CSVs (output only; --no-tensorboard)
    d_steps: int = 1  # discriminator updates (each on its own batch) per generator update: WGAN's n_critic
    update: str = "alternating"  # alternating (D, then G through the updated D), simultaneous (both gradients at
    # the same point), or extragradient (gradients at an extrapolated point, applied from the original one)


@dataclass(frozen=True)
class EvalConfig:
    """Sample quality, scored at every sample interval on a fixed latent bank (bench.quality.scores)."""

    enabled: bool = True
    every: int = 0  # score every N iterations (a multiple of train.sample_every); 0 = every sample interval
    samples: int = 256  # size of the fixed latent bank (the same for every optimizer and seed)
    real: int = 256  # fixed subset of training images the samples are compared with
    pca_dims: int = 32  # features for the Frechet and kernel distances
    patches_per_image: int = 64  # SWD descriptors per image and pyramid level
    seed: int = 7
    fid_weights: str = ""  # local InceptionV3 weights (.h5/.keras); FID is computed only when set


@dataclass(frozen=True)
class CompareConfig:
    """How the run's verdict compares its optimizers (bench.analysis.verdict); it changes no trained value."""

    primary: str = ""  # the confirmatory metric; "" = bench.quality.scores.DEFAULT_PRIMARY, else the first validated one
    reference: str = ""  # the optimizer whose median best primary value is the time-to-target target; "" = the first
    target: float | None = None  # a declared target instead
    alpha: float = 0.05  # significance level (Holm-adjusted over the optimizer pairs of each metric)
    margins: Mapping[str, float] = field(default_factory=dict)  # equivalence margins by metric (default: the table's)
    reps: int = 10_000  # bootstrap resamples of the seeds
    seed: int = 0  # the bootstrap's random stream


@dataclass(frozen=True)
class OptimizerSpec:
    """One optimizer entry: ``label`` names the run, ``name`` the class: a registry name (a Keras optimizer, an
    entry point, a class of ./optimizers/) or a reference to the user's code (``path.py:Class``,
    ``pkg.mod:Class``); ``source``, once resolved (bench.model.optimizers), the code that runs:
    {kind, where, cls, text, sha256, package}."""

    label: str
    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    generator: Mapping[str, Any] = field(default_factory=dict)  # overrides for G only
    discriminator: Mapping[str, Any] = field(default_factory=dict)  # overrides for D only
    source: Mapping[str, Any] = field(default_factory=dict)  # a user's class: the code bench runs

    def params_for(self, network: str) -> dict[str, Any]:
        extra = self.generator if network == "generator" else self.discriminator
        return {**self.params, **extra}


@dataclass(frozen=True)
class Experiment:
    name: str
    description: str = ""
    seeds: tuple[int, ...] = (0,)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)
    optimizers: tuple[OptimizerSpec, ...] = ()
    # [sweep]: the search spaces of `bench sweep` (bench.core.sweep_table validates it). Not part of to_dict():
    # a run's configuration is what it trained with; a sweep records its own table in sweep.json.
    sweep: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("sweep")
        d["optimizers"] = {o.label: _entry(o) for o in self.optimizers}
        for section, key, default in (("train", "d_steps", 1), ("train", "update", "alternating"),
                                      ("model", "kind", "dense")):
            if d[section][key] == default:  # defaults stay out: every experiment made before keeps its identity
                d[section].pop(key)
        return _plain(d)

    def identity(self, optimizer: OptimizerSpec | None = None) -> str:
        """Hash of everything that changes the per-step values of a run.

        Step count, intervals and seeds are left out: a 200-step run and the first
        200 steps of a 5000-step run are the same numbers. With ``optimizer``, of what a pair with that
        optimizer trains with: neither the experiment's other optimizers nor its label change its values.
        """
        d = self.to_dict()
        if optimizer is not None:
            d["optimizers"] = {"": _plain(_entry(optimizer))}
        for k in ("steps", "checkpoint_every", "sample_every", "steps_per_call", "tensorboard"):
            d["train"].pop(k)
        for k in ("name", "description", "seeds", "eval", "compare"):  # they score runs, they do not change them
            d.pop(k)
        _drop_texts(d["optimizers"])  # a user's code counts by its SHA-256 (the text travels, the hash identifies)
        blob = json.dumps(d, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def optimizer(self, label: str) -> OptimizerSpec:
        for o in self.optimizers:
            if o.label == label:
                return o
        raise KeyError(label)


def _entry(o: OptimizerSpec) -> dict[str, Any]:
    """An optimizer as the configuration records it (under its label)."""
    return {"type": o.name, **dict(o.params), **({"generator": dict(o.generator)} if o.generator else {}),
            **({"discriminator": dict(o.discriminator)} if o.discriminator else {}),
            **({"source": dict(o.source)} if o.source else {})}


def _drop_texts(node: Any) -> None:
    """Remove every ``source.text`` below ``node`` (optimizers and their schedules), keeping the rest."""
    if isinstance(node, dict):
        if isinstance(node.get("source"), dict):
            node["source"] = {k: v for k, v in node["source"].items() if k != "text"}
        for v in node.values():
            _drop_texts(v)


def _plain(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


# ---------------------------------------------------------------- validation


# Upper bounds: far above any sensible setting, and low enough that a typo (10**9 latent dims) is a
# one-line error instead of an exhausted memory or a process that starts a billion threads.
LIMITS = {
    "train.batch_size": 1 << 16, "train.sample_count": 10_000, "train.steps_per_call": 1024, "train.threads": 1024,
    "model.latent_dim": 1 << 16, "model.width": 1 << 16, "model.layers": 64, "data.image_side": 4096,
    "data.seed": 2**63 - 1, "train.sample_seed": 2**63 - 1, "eval.seed": 2**63 - 1, "eval.samples": 100_000,
    "eval.real": 100_000, "eval.pca_dims": 4096, "eval.patches_per_image": 4096,
}


def _at_most(where: str, value: int, key: str | None = None) -> None:
    limit = LIMITS[key or where]
    if value > limit:
        raise BenchError(f"{where} must be at most {limit:,}, got {value:,}")


def _check(exp: Experiment) -> None:
    t, m, d = exp.train, exp.model, exp.data
    check_plain_name("experiment name", exp.name)
    for where, value in (("train.batch_size", t.batch_size), ("train.sample_count", t.sample_count),
                         ("train.steps_per_call", t.steps_per_call), ("train.threads", t.threads),
                         ("model.latent_dim", m.latent_dim), ("data.seed", d.seed), ("train.sample_seed", t.sample_seed),
                         ("eval.seed", exp.eval.seed)):
        _at_most(where, value)
    for where, value in (("data.seed", d.seed), ("train.sample_seed", t.sample_seed), ("eval.seed", exp.eval.seed)):
        positive(where, value, allow_zero=True)
    for name, widths in (("model.g_widths", m.g_widths), ("model.d_widths", m.d_widths)):
        _at_most(f"the number of {name}", len(widths), "model.layers")
        for w in widths:
            _at_most(f"each of {name}", w, "model.width")
    for side in d.image_size:
        _at_most("each of data.image_size", side, "data.image_side")
    positive("train.batch_size", t.batch_size)
    if t.batch_size < 2 or t.batch_size % 2:
        raise BenchError(f"train.batch_size must be an even number >= 2 (D sees half real, half fake), got {t.batch_size}")
    positive("train.steps", t.steps)
    positive("train.sample_every", t.sample_every)
    positive("train.sample_count", t.sample_count)
    positive("train.checkpoint_every", t.checkpoint_every)
    positive("train.threads", t.threads, allow_zero=True)
    positive("train.steps_per_call", t.steps_per_call)
    if not 1 <= t.d_steps <= 100:
        raise BenchError(f"train.d_steps must be between 1 and 100 discriminator updates per generator update, got {t.d_steps}")
    if t.update not in UPDATES:
        raise BenchError(f"train.update: expected one of {', '.join(UPDATES)}, got {t.update!r}{suggest(t.update, UPDATES)}")
    if t.d_steps > 1 and t.update != "alternating":
        raise BenchError(f"train.d_steps = {t.d_steps} is for update = \"alternating\" (k D steps, then G through the "
                         f"updated D); with {t.update} D and G update at the same points: set d_steps = 1")
    if not 0 < t.real_label <= 1:
        raise BenchError(f"train.real_label must be in (0, 1], got {t.real_label}")
    positive("model.latent_dim", m.latent_dim)
    for name, widths in (("model.g_widths", m.g_widths), ("model.d_widths", m.d_widths)):
        if not widths or any(w <= 0 for w in widths):
            raise BenchError(f"{name} must be a non-empty list of positive integers, got {list(widths)}")
    if m.output_activation not in ("tanh", "linear", "sigmoid"):
        raise BenchError(f"model.output_activation must be tanh, linear or sigmoid, got '{m.output_activation}'")
    if m.latent not in ("normal", "uniform"):
        raise BenchError(f"model.latent must be normal or uniform, got '{m.latent}'")
    if not 0 <= m.d_dropout < 1:
        raise BenchError(f"model.d_dropout must be in [0, 1), got {m.d_dropout}")
    if min(d.image_size) <= 0:
        raise BenchError(f"data.image_size must be two positive integers, got {list(d.image_size)}")
    if d.channels not in (1, 3):
        raise BenchError(f"data.channels must be 1 or 3, got {d.channels}")
    positive("data.crop", d.crop, allow_zero=True)
    positive("data.limit", d.limit, allow_zero=True)
    e = exp.eval
    if e.enabled:
        if e.samples < 2 or e.real < 2:
            raise BenchError(f"eval.samples and eval.real must be >= 2, got {e.samples} and {e.real}")
        positive("eval.pca_dims", e.pca_dims)
        positive("eval.every", e.every, allow_zero=True)
        if e.every % t.sample_every:
            raise BenchError(f"eval.every ({e.every}) must be a multiple of train.sample_every ({t.sample_every})")
        positive("eval.patches_per_image", e.patches_per_image)
        for where, value in (("eval.samples", e.samples), ("eval.real", e.real), ("eval.pca_dims", e.pca_dims),
                             ("eval.patches_per_image", e.patches_per_image)):
            _at_most(where, value)
    if not exp.seeds:
        raise BenchError("seeds: give at least one seed")
    if any(s < 0 or s >= 2**32 for s in exp.seeds):  # Keras seeds its generators with 32 bits
        raise BenchError(f"seeds must be in [0, 2**32), got {list(exp.seeds)}")
    if len(set(exp.seeds)) != len(exp.seeds):
        raise BenchError(f"seeds: each seed once, got {list(exp.seeds)}")
    if not exp.optimizers:
        raise BenchError("no optimizers: list them under [optimizers.NAME] or pass --optimizers")
    check_compare(exp.compare)


def check_compare(c: CompareConfig) -> None:
    if not 0 < c.alpha <= 0.5:
        raise BenchError(f"compare.alpha must be in (0, 0.5], got {c.alpha}")
    if not 100 <= c.reps <= 1_000_000:
        raise BenchError(f"compare.reps must be between 100 and 1,000,000 bootstrap resamples, got {c.reps}")
    positive("compare.seed", c.seed, allow_zero=True)
    _at_most("compare.seed", c.seed, "data.seed")
    if not isinstance(c.margins, Mapping):
        raise BenchError(f"compare.margins: expected a table like {{ rfd = 0.05 }}, got {c.margins!r}")
    for key, value in c.margins.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1e300:
            raise BenchError(f"compare.margins.{key}: expected a number >= 0, got {value!r}")


def check_metric_names(c: CompareConfig, valid: list[str]) -> None:
    """``[compare] primary`` and the margins' keys name metrics bench compares (``valid``: their names, from
    the quality registry, which this layer does not import)."""
    if c.primary and metric_key(c.primary) not in valid:
        raise BenchError(f"compare.primary: unknown metric '{c.primary}'{suggest(c.primary, valid)}; "
                         f"known: {', '.join(valid)}")
    for key in c.margins:
        if metric_key(key) not in valid:
            raise BenchError(f"compare.margins: unknown metric '{key}'{suggest(key, valid)}")


_OPT_RESERVED = ("type", "class", "source", *NETWORKS)
UPDATES = ("alternating", "simultaneous", "extragradient")
SCHEDULE_KEY = "schedule"  # learning_rate = { schedule = "CosineDecay", ... }: a learning-rate schedule


def _optimizer_spec(label: str, table: Any, where: str, base: str = "") -> OptimizerSpec:
    """``base``: the folder of the experiment file, which a relative ``class = "file.py:Class"`` is read from."""
    if not isinstance(table, Mapping):
        raise BenchError(f"{where}: expected a table of hyper-parameters, got {table!r}")
    if "class" in table and "type" in table:
        raise BenchError(f"{where}: give either type = NAME (a registry name) or class = \"file.py:Class\", not both")
    name = table.get("class", table.get("type", label))
    if not isinstance(name, str) or not name:
        raise BenchError(f"{where}.{'class' if 'class' in table else 'type'}: expected a string, got {name!r}")
    if "class" in table and base and ":" in name:
        head, _, cls = name.rpartition(":")
        if head.endswith(".py") and not Path(head).expanduser().is_absolute():
            name = f"{(Path(base) / head).resolve()}:{cls}"  # relative to the experiment file, as a user reads it
    source = table.get("source", {})
    if not isinstance(source, Mapping):
        raise BenchError(f"{where}.source: expected a table, got {source!r}")
    params = {k: v for k, v in table.items() if k not in _OPT_RESERVED}
    nets = {}
    for net in NETWORKS:
        sub = table.get(net, {})
        if not isinstance(sub, Mapping):
            raise BenchError(f"{where}.{net}: expected a table of hyper-parameters, got {sub!r}")
        nets[net] = dict(sub)
    for k, v in [*params.items(), *nets["generator"].items(), *nets["discriminator"].items()]:
        if isinstance(v, Mapping) and SCHEDULE_KEY in v:
            continue  # a learning-rate schedule: bench.model.optimizers checks it
        if isinstance(v, (Mapping, list)):
            raise BenchError(f"{where}.{k}: a hyper-parameter must be a number, string, true/false or a schedule "
                             f"({{ schedule = \"CosineDecay\", ... }}), got {v!r}")
    lower = name if ":" in name else name.lower()
    return OptimizerSpec(label=label, name=lower, params=params, **nets, source=dict(source))


def experiment_from_dict(raw: Mapping[str, Any], where: str) -> Experiment:
    """Validate a parsed TOML/JSON document into an :class:`Experiment`."""
    sections = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig, "eval": EvalConfig,
                "compare": CompareConfig}
    top = {"name", "description", "seeds", "optimizers", "sweep", *sections}
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in top:
            raise BenchError(f"{where}: unknown key '{key}'{suggest(key, top)}")
        if key in sections:
            kwargs[key] = build(sections[key], value, f"{where}: {key}")
        elif key == "optimizers":
            if not isinstance(value, Mapping):
                raise BenchError(f"{where}: optimizers: expected tables like [optimizers.adam]")
            base = str(Path(where).parent) if where.endswith(".toml") else ""
            kwargs[key] = tuple(_optimizer_spec(lbl, t, f"{where}: optimizers.{lbl}", base) for lbl, t in value.items())
        elif key == "seeds":
            kwargs[key] = coerce(value, tuple[int, ...], f"{where}: seeds")
        elif key == "sweep":
            if not isinstance(value, Mapping):
                raise BenchError(f"{where}: sweep: expected a table like [sweep]")
            kwargs[key] = dict(value)
        else:
            kwargs[key] = coerce(value, str, f"{where}: {key}")
    kwargs.setdefault("name", "experiment")
    exp = Experiment(**kwargs)
    _check(exp)
    return exp


def absolute_path(value: str) -> str:
    """A user-given path made absolute (saved with the run, so --resume finds it from anywhere)."""
    try:
        return str(Path(value).expanduser().resolve())
    except (RuntimeError, OSError) as e:  # a symlink loop, an unknown ~user
        raise BenchError(f"{value}: not a usable path ({first_line(e) or type(e).__name__})") from None


def experiment_files() -> dict[str, Path]:
    """Every experiment known by name: the shipped ones, then the working directory's ``./experiments/*.toml``
    (one of the same name is the user's version and takes its place)."""
    found = {p.stem: p for p in sorted(SHIPPED_EXPERIMENTS.glob("*.toml"))}
    user = Path(USER_EXPERIMENTS)
    if user.is_dir():
        found.update({p.stem: p for p in sorted(user.glob("*.toml")) if PLAIN_NAME.match(p.stem) and p.is_file()})
    return dict(sorted(found.items()))


def is_users(path: Path) -> bool:
    """Whether a named experiment is the user's (``./experiments/``) rather than shipped."""
    return path.parent != SHIPPED_EXPERIMENTS


def experiment_names() -> list[str]:
    return list(experiment_files())


def experiment_path(name: str) -> Path:
    """The file of a named experiment (raises the one-line "unknown experiment" error for any other name)."""
    files = experiment_files()
    if name not in files:
        names = list(files)
        raise BenchError(f"unknown experiment '{name}'{suggest(name, names)}; known: {', '.join(names)}")
    return files[name]


def resolve_experiment_path(name_or_path: str | None) -> Path:
    """An experiment is a name (``faces``: shipped, or ``./experiments/faces.toml``) or a path to a TOML file."""
    name_or_path = name_or_path or DEFAULT_EXPERIMENT
    p = Path(name_or_path)
    if p.suffix == ".toml" or "/" in name_or_path or os.sep in name_or_path:  # written as a path
        if not p.is_file():
            raise BenchError(f"experiment file not found: {p}")
        return p
    # a bare word is a name first: a folder ./celeba/ (the user's data, say) must not hide the celeba experiment
    files = experiment_files()
    if name_or_path in files:
        return files[name_or_path]
    return p if p.is_file() else experiment_path(name_or_path)  # a TOML file named without its suffix, or the error


def load_raw(path: Path) -> dict[str, Any]:
    try:
        blob = Path(path).read_bytes()
        raw = tomllib.loads(blob.decode("utf-8"))
    except UnicodeDecodeError as e:
        line = blob[: e.start].count(b"\n") + 1
        raise BenchError(f"{path}: line {line}: not UTF-8 text (byte 0x{blob[e.start]:02x}); "
                         "TOML files are UTF-8: save it as UTF-8") from None
    except tomllib.TOMLDecodeError as e:
        raise BenchError(f"{path}: not valid TOML: {e}") from None
    except OSError as e:
        raise BenchError(f"{path}: cannot read: {e.strerror or e}") from None
    raw.setdefault("name", path.stem)
    return raw


def apply_override(raw: dict[str, Any], assignment: str) -> None:
    """Apply ``section.key=value`` (value parsed as TOML, else taken as a string)."""
    key, sep, value = assignment.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(parts):
        raise BenchError(f"--set {assignment!r}: expected SECTION.KEY=VALUE, e.g. train.batch_size=64")
    try:
        parsed = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    node = raw
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise BenchError(f"--set {assignment!r}: '{p}' is not a table")
    node[parts[-1]] = parsed
