"""Transfer learning (chapter 12): freeze/unfreeze, feature extraction and linear probes, discriminative
learning rates and gradual unfreezing (as ``fit`` callbacks), loading checkpoints across architectures,
pretrained sources, and the three kinds of transfer (parameter, structure, feature). Importing loads no
weights. The experiments that train (fine-tuning across label budgets, the course's pretrained encoder) are
in ``mmcourse.recipes``, above the engine."""

from mmcourse.transfer.checkpoints import LoadReport, load_pretrained
from mmcourse.transfer.finetune import GradualUnfreezing, discriminative_param_groups
from mmcourse.transfer.freeze import (
    FreezeBatchNorm,
    count_parameters,
    freeze,
    select_parameters,
    set_batchnorm_eval,
    trainable_names,
    unfreeze,
)
from mmcourse.transfer.kinds import FrozenFeatures, feature_transfer, parameter_transfer, structure_transfer
from mmcourse.transfer.probe import LinearProbe, extract_features, labels_per_class, linear_probe

__all__ = ["FreezeBatchNorm", "FrozenFeatures", "GradualUnfreezing", "LinearProbe", "LoadReport",
           "count_parameters", "discriminative_param_groups", "extract_features", "feature_transfer", "freeze",
           "labels_per_class", "linear_probe", "load_pretrained", "parameter_transfer", "select_parameters",
           "set_batchnorm_eval", "structure_transfer", "trainable_names", "unfreeze"]
