"""Training recipes built on ``fit`` (chapter 12): the course's pretrained image encoder (cached) and the
label-budget experiment (scratch vs linear probe vs fine-tuning vs discriminative learning rates).

They sit above the engine, beside ``analysis`` (where chapter 9's ``compare_fusions`` lives): the packages
below the engine (``transfer``, ``multitask``, ``crossmodal``) hold the pieces — losses, callbacks, param
groups — and never import it.
"""

from mmcourse.recipes.budget import budget_curve, finetune, plot_budget_curve, summarise
from mmcourse.recipes.pretraining import WorldPretraining, world_pretrained_encoder

__all__ = ["WorldPretraining", "budget_curve", "finetune", "plot_budget_curve", "summarise",
           "world_pretrained_encoder"]
