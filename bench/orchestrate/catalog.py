"""`bench list`: the experiments, datasets, optimizers, schedules, update rules and metrics bench knows."""

from __future__ import annotations

import inspect
import math

from bench import data
from bench.core import config
from bench.core.config import UPDATES
from bench.core.errors import BenchError
from bench.model import optimizers
from bench.quality.scores import INFO


def _value(v) -> str:
    """A default as a user would type it: None as "none", floats in their shortest form."""
    if v is None:
        return "none"
    if isinstance(v, float):
        return f"{v:g}" if math.isfinite(v) else str(v)
    if isinstance(v, str):
        return repr(v)
    return str(v)


def _params(hp: dict) -> str:
    return ", ".join(f"{k}={_value(v)}" for k, v in hp.items() if k not in optimizers.COMMON_HYPERPARAMETERS)


def catalog_text() -> str:
    lines = ["experiments (bench run NAME; your own: ./experiments/NAME.toml):"]
    for name, path in config.experiment_files().items():
        try:
            raw = config.load_raw(path)
        except BenchError as e:  # a broken file of the user's is listed with its problem, the rest still are
            lines.append(f"  {name:<12} cannot be used: {e}")
            continue
        tunable = "  (has a [sweep]: bench sweep " + name + ")" if raw.get("sweep") else ""
        mine = f"  [{config.USER_EXPERIMENTS}/{path.name}]" if config.is_users(path) else ""
        lines.append(f"  {name:<12} {raw.get('description', '')}{tunable}{mine}")
    lines.append("\ndatasets ([data] source = NAME, or --dataset NAME):")
    lines += [f"  {name:<12} {desc}" for name, (_, desc) in data.DATASETS.items()]
    lines.append("\noptimizers (--optimizers NAME[:key=value,...]); each with its hyper-parameters and defaults:")
    user = []
    for name, entry in optimizers.registry().items():
        if entry.kind == "keras":
            lines.append(f"  {name:<12} {_params(optimizers.hyperparameters(entry.cls))}")
        else:
            user.append((name, entry))
    lines.append(f"  (all also take: {', '.join(sorted(optimizers.COMMON_HYPERPARAMETERS - {'name'}))})")
    if user:
        lines.append("\nyour optimizers (entry points of bench.optimizers, classes of ./optimizers/):")
        for name, entry in user:
            try:
                spec = optimizers.resolve((config.OptimizerSpec(label=name, name=name),))[0]
                shown = _params(optimizers.hyperparameters_of(spec))
                where = f"{spec.source['where']}:{spec.source['cls']}"
            except BenchError as e:  # a broken file is listed with its problem, the rest still are
                shown, where = f"cannot be used: {e}", entry.ref
            lines.append(f"  {name:<12} {shown}\n  {'':<12} from {where} ({entry.kind})")
    lines.append("\n  or any class of your own: --optimizers path/to/file.py:ClassName[:key=value,...] "
                 "(or package.module:ClassName)")
    lines.append("\nlearning-rate schedules (learning_rate = { schedule = NAME, ... }):")
    for name, cls in optimizers.keras_schedules().items():
        args = [p for p in list(inspect.signature(cls.__init__).parameters.values())[1:]
                if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name != "name"]
        lines.append(f"  {name:<26} " + ", ".join(p.name if p.default is p.empty else f"{p.name}={_value(p.default)}"
                                                  for p in args))
    lines.append(f"\nupdate rules ([train] update = ...; d_steps = k for k D steps per G step): {', '.join(UPDATES)}")
    lines.append("\nsample-quality metrics (bench validate EXPERIMENT: which pass on its data):")
    lines += [f"  {name:<13} {info.about}" for name, info in INFO.items()]
    return "\n".join(lines)
