"""Data for the course: the synthetic multimodal world, text/audio pipelines and real-dataset loaders.

Chapter 00 introduces all of it; every later chapter trains on ``world_splits(...)``. Importing this
package generates nothing and downloads nothing.
"""

from mmcourse.data.avdigits import load_avdigits
from mmcourse.data.dataset import MultimodalDataset, collate_batches, concat_datasets
from mmcourse.data.digits import load_digits_dataset
from mmcourse.data.normalize import Standardizer, per_example_standardize, standardize_datasets
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

__all__ = ["MODALITIES", "SPREADS", "MultimodalDataset", "Standardizer", "Vocab", "WorldConfig", "WorldSplits",
           "collate_batches", "concat_datasets", "load_avdigits", "load_digits_dataset", "make_world",
           "per_example_standardize", "standardize_datasets", "world_classes", "world_splits"]
