"""Where pretrained encoders come from: MiniLM (offline), torchvision ImageNet ResNets (online), and an image
encoder the course pretrains itself on one part of the synthetic world, cached so notebooks share it.

Chapter 11 transfers the course's own encoder — trained to tell **colour and size** on one world — to the
**shape** task of another world, with few shape labels. It is always available (no download): the first
notebook that asks builds it and caches its weights (``mmcourse.io.cached``: a file lock and an atomic write,
so notebooks running in parallel build it once and never read half a file).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn

from mmcourse.encoders.image import SmallCNN
from mmcourse.io import cache_dir, cached

VERSION = 1  # bump when the recipe changes, so stale caches are not reused


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


@dataclass(frozen=True)
class WorldPretraining:
    """The recipe of the course's own pretrained image encoder (plain values: part of the cache key)."""

    tasks: tuple[str, ...] = ("color", "size")
    n_train: int = 4000
    epochs: int = 4
    width: int = 16
    out_dim: int = 64
    lr: float = 3e-3
    batch_size: int = 128
    seed: int = 1000  # a different world from the chapters' target worlds (seed 0, 1, …)

    def key(self) -> str:
        parts = [f"{k}={'+'.join(v) if isinstance(v, tuple) else v}" for k, v in asdict(self).items()]
        return f"smallcnn-v{VERSION}-" + "-".join(parts)


def _pretrain(recipe: WorldPretraining, device: torch.device) -> dict[str, torch.Tensor]:
    from mmcourse.data import world_splits
    from mmcourse.multitask import fit_multitask, shared_trunk_model

    splits = world_splits(recipe.n_train, 1, 1, seed=recipe.seed, device=device, modalities=("image",))
    train = splits.train.select(tasks=list(recipe.tasks))
    with torch.random.fork_rng(devices=[]):  # the recipe's seed decides the weights; callers' RNG untouched
        torch.manual_seed(recipe.seed)
        encoder = SmallCNN(width=recipe.width, out_dim=recipe.out_dim)
        model = shared_trunk_model({"image": encoder}, {t: train.num_classes(t) for t in recipe.tasks})
        fit_multitask(model, train, epochs=recipe.epochs, lr=recipe.lr, batch_size=recipe.batch_size,
                      device=device, seed=recipe.seed)
    return {k: v.detach().cpu() for k, v in encoder.state_dict().items()}


def world_pretrained_encoder(recipe: WorldPretraining | None = None, *, tasks: Sequence[str] | None = None,
                             device: torch.device | str | None = None) -> SmallCNN:
    """A ``SmallCNN`` pretrained on ``recipe.tasks`` of the image modality of a source world (cached).

    The weights are built once per recipe and stored in ``cache_dir("pretrained")``; later calls (and other
    notebooks, even at the same time) load them.
    """
    recipe = recipe or WorldPretraining()
    if tasks is not None:
        recipe = WorldPretraining(**{**asdict(recipe), "tasks": tuple(tasks)})
    if device is None:
        from mmcourse.runtime import pick_device

        device = pick_device()
    device = torch.device(device)
    path = cache_dir("pretrained") / f"{recipe.key()}.pt"
    state = cached(path, lambda: _pretrain(recipe, device))
    encoder = SmallCNN(width=recipe.width, out_dim=recipe.out_dim)
    encoder.load_state_dict(state)
    return encoder.to(device)
