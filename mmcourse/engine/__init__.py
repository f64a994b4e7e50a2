"""The training engine: ``fit`` and ``evaluate`` for the multimodal contract, its config, callbacks,
checkpoints, distributed data parallel and benchmarks (chapters 5–13; chapter 13 takes ``fit`` apart)."""

from mmcourse.engine.batches import mask_modalities, modality_dropout
from mmcourse.engine.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from mmcourse.engine.checks import NonFiniteError
from mmcourse.engine.config import FitConfig
from mmcourse.engine.evaluation import evaluate, task_stats
from mmcourse.engine.history import Callback, EarlyStopping, History, TrainState
from mmcourse.engine.loop import fit
from mmcourse.losses import TaskCrossEntropy

__all__ = ["fit", "FitConfig", "evaluate", "History", "Callback", "EarlyStopping", "TrainState", "save_checkpoint",
           "load_checkpoint", "CheckpointError", "NonFiniteError", "TaskCrossEntropy", "modality_dropout",
           "mask_modalities", "task_stats"]
