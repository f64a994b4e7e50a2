"""Encoders: one modality tensor → ``[B, D]`` (``forward``), and ``tokens(x) → [B, L, D]`` where the input has
positions (chapters 5–8; used by fusion, cross-modal and transfer chapters)."""

from mmcourse.encoders.audio import AudioCNN
from mmcourse.encoders.augmented import Augmented
from mmcourse.encoders.image import SmallCNN
from mmcourse.encoders.pooling import BandPool, GridPool
from mmcourse.encoders.pretrained_text import MiniLMTextEncoder
from mmcourse.encoders.resnet import (
    ResNet,
    ResNetSpec,
    StageSpec,
    resnet18_cifar,
    resnet20,
    resnet56,
    torchvision_resnet,
)
from mmcourse.encoders.text import BertTextEncoder, GRUTextEncoder, LSTMTextEncoder, TransformerTextEncoder
from mmcourse.encoders.video import Video2Plus1D, Video3DCNN

__all__ = [
    "AudioCNN", "Augmented", "BandPool", "GridPool", "SmallCNN", "MiniLMTextEncoder", "ResNet", "ResNetSpec",
    "StageSpec", "resnet18_cifar", "resnet20", "resnet56", "torchvision_resnet", "BertTextEncoder", "GRUTextEncoder",
    "LSTMTextEncoder", "TransformerTextEncoder", "Video2Plus1D", "Video3DCNN",
]
