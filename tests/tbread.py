"""TensorBoard event files read back with TensorBoard's own reader (no code of bench's)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def accumulator(folder: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def scalars(folder: Path) -> dict[str, pd.DataFrame]:
    """tag -> DataFrame(step, value) in the order written."""
    acc = accumulator(folder)
    return {tag: pd.DataFrame([(e.step, e.value) for e in acc.Scalars(tag)], columns=["step", "value"])
            for tag in acc.Tags()["scalars"]}


def assert_scalars_equal_csv(folder: Path) -> None:
    """Every CSV column and every quality metric is a scalar with exactly the CSV's steps, and its values
    are the CSV's rounded to float32 (TensorBoard stores simple values as float32)."""
    events = scalars(folder)
    metrics = pd.read_csv(folder / "metrics.csv")
    columns = [c for c in metrics.columns if c not in ("optimizer", "seed", "step", "status")]
    expected = {("time/" if c.endswith("_seconds") else "train/") + c: metrics[["step", c]] for c in columns}
    if (folder / "quality.csv").exists():
        quality = pd.read_csv(folder / "quality.csv")
        for metric, rows in quality.groupby("metric", sort=False):
            expected[f"quality/{metric}"] = rows[["step", "value"]]
    assert set(events) == set(expected), set(events) ^ set(expected)
    for tag, want in expected.items():
        got = events[tag]
        assert got.step.tolist() == want.iloc[:, 0].tolist(), tag  # each step once, none lost
        np.testing.assert_array_equal(got.value.to_numpy(np.float32), want.iloc[:, 1].to_numpy(np.float32), tag)
