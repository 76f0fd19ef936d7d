"""The one registry of optimizers: Keras's own, installed packages' entry points, ./optimizers/*.py, and any
class of the user's code named by reference; with their hyper-parameters and learning-rate schedules.

Names, on the command line and in experiment files:

    adam                                      a Keras optimizer by its lower-case class name (and its arguments)
    NAME                                      an entry point of group ``bench.optimizers``, or a class of ./optimizers/
    path/to/oadam.py:OptimisticAdam           a class in a file
    package.module:OptimisticAdam             a class in an importable module

Inline specs on the command line look like

    sgd:learning_rate=0.01,momentum=0.5,adam,adam:label=adam_fast,learning_rate=0.001
    examples/optimizers/oadam.py:OptimisticAdam:learning_rate=2e-4
    adam:learning_rate={schedule="CosineDecay",initial_learning_rate=2e-4,decay_steps=5000}

A token ``name`` or ``name:key=value`` starts an optimizer; a following ``key=value`` token adds to it (commas
inside ``{...}`` or ``[...]`` belong to the value). ``label=...`` names the run (a reference's default label is its
class name, lower-case); ``generator.key=...`` / ``discriminator.key=...`` set one network only;
``learning_rate.KEY=...`` sets one argument of a schedule. A learning rate may be a schedule: any
``keras.optimizers.schedules`` class by name, or a user's schedule class named like an optimizer (entry point group
``bench.schedules``), with its arguments.

A user's class is read, hashed and recorded by bench.model.sources, and checked here before anything is written:
it must subclass ``keras.optimizers.Optimizer`` (a schedule, ``LearningRateSchedule``), take the hyper-parameters
given (the closest valid one is named otherwise), and construct for both networks.
"""

from __future__ import annotations

import functools
import inspect
import math
import re
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.core.config import SCHEDULE_KEY, OptimizerSpec
from bench.core.errors import BenchError, first_line
from bench.core.names import NETWORKS
from bench.core.schema import suggest
from bench.core.sweep_table import SweepConfig
from bench.model import sources
from bench.model.sources import Source

GROUP = "bench.optimizers"
SCHEDULE_GROUP = "bench.schedules"
# Accepted by every Keras optimizer (the base class); `bench list` shows them once.
COMMON_HYPERPARAMETERS = frozenset({
    "weight_decay", "clipnorm", "clipvalue", "global_clipnorm", "use_ema", "ema_momentum",
    "ema_overwrite_frequency", "loss_scale_factor", "gradient_accumulation_steps", "name",
})
_LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Entry:
    """A registry name: a Keras class (``cls``), or a user's class named by reference (``ref``)."""

    kind: str  # "keras", "entry point", "folder"
    cls: type | None = None
    ref: str = ""


def _required(cls: type) -> list[str]:
    """Constructor arguments without a default: a class that needs them (a wrapper of other optimizers such as
    LossScaleOptimizer or MultiOptimizer) cannot train a network alone."""
    sig = inspect.signature(cls.__init__)
    return [p.name for p in list(sig.parameters.values())[1:]
            if p.default is p.empty and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]


@functools.cache
def keras_optimizers() -> dict[str, type]:
    """Lower-case name -> every Keras optimizer class that can train a network alone."""
    import keras

    found = {}
    for attr in dir(keras.optimizers):
        obj = getattr(keras.optimizers, attr)
        if inspect.isclass(obj) and issubclass(obj, keras.optimizers.Optimizer) and obj is not keras.optimizers.Optimizer:
            if not _required(obj):
                found[attr.lower()] = obj
    return dict(sorted(found.items()))


def registry() -> dict[str, Entry]:
    """Every optimizer name bench knows: Keras's, installed entry points (``bench.optimizers``) and the classes of
    ./optimizers/*.py (names that would shadow a Keras optimizer are left out)."""
    out: dict[str, Entry] = {name: Entry("keras", cls) for name, cls in keras_optimizers().items()}
    for name in sources.entry_point_names(GROUP):
        out.setdefault(name.lower(), Entry("entry point", ref=name))
    for name, ref in sources.folder_classes().items():
        out.setdefault(name, Entry("folder", ref=ref))
    return out


