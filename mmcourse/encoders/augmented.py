"""``Augmented``: an encoder that augments its input while training, like dropout (chapters 8 and 9).

Data augmentation usually lives in the data pipeline; here it can also live in the model, as a layer that acts
only in ``train()`` mode — so any training loop (``mmcourse.engine.fit``, ``compare_fusions``, your own)
augments the training batches and never the validation or test data, and a bring-your-own encoder gets it by
wrapping. The transforms are those of :mod:`mmcourse.data.augment` (``SpecAugment`` for spectrograms,
``ImageAugment`` for images), or any ``f(x, generator) -> x``. Randomness comes from torch's global generator,
which ``fit(seed=...)`` seeds.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

Transform = Callable[[Tensor, "torch.Generator | None"], Tensor]


class Augmented(nn.Module):
    """``encoder(transform(x))`` in training mode, ``encoder(x)`` in eval mode; ``tokens`` likewise.

    Example: ``Augmented(AudioCNN(64), SpecAugment(freq_width=4, time_width=6))``.

    Args:
        encoder: any encoder (``out_dim``; ``tokens`` if it has it).
        transform: ``f(x, generator) -> x`` applied to whole training batches.
    """

    def __init__(self, encoder: nn.Module, transform: Transform):
        super().__init__()
        if not callable(transform):
            raise TypeError(f"transform must be callable f(x, generator) -> x, got {type(transform).__name__}")
        self.encoder, self.transform = encoder, transform
        self.out_dim = encoder.out_dim

    def _maybe(self, x: Tensor) -> Tensor:
        return self.transform(x, None) if self.training else x

    def forward(self, x: Tensor) -> Tensor:
        return self.encoder(self._maybe(x))

    def tokens(self, x: Tensor) -> Tensor:
        if not hasattr(self.encoder, "tokens"):
            raise AttributeError(f"{type(self.encoder).__name__} has no tokens(); attention fusion needs them")
        return self.encoder.tokens(self._maybe(x))

    def extra_repr(self) -> str:
        return f"transform={self.transform!r}"
