"""Data for the course: the synthetic multimodal world, text/audio pipelines and real-dataset loaders.

Chapter 00 introduces all of it; every later chapter trains on ``world_splits(...)``. Importing this
package generates nothing and downloads nothing.
"""

from mmcourse.data.dataset import MultimodalDataset, collate_batches, concat_datasets
from mmcourse.data.digits import load_digits_dataset
from mmcourse.data.text import Vocab
from mmcourse.data.world import (
    MODALITIES,
    SPREADS,
    WorldConfig,
    WorldSplits,
    make_world,
    world_classes,
    world_splits,
)

__all__ = ["MODALITIES", "SPREADS", "MultimodalDataset", "Vocab", "WorldConfig", "WorldSplits",
           "collate_batches", "concat_datasets", "load_digits_dataset", "make_world", "world_classes", "world_splits"]
