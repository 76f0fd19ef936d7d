"""Optimizer registry: a name maps to a Keras 3 built-in optimizer class.

Every built-in Keras optimizer is available by its lower-case class name, with its
own constructor's hyper-parameters; nothing here hard-codes a list that could drift
from the installed Keras. Inline specs on the command line look like

    sgd:learning_rate=0.01,momentum=0.5,adam,adam:label=adam_fast,learning_rate=0.001

A token ``name`` or ``name:key=value`` starts an optimizer; a following ``key=value``
token adds to it. ``label=...`` names the run (to compare one optimizer under two
settings); ``generator.key=...`` / ``discriminator.key=...`` set one network only.
"""

from __future__ import annotations

import functools
import inspect
import re
import tomllib
from typing import Any

from bench.core.config import OptimizerSpec
from bench.core.errors import BenchError, first_line
from bench.core.names import NETWORKS
from bench.core.schema import suggest
from bench.core.sweep_table import SweepConfig

_NOT_TRAINING_OPTIMIZERS = {"optimizer", "lossscaleoptimizer"}
# Accepted by every Keras optimizer (the base class); `bench list` shows them once.
COMMON_HYPERPARAMETERS = frozenset({
    "weight_decay", "clipnorm", "clipvalue", "global_clipnorm", "use_ema", "ema_momentum",
    "ema_overwrite_frequency", "loss_scale_factor", "gradient_accumulation_steps", "name",
})
_LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@functools.cache
def registry() -> dict[str, type]:
    """Lower-case name -> Keras optimizer class, discovered from the installed Keras."""
    import keras

    found = {}
    for attr in dir(keras.optimizers):
        obj = getattr(keras.optimizers, attr)
        if inspect.isclass(obj) and issubclass(obj, keras.optimizers.Optimizer):
            if attr.lower() not in _NOT_TRAINING_OPTIMIZERS:
                found[attr.lower()] = obj
    return dict(sorted(found.items()))


@functools.cache
def hyperparameters(name: str) -> dict[str, Any]:
    """The constructor arguments (and defaults) an optimizer accepts."""
    sig = inspect.signature(registry()[name].__init__)
    return {
        p.name: p.default
        for p in sig.parameters.values()
        if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    }


def _literal(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_inline(text: str) -> list[tuple[str, str, dict[str, Any]]]:
    """Parse the ``--optimizers`` string into (label, name, overrides) triples."""
    entries: list[tuple[str, str, dict[str, Any]]] = []
    for raw in text.split(","):
        token = raw.strip()
        if not token:
            raise BenchError(f"--optimizers {text!r}: empty entry (two commas in a row?)")
        head, colon, rest = token.partition(":")
        if "=" in head and not colon:
            if not entries:
                raise BenchError(f"--optimizers {text!r}: '{token}' comes before any optimizer name")
            assignment = token
        else:
            entries.append((head.strip().lower(), head.strip().lower(), {}))
            if not colon:
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
    any other Keras optimizer starts from Keras's defaults.
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
    """``spec`` renamed to ``label`` with ``overrides`` applied; ``generator.KEY`` / ``discriminator.KEY``
    set one network only."""
    params, nets = dict(spec.params), {"generator": dict(spec.generator), "discriminator": dict(spec.discriminator)}
    for key, value in overrides.items():
        net, dot, sub = key.partition(".")
        if dot:
            if net not in nets:
                raise BenchError(f"{where}: '{key}': only generator.KEY or discriminator.KEY may be dotted")
            nets[net][sub] = value
        else:
            params[key] = value
    return OptimizerSpec(label=label, name=spec.name, params=params, **nets)


def validate(specs: tuple[OptimizerSpec, ...]) -> None:
    """Fail before any training starts on an unknown name, label or hyper-parameter."""
    names = registry()
    labels = set()
    for spec in specs:
        if spec.name not in names:
            raise BenchError(
                f"unknown optimizer '{spec.name}'{suggest(spec.name, names)}; known: {', '.join(names)}"
            )
        if not _LABEL_RE.match(spec.label):
            raise BenchError(f"optimizer label '{spec.label}': use letters, digits, '_', '-' and '.' only")
        if spec.label in labels:
            raise BenchError(
                f"optimizer '{spec.label}' listed twice; name the second with label=..., "
                f"e.g. {spec.name}:label={spec.name}_2,learning_rate=..."
            )
        labels.add(spec.label)
        accepted = hyperparameters(spec.name)
        for net in NETWORKS:
            for key, value in spec.params_for(net).items():
                if key not in accepted:
                    hint = " (Keras 3 calls it 'learning_rate')" if key == "lr" else suggest(key, accepted)
                    raise BenchError(f"optimizer '{spec.label}' ({spec.name}): unknown hyper-parameter '{key}'{hint}")
                if key == "name":  # Keras's object name: it reaches variable paths, and label names a run
                    raise BenchError(f"optimizer '{spec.label}': 'name' is not a hyper-parameter; "
                                     "label=NAME names a run")
                if isinstance(value, (int, float)) and not isinstance(value, bool) and not -1e300 < value < 1e300:
                    raise BenchError(f"optimizer '{spec.label}': hyper-parameter {key}={value!r} is not a finite number")
                if isinstance(value, str):
                    raise BenchError(f"optimizer '{spec.label}': hyper-parameter {key}={value!r} is not a number")
        for net in NETWORKS:  # catches out-of-range values, e.g. a negative rho
            build(spec, net)


def check_sweep_space(specs: tuple[OptimizerSpec, ...], sw: SweepConfig, where: str) -> None:
    """Every key of a sweep's search spaces is a hyper-parameter of its optimizer, by Keras's own list."""
    by_label = {s.label: s for s in specs}
    for label, dims in sw.space.items():
        spec = by_label[label]
        if spec.name not in registry():
            continue  # validate() names the unknown optimizer
        accepted = hyperparameters(spec.name)
        for d in dims:
            net, dot, sub = d.key.partition(".")
            key = sub if dot and net in NETWORKS else d.key
            if key not in accepted:
                raise BenchError(f"{where}.space.{label}.{d.key}: {spec.name} has no hyper-parameter '{key}'"
                                 f"{suggest(key, accepted)}")


def build(spec: OptimizerSpec, network: str):
    """A fresh optimizer instance for one network (Keras 3 cannot share one between models)."""
    cls = registry()[spec.name]
    params = spec.params_for(network)
    try:
        # a fixed name: Keras would number instances (adam_1, adam_7, ...) by how many a process made, and
        # the name reaches the compiled step, whose persistent-cache key must be the same in every process
        return cls(**params, name=f"{network}_optimizer")
    except Exception as e:  # noqa: BLE001 - the constructor refusing the user's values, whatever it raises
        raise BenchError(f"optimizer '{spec.label}' ({spec.name}) with {params}: {first_line(e) or type(e).__name__}") from None


def describe(spec: OptimizerSpec) -> dict[str, Any]:
    """Effective hyper-parameters per network, Keras defaults filled in (for the manifest)."""
    defaults = {k: v for k, v in hyperparameters(spec.name).items() if isinstance(v, (int, float, str, bool, type(None)))}
    return {net: {**defaults, **spec.params_for(net)} for net in NETWORKS}
