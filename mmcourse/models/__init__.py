"""Models of the multimodal contract (chapters 5–13): ``MultimodalModel`` and ``LateFusionModel``, and the
variants as data with one builder, ``build_model(ModelSpec(...))``."""

from mmcourse.batch import MODALITIES, Batch
from mmcourse.layers.params import count_parameters
from mmcourse.models.builder import ModelSpec, build_encoders, build_model, task_heads
from mmcourse.models.multimodal import LateFusionModel, MultimodalModel

__all__ = ["MODALITIES", "Batch", "LateFusionModel", "ModelSpec", "MultimodalModel", "build_encoders", "build_model",
           "count_parameters", "task_heads"]
