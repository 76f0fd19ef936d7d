"""`bench list`: the experiments, datasets and optimizers bench knows."""

from __future__ import annotations

from bench import data
from bench.core import config
from bench.model import optimizers


def catalog_text() -> str:
    lines = ["experiments (bench run NAME):"]
    for name in config.experiment_names():
        raw = config.load_raw(config.EXPERIMENTS_DIR / f"{name}.toml")
        tunable = "  (has a [sweep]: bench sweep " + name + ")" if raw.get("sweep") else ""
        lines.append(f"  {name:<12} {raw.get('description', '')}{tunable}")
    lines.append("\ndatasets ([data] source = NAME, or --dataset NAME):")
    lines += [f"  {name:<12} {desc}" for name, (_, desc) in data.DATASETS.items()]
    lines.append("\noptimizers (--optimizers NAME[:key=value,...]); hyper-parameters and Keras defaults:")
    for name in optimizers.registry():
        hp = optimizers.hyperparameters(name)
        shown = ", ".join(f"{k}={v}" for k, v in hp.items() if k not in optimizers.COMMON_HYPERPARAMETERS)
        lines.append(f"  {name:<12} {shown}")
    lines.append(f"  (all also take: {', '.join(sorted(optimizers.COMMON_HYPERPARAMETERS))})")
    return "\n".join(lines)
