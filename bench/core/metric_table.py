"""What the training step measures (the losses and the rest of each CSV row) and how metrics are named.

The sample-quality metrics have their own home, one file each, in bench.quality.scores (their registry,
INFO, says names, directions, titles and formats).
"""

from __future__ import annotations

# What the compiled step returns for every iteration, in the order of the CSV columns.
STEP_METRICS = (
    "d_loss_real", "d_loss_fake", "g_loss",
    "d_acc_real", "d_acc_fake",   # fraction D classifies correctly
    "d_x", "d_g_z",               # mean D(x) on the real half batch, mean D(G(z)) on the fake half batch
    "d_grad_norm_real", "d_grad_norm_fake", "g_grad_norm",
)
LOSSES = STEP_METRICS[:3]
LOSS_TITLES = {"d_loss_real": "D loss on real", "d_loss_fake": "D loss on fake", "g_loss": "G loss"}


# The loss-trend summaries of `bench check` and the sweep's criteria: the mean of each quarter of
# training, the final window's mean, and the slope over the last quarter (bench.analysis.trends).
QUARTERS = 4
LOSS_SUMMARIES = (*(f"w{q + 1}" for q in range(QUARTERS)), "final", "slope")

# A verdict compares each quality metric's final value (mean of its last evaluations) and its best over
# training, and each loss's final-window mean (no direction: higher or lower, not better or worse).
LOSS_MARGIN = 0.02  # equivalence margin of the final-window losses (absolute, in nats)


def metric_key(name: str) -> str:
    """``swd`` -> ``swd.final``: a metric named alone means its final value."""
    return name if "." in name else f"{name}.final"
