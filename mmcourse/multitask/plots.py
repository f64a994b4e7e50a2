"""``plot_task_weights``: the loss weight of every task per epoch, from a ``fit`` history (chapter 11)."""

from __future__ import annotations

import math
from typing import Any

from mmcourse.palette import PALETTE

PREFIXES = ("train_weight/", "weight/")


def plot_task_weights(history: Any, ax: Any = None):
    """Plot ``train_weight/<task>`` per epoch (one Okabe–Ito colour per task). Returns the axes."""
    import matplotlib.pyplot as plt

    rows = history.rows
    keys = sorted({k for r in rows for k in r if k.startswith(PREFIXES)})
    if not keys:
        raise KeyError("history has no train_weight/<task> columns; train with fit(..., loss=a LossWeighting)")
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.2))
    epochs = [r["epoch"] for r in rows]
    for i, k in enumerate(keys):
        ax.plot(epochs, [r.get(k, math.nan) for r in rows], marker="o", color=PALETTE[i % len(PALETTE)],
                label=k.split("/", 1)[1])
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss weight")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax
