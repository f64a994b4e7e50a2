"""The training engine: ``fit`` and ``evaluate`` for the multimodal contract, checkpoints, callbacks,
distributed data parallel and benchmarks (chapters 4–12; chapter 12 takes it apart)."""

from mmcourse.engine.batches import mask_modalities, modality_dropout
from mmcourse.engine.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from mmcourse.engine.evaluation import evaluate, task_stats
from mmcourse.engine.history import Callback, EarlyStopping, History, TrainState
from mmcourse.engine.loop import fit

__all__ = ["fit", "evaluate", "History", "Callback", "EarlyStopping", "TrainState", "save_checkpoint",
           "load_checkpoint", "CheckpointError", "modality_dropout", "mask_modalities", "task_stats"]
