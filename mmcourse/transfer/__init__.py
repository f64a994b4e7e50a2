"""Transfer learning (chapter 11): freeze/unfreeze, feature extraction and linear probes, fine-tuning with
discriminative learning rates and gradual unfreezing, loading checkpoints across architectures, pretrained
sources, and the three kinds of transfer (parameter, structure, feature). Importing loads no weights."""

from mmcourse.transfer.checkpoints import LoadReport, load_pretrained
from mmcourse.transfer.finetune import GradualUnfreezing, discriminative_param_groups, finetune
from mmcourse.transfer.freeze import count_parameters, freeze, select_parameters, trainable_names, unfreeze
from mmcourse.transfer.kinds import FrozenFeatures, feature_transfer, parameter_transfer, structure_transfer
from mmcourse.transfer.probe import LinearProbe, extract_features, labels_per_class, linear_probe

__all__ = ["FrozenFeatures", "GradualUnfreezing", "LinearProbe", "LoadReport", "count_parameters",
           "discriminative_param_groups", "extract_features", "feature_transfer", "finetune", "freeze",
           "labels_per_class", "linear_probe", "load_pretrained", "parameter_transfer", "select_parameters",
           "structure_transfer", "trainable_names", "unfreeze"]
