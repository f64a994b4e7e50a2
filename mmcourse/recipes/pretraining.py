"""The course's own pretrained image encoder: a ``SmallCNN`` trained with ``fit`` on part of a source world,
cached so notebooks share it (chapter 12).

Chapter 12 transfers it — trained to tell **colour and size** on one world — to the **shape** or **size** task
of another world, with few labels. It is always available (no download): the first notebook that asks builds
it and caches its weights (``mmcourse.io.cached``: a file lock and an atomic write, so notebooks running in
parallel build it once and never read half a file; a damaged cache file is named and rebuilt).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

from mmcourse.encoders.image import SmallCNN
from mmcourse.engine import fit
from mmcourse.io import cache_dir, cached
from mmcourse.models import ModelSpec, build_model

VERSION = 3  # bump when the recipe changes, so stale caches are not reused (2: trained by fit; 3: pooling head)


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
    grid: int = 1  # SmallCNN's pooling grid: global average pooling, position-free features

    def key(self) -> str:
        parts = [f"{k}={'+'.join(v) if isinstance(v, tuple) else v}" for k, v in asdict(self).items()]
        return f"smallcnn-v{VERSION}-" + "-".join(parts)


def _pretrain(recipe: WorldPretraining, device: torch.device) -> dict[str, torch.Tensor]:
    """Train the recipe's encoder (with heads for its tasks) and return the encoder's weights on the CPU."""
    from mmcourse.data import world_splits

    splits = world_splits(recipe.n_train, 1, 1, seed=recipe.seed, device=device, modalities=("image",))
    train = splits.train.select(tasks=list(recipe.tasks))
    with torch.random.fork_rng(devices=[]):  # the recipe's seed decides the weights; callers' RNG untouched
        torch.manual_seed(recipe.seed)
        encoder = SmallCNN(recipe.out_dim, width=recipe.width, grid=recipe.grid)
        model = build_model(ModelSpec(classes={t: train.num_classes(t) for t in recipe.tasks}), {"image": encoder})
        fit(model, train, epochs=recipe.epochs, lr=recipe.lr, batch_size=recipe.batch_size, device=device,
            seed=recipe.seed, progress=False)
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
    encoder = SmallCNN(recipe.out_dim, width=recipe.width, grid=recipe.grid)
    # a cached file that does not load, or whose weights do not fit the encoder, is named and rebuilt
    state = cached(path, lambda: _pretrain(recipe, device), check=encoder.load_state_dict)
    encoder.load_state_dict(state)
    return encoder.to(device)