# ------------------------------------------------------------------ sources and classes


def _what(spec: OptimizerSpec) -> str:
    return f"optimizer '{spec.label}'"


def resolve(specs: tuple[OptimizerSpec, ...], base: Path | None = None) -> tuple[OptimizerSpec, ...]:
    """Every user's class (an optimizer, a schedule) read and hashed into its spec's ``source``; built-ins as
    they are. Specs that carry a source already (from a manifest, or a worker's configuration) keep it: the
    code a run started with is the code it runs."""
    return tuple(_resolve(spec, base) for spec in specs)


def _resolve(spec: OptimizerSpec, base: Path | None) -> OptimizerSpec:
    what = _what(spec)
    source = dict(spec.source)
    if not source:
        src = None
        if sources.is_reference(spec.name):
            src = sources.from_reference(spec.name, what, base)
        elif spec.name not in keras_optimizers():
            entry = registry().get(spec.name)
            if entry is None:
                names = registry()
                raise BenchError(f"unknown optimizer '{spec.name}'{suggest(spec.name, names)}; known: "
                                 f"{', '.join(names)}; or name a class: path/to/file.py:ClassName")
            src = (sources.from_entry_point(entry.ref, GROUP, what) if entry.kind == "entry point"
                   else sources.from_reference(entry.ref, what))
        if src is not None:
            source = _source_record(src)
    params = {k: _resolve_schedule(v, what, base) for k, v in spec.params.items()}
    nets = {net: {k: _resolve_schedule(v, what, base) for k, v in getattr(spec, net).items()} for net in NETWORKS}
    return replace(spec, params=params, source=source, **nets)


def _source_record(src: Source) -> dict[str, Any]:
    return {"kind": src.kind, "where": src.where, "cls": src.cls, "sha256": src.sha256, "package": src.package,
            "text": src.text}


def source_record_of_class(cls: type, label: str) -> dict[str, Any]:
    """The source record of a class passed as an object (bench.run)."""
    return _source_record(sources.from_class(cls, f"optimizer '{label}'"))


def source_of(record: dict) -> Source:
    return Source(record["kind"], record["where"], record["cls"], record["text"], record["sha256"],
                  record.get("package", ""))


def optimizer_class(spec: OptimizerSpec) -> type:
    """The class a spec trains with (a Keras optimizer, or the user's class compiled from its recorded source)."""
    import keras

    if spec.source:
        cls = sources.load(source_of(dict(spec.source)), _what(spec))
        if not (isinstance(cls, type) and issubclass(cls, keras.optimizers.Optimizer)):
            raise BenchError(f"{_what(spec)}: {spec.source['where']}:{spec.source['cls']} is not a Keras optimizer "
                             "(a subclass of keras.optimizers.Optimizer)")
        return cls
    names = keras_optimizers()
    if spec.name not in names:
        known = registry()
        raise BenchError(f"unknown optimizer '{spec.name}'{suggest(spec.name, known)}; known: {', '.join(known)}; "
                         "or name a class: path/to/file.py:ClassName")
    return names[spec.name]


def hyperparameters(cls: type) -> dict[str, Any]:
    """The constructor arguments (and defaults) an optimizer class accepts; a class that passes ``**kwargs`` on
    accepts the base Optimizer's too."""
    import keras

    sig = inspect.signature(cls.__init__)
    out = {p.name: p.default for p in sig.parameters.values()
           if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    if any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()) and cls is not keras.optimizers.Optimizer:
        base = hyperparameters(keras.optimizers.Optimizer)
        out = {**{k: v for k, v in base.items() if k not in out}, **out}
    return out


def hyperparameters_of(spec: OptimizerSpec) -> dict[str, Any]:
    return hyperparameters(optimizer_class(spec))


# ------------------------------------------------------------------ learning-rate schedules


@functools.cache
def keras_schedules() -> dict[str, type]:
    import keras

    s = keras.optimizers.schedules
    return {name: obj for name in dir(s) if inspect.isclass(obj := getattr(s, name))
            and issubclass(obj, s.LearningRateSchedule) and obj is not s.LearningRateSchedule}


