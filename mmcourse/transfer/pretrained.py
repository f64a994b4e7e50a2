"""Where pretrained encoders come from: MiniLM (offline) and torchvision ImageNet ResNets (online).

Chapter 12 also uses an image encoder the course pretrains itself on one part of the synthetic world; that
one trains (with ``fit``), so it lives above the engine in ``mmcourse.recipes.pretraining``.
"""

from __future__ import annotations

import torch
from torch import nn


def minilm_text_encoder(**kwargs) -> nn.Module:
    """The frozen all-MiniLM-L6-v2 sentence encoder (``out_dim = 384``); see ``encoders/pretrained_text.py``.

    Raises:
        RuntimeError: neither the offline package nor the hub is available (the message says how to fix it).
    """
    from mmcourse.encoders.pretrained_text import MiniLMTextEncoder

    return MiniLMTextEncoder(**kwargs)


def imagenet_resnet(name: str = "resnet18", out_dim: int | None = None) -> nn.Module:
    """A torchvision ResNet with ImageNet weights (needs the internet once, or a cached file).

    Raises:
        RuntimeError: offline and the weights are not cached — with the folder to put them in.
    """
    from mmcourse.encoders.resnet import torchvision_resnet

    return torchvision_resnet(name, pretrained=True, out_dim=out_dim)


def imagenet_weights_cached(name: str = "resnet18") -> bool:
    """Whether torchvision's ImageNet weights for ``name`` are already on disk (so no download is needed)."""
    try:
        import torchvision
    except ImportError:
        return False
    from pathlib import Path

    url = torchvision.models.get_model_weights(name).DEFAULT.url
    return (Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]).exists()
