"""Multi-task learning (chapter 11): one shared trunk, one head per task, and loss weightings that are losses
for ``fit`` — fixed, uncertainty (Kendall et al., 2018) and dynamic weight average (Liu et al., 2019).

A multi-task model is the ordinary ``MultimodalModel`` with several heads (hard parameter sharing), built with
``mmcourse.models.build_model(ModelSpec(classes={...}), encoders)``. ``fit(model, data, loss=weighting)``
trains it; the weights of every epoch land in the history as ``train_weight/<task>``.
"""

from mmcourse.models.builder import task_heads
from mmcourse.multitask.plots import plot_task_weights
from mmcourse.multitask.weighting import (
    WEIGHTINGS,
    DynamicWeightAverage,
    FixedWeighting,
    LossWeighting,
    UncertaintyWeighting,
    make_weighting,
    task_losses,
)

__all__ = ["WEIGHTINGS", "DynamicWeightAverage", "FixedWeighting", "LossWeighting", "UncertaintyWeighting",
           "make_weighting", "plot_task_weights", "task_heads", "task_losses"]