def _resolve_schedule(value: Any, what: str, base: Path | None) -> Any:
    if not (isinstance(value, dict) and SCHEDULE_KEY in value) or "source" in value:
        return value
    name = value[SCHEDULE_KEY]
    if not isinstance(name, str):
        raise BenchError(f"{what}: schedule: expected a name such as \"CosineDecay\" or file.py:Class, got {name!r}")
    src = None
    if sources.is_reference(name):
        src = sources.from_reference(name, f"{what}'s schedule", base)
    elif name not in keras_schedules():
        src = sources.from_entry_point(name, SCHEDULE_GROUP, f"{what}'s schedule")
        if src is None:
            raise BenchError(f"{what}: unknown schedule '{name}'{suggest(name, keras_schedules())}; known: "
                             f"{', '.join(keras_schedules())}; or name a class: path/to/file.py:ClassName")
    return {**value, "source": _source_record(src)} if src is not None else value


def schedule_class(value: dict, what: str) -> type:
    import keras

    if "source" in value:
        cls = sources.load(source_of(value["source"]), f"{what}'s schedule")
        if not (isinstance(cls, type) and issubclass(cls, keras.optimizers.schedules.LearningRateSchedule)):
            raise BenchError(f"{what}: {value['source']['where']}:{value['source']['cls']} is not a learning-rate "
                             "schedule (a subclass of keras.optimizers.schedules.LearningRateSchedule)")
        return cls
    name = value[SCHEDULE_KEY]
    if name not in keras_schedules():
        raise BenchError(f"{what}: unknown schedule '{name}'{suggest(name, keras_schedules())}")
    return keras_schedules()[name]


def _schedule(value: dict, what: str, key: str):
    """A schedule object from its table, every argument checked against the class's constructor."""
    cls = schedule_class(value, what)
    args = {k: v for k, v in value.items() if k not in (SCHEDULE_KEY, "source")}
    accepted = {p.name for p in list(inspect.signature(cls.__init__).parameters.values())[1:]
                if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    for k, v in args.items():
        if k not in accepted:
            raise BenchError(f"{what}: {key}: {cls.__name__} has no argument '{k}'{suggest(k, accepted)}")
        _check_number(what, f"{key}.{k}", v)
    missing = [a for a in _required(cls) if a not in args]
    if missing:
        raise BenchError(f"{what}: {key}: {cls.__name__} needs {', '.join(missing)}")
    try:
        return cls(**args)
    except Exception as e:  # noqa: BLE001 - the constructor refusing the user's values, whatever it raises
        where = sources.error_in(source_of(value["source"]), e) if "source" in value else f"{type(e).__name__}: {first_line(e)}"
        raise BenchError(f"{what}: {key} = {cls.__name__}({args}): {where}") from None


def _check_number(what: str, key: str, value: Any) -> None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not -1e300 < value < 1e300:
        raise BenchError(f"{what}: hyper-parameter {key}={value!r} is not a finite number")
    if isinstance(value, str):
        raise BenchError(f"{what}: hyper-parameter {key}={value!r} is not a number")


# ------------------------------------------------------------------ the command line's specs


def _literal(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _split_top(text: str) -> list[str]:
    """Split on commas outside ``{...}``, ``[...]`` and quotes (a schedule's table keeps its commas)."""
    parts, depth, quote, cur = [], 0, "", []
    for c in text:
        if quote:
            quote = "" if c == quote else quote
        elif c in "\"'":
            quote = c
        elif c in "{[":
            depth += 1
        elif c in "}]":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(c)
    parts.append("".join(cur))
    return parts


def _head(token: str) -> tuple[str, str]:
    """(the name or reference starting an entry, the ``key=value`` after it or "")."""
    parts = token.split(":")
    if len(parts) >= 2 and "=" not in parts[1] and sources.is_reference(f"{parts[0]}:{parts[1]}"):
        return f"{parts[0]}:{parts[1]}", ":".join(parts[2:])
    head, _, rest = token.partition(":")
    return head, rest


def parse_inline(text: str) -> list[tuple[str, str, dict[str, Any]]]:
    """Parse the ``--optimizers`` string into (label, name, overrides) triples."""
    entries: list[tuple[str, str, dict[str, Any]]] = []
    for raw in _split_top(text):
        token = raw.strip()
        if not token:
            raise BenchError(f"--optimizers {text!r}: empty entry (two commas in a row?)")
        head, rest = _head(token)
        if "=" in head and not rest:
            if not entries:
                raise BenchError(f"--optimizers {text!r}: '{token}' comes before any optimizer name")
            assignment = token
        else:
            name = head.strip() if sources.is_reference(head.strip()) else head.strip().lower()
            label = head.strip().rpartition(":")[2].lower() if sources.is_reference(name) else name
            entries.append((label, name, {}))
            if not rest:
                continue
            assignment = rest
        key, eq, value = assignment.partition("=")
        key = key.strip()
        if not eq or not key:
            raise BenchError(f"--optimizers {text!r}: expected key=value, got '{assignment}'")
        label, name, params = entries[-1]
        if key == "label":
            entries[-1] = (value.strip(), name, params)
        else:
            params[key] = _literal(value.strip())
    return entries


def merge_inline(base: tuple[OptimizerSpec, ...], text: str) -> tuple[OptimizerSpec, ...]:
    """Select and override the experiment's optimizers from an ``--optimizers`` string.

    An optimizer the experiment defines keeps its hyper-parameters (inline values win);
    any other starts from its class's defaults.
    """
    by_label = {o.label: o for o in base}
    chosen: list[OptimizerSpec] = []
    for label, name, overrides in parse_inline(text):
        # `adam:label=adam_fast,...` starts from the experiment's adam settings.
        known = by_label.get(label) or by_label.get(name)
        spec = known or OptimizerSpec(label=label, name=name)
        chosen.append(with_params(spec, overrides, label, "--optimizers"))
    return tuple(chosen)


def with_params(spec: OptimizerSpec, overrides: dict[str, Any], label: str, where: str) -> OptimizerSpec:
    """``spec`` renamed to ``label`` with ``overrides`` applied: ``KEY``, ``generator.KEY`` /
    ``discriminator.KEY`` (one network), ``learning_rate.ARG`` (one argument of a schedule; with a network in
    front for one network's)."""
    params, nets = dict(spec.params), {net: dict(getattr(spec, net)) for net in NETWORKS}
    for key, value in overrides.items():
        parts = key.split(".")
        target = params
        if parts[0] in NETWORKS and len(parts) > 1:
            target, parts = nets[parts[0]], parts[1:]
        elif len(parts) > 1 and parts[0] not in params and parts[0] != "learning_rate":
            raise BenchError(f"{where}: '{key}': only generator.KEY, discriminator.KEY or a schedule's "
                             "learning_rate.ARG may be dotted")
        if len(parts) == 1:
            target[parts[0]] = value
        elif len(parts) == 2:
            current = target.get(parts[0], params.get(parts[0]))
            if not (isinstance(current, dict) and SCHEDULE_KEY in current):
                raise BenchError(f"{where}: '{key}': {parts[0]} is not a schedule ({{ schedule = \"...\", ... }})")
            target[parts[0]] = {k: v for k, v in {**current, parts[1]: value}.items() if k != "source"} | (
                {"source": current["source"]} if "source" in current else {})
        else:
            raise BenchError(f"{where}: '{key}': too many dots")
    return replace(spec, label=label, params=params, **nets)


# ------------------------------------------------------------------ checks and instances


def validate(specs: tuple[OptimizerSpec, ...]) -> None:
    """Fail before any training starts on an unknown name or class, a label, a hyper-parameter or a constructor
    that refuses its values (specs resolved: bench.model.optimizers.resolve)."""
    labels = set()
    for spec in specs:
        if not _LABEL_RE.match(spec.label):
            raise BenchError(f"optimizer label '{spec.label}': use letters, digits, '_', '-' and '.' only")
        if spec.label in labels:
            raise BenchError(
                f"optimizer '{spec.label}' listed twice; name the second with label=..., "
                f"e.g. {spec.name}:label={spec.label}_2,learning_rate=..."
            )
        labels.add(spec.label)
        cls = optimizer_class(spec)
        accepted = hyperparameters(cls)
        for net in NETWORKS:
            for key, value in params_for(spec, net).items():
                if key not in accepted:
                    hint = " (Keras 3 calls it 'learning_rate')" if key == "lr" else suggest(key, accepted)
                    raise BenchError(f"optimizer '{spec.label}' ({_shown(spec)}): unknown hyper-parameter '{key}'{hint}")
                if key == "name":  # Keras's object name: it reaches variable paths, and label names a run
                    raise BenchError(f"optimizer '{spec.label}': 'name' is not a hyper-parameter; "
                                     "label=NAME names a run")
                if isinstance(value, dict) and SCHEDULE_KEY in value:
                    _schedule(value, _what(spec), key)
                else:
                    _check_number(_what(spec), key, value)
        for net in NETWORKS:  # catches out-of-range values, e.g. a negative rho; and a user constructor that raises
            build(spec, net)


def params_for(spec: OptimizerSpec, network: str) -> dict[str, Any]:
    return spec.params_for(network)


def _shown(spec: OptimizerSpec) -> str:
    return f"{spec.source['where']}:{spec.source['cls']}" if spec.source else spec.name


def check_sweep_space(specs: tuple[OptimizerSpec, ...], sw: SweepConfig, where: str) -> None:
    """Every key of a sweep's search spaces is a hyper-parameter of its optimizer (or an argument of its
    schedule), by the class's own signature."""
    by_label = {s.label: s for s in specs}
    for label, dims in sw.space.items():
        spec = by_label[label]
        accepted = hyperparameters_of(spec)
        for d in dims:
            parts = d.key.split(".")
            if parts[0] in NETWORKS and len(parts) > 1:
                parts = parts[1:]
            if parts[0] not in accepted:
                raise BenchError(f"{where}.space.{label}.{d.key}: {_shown(spec)} has no hyper-parameter '{parts[0]}'"
                                 f"{suggest(parts[0], accepted)}")
            if len(parts) == 2:
                value = spec.params.get(parts[0])
                if not (isinstance(value, dict) and SCHEDULE_KEY in value):
                    raise BenchError(f"{where}.space.{label}.{d.key}: {parts[0]} is not a schedule in the experiment")
                cls = schedule_class(value, _what(spec))
                args = [p for p in list(inspect.signature(cls.__init__).parameters)[1:]]
                if parts[1] not in args:
                    raise BenchError(f"{where}.space.{label}.{d.key}: {cls.__name__} has no argument '{parts[1]}'"
                                     f"{suggest(parts[1], args)}")


def build(spec: OptimizerSpec, network: str):
    """A fresh optimizer instance for one network (Keras 3 cannot share one between models)."""
    cls = optimizer_class(spec)
    params = {k: (_schedule(v, _what(spec), k) if isinstance(v, dict) and SCHEDULE_KEY in v else v)
              for k, v in params_for(spec, network).items()}
    try:
        # a fixed name: Keras would number instances (adam_1, adam_7, ...) by how many a process made, and
        # the name reaches the compiled step, whose persistent-cache key must be the same in every process
        return cls(**params, name=f"{network}_optimizer")
    except Exception as e:  # noqa: BLE001 - the constructor refusing the user's values, whatever it raises
        where = sources.error_in(source_of(dict(spec.source)), e) if spec.source else \
            f"{first_line(e) or type(e).__name__}"
        raise BenchError(f"optimizer '{spec.label}' ({_shown(spec)}) with {params_for(spec, network)}: {where}") from None


def describe(spec: OptimizerSpec) -> dict[str, Any]:
    """Effective hyper-parameters per network, the class's defaults filled in (for the manifest); a user's class
    also says where it comes from and its source's SHA-256."""
    defaults = {k: v for k, v in hyperparameters_of(spec).items() if isinstance(v, (int, float, str, bool, type(None)))}
    out: dict[str, Any] = {net: {**defaults, **params_for(spec, net)} for net in NETWORKS}
    if spec.source:
        out["class"] = f"{spec.source['where']}:{spec.source['cls']}"
        out["source_sha256"] = spec.source["sha256"]
    return out


def updates_per_iteration(update: str, d_steps: int, network: str) -> int:
    """How many times a network's optimizer applies per iteration (a schedule's step counts those): D twice per
    D update under the alternating rule (real, then fake), once under simultaneous; both twice under
    extragradient (the extrapolation and the step)."""
    if update == "extragradient":
        return 2
    if update == "simultaneous":
        return 1
    return 2 * d_steps if network == "discriminator" else 1


def learning_rate_table(specs: tuple[OptimizerSpec, ...], steps: int, update: str, d_steps: int,
                        points: int = 400) -> list[tuple[str, str, int, float]]:
    """(optimizer, network, iteration, learning rate at its first update) for every optimizer with a schedule, at
    up to ``points`` iterations: what the report draws."""
    import numpy as np

    its = sorted({int(x) for x in np.linspace(1, steps, min(points, steps)).round()})
    rows = []
    for spec in specs:
        for net in NETWORKS:
            k = updates_per_iteration(update, d_steps, net)
            rates = learning_rates(spec, net, [(t - 1) * k for t in its])
            if rates is not None:
                rows += [(spec.label, net, t, r) for t, r in zip(its, rates, strict=True)]
    return rows


def learning_rates(spec: OptimizerSpec, network: str, updates: list[int]) -> list[float] | None:
    """The learning rate a network's optimizer uses at each of its update counts (None: a constant rate)."""
    value = params_for(spec, network).get("learning_rate")
    if not (isinstance(value, dict) and SCHEDULE_KEY in value):
        return None
    schedule = _schedule(value, _what(spec), "learning_rate")
    import numpy as np

    out = np.asarray(schedule(np.asarray(updates, np.int64)), dtype=float) if updates else np.array([])
    if out.shape != (len(updates),):  # a schedule that does not take a vector of steps: one at a time
        out = np.array([float(schedule(u)) for u in updates])
    return [float(x) if math.isfinite(x) else math.nan for x in out]


def _records(spec: OptimizerSpec) -> list[tuple[str, dict]]:
    """(what, source record) of a spec's class and of its schedules."""
    out = [(_what(spec), dict(spec.source))] if spec.source else []
    for table in (spec.params, spec.generator, spec.discriminator):
        for key, value in table.items():
            if isinstance(value, dict) and isinstance(value.get("source"), dict):
                out.append((f"{_what(spec)}'s {key} schedule", value["source"]))
    return out


def check_unchanged(specs: tuple[OptimizerSpec, ...]) -> None:
    """Refuse to continue a run whose user code changed since it started (a resume would train half of it with
    other code): each file or module read again and its SHA-256 compared with the recorded one."""
    for spec in specs:
        for what, rec in _records(spec):
            if rec.get("kind") == "notebook":
                sources.load(source_of(rec), what)  # only in the process that defined it: said so otherwise
                continue
            now = sources.from_reference(f"{rec['where']}:{rec['cls']}", what)
            if now.sha256 != rec["sha256"]:
                raise BenchError(f"{what}: {rec['where']} changed since the run started (SHA-256 {rec['sha256'][:12]}... "
                                 f"then, {now.sha256[:12]}... now); resuming would mix two versions of the code: start "
                                 "a new run, or restore the file")


def source_files(specs: tuple[OptimizerSpec, ...]) -> dict[str, str]:
    """file name -> source text of every user class a run trains with: kept in the run folder (optimizers/)."""
    out = {}
    for spec in specs:
        for what, rec in _records(spec):
            key = "" if what == _what(spec) else "." + what.rsplit("'s ", 1)[1].split()[0]
            out[f"{spec.label}{key}.py"] = rec["text"]
    return out


def sources_sha(specs: tuple[OptimizerSpec, ...]) -> str:
    """Every user source of the optimizers (and their schedules) as one digest ("" for built-ins only): what the
    persistent XLA cache adds to its key, so that a step compiled from other code is never served."""
    import hashlib
    import json

    shas = sorted(set(re.findall(r'"sha256": "([0-9a-f]{64})"', json.dumps([spec.source for spec in specs] +
                                                                            [spec.params for spec in specs] +
                                                                            [spec.generator for spec in specs] +
                                                                            [spec.discriminator for spec in specs],
                                                                            default=str))))
    return hashlib.sha256(",".join(shas).encode()).hexdigest()[:16] if shas else ""
