"""Zero-shot classification (chapter 10): class names turned into prompts, embedded by the text tower.

No image (or audio) label is used: each class becomes one or more sentences ("a photo of a circle"), the
text tower embeds them, and an image is given the class whose prompt embedding is most similar to its own
embedding in the shared space. Several templates per class are averaged (prompt ensembling).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from string import Formatter

import torch
import torch.nn.functional as F
from torch import Tensor, nn

TextEmbedder = Callable[[list[str]], Tensor]


def fill_template(template: str, name: str) -> str:
    """``template`` with its one placeholder (``{}`` or a named one like ``{shape}``) replaced by ``name``."""
    fields = {f for _, f, _, _ in Formatter().parse(template) if f is not None}
    if len(fields) != 1:
        raise ValueError(f"a prompt template needs exactly one placeholder such as '{{}}' or '{{shape}}', "
                         f"got {template!r} with {sorted(fields) or 'none'}")
    field = fields.pop()
    return template.format(name) if field == "" else template.format(**{field: name})


def class_prompts(classes: Sequence[str], template: str = "a photo of a {}") -> list[str]:
    """One prompt per class name, e.g. ``["a photo of a circle", "a photo of a square", ...]``."""
    if len(classes) == 0:
        raise ValueError("class_prompts got an empty list of class names; pass e.g. data.classes['shape']")
    return [fill_template(template, c) for c in classes]


class ZeroShotClassifier(nn.Module):
    """Logits ``[B, C]`` = cosine similarity of embeddings ``[B, D]`` with fixed class embeddings ``[C, D]``.

    Build it from prompts with :meth:`from_prompts`; nothing in it is trained.
    """

    def __init__(self, class_embeddings: Tensor, scale: float = 1.0):
        super().__init__()
        if class_embeddings.dim() != 2 or class_embeddings.shape[0] == 0:
            raise ValueError(f"class_embeddings must be [C, D] with C >= 1, got {list(class_embeddings.shape)}")
        self.register_buffer("weights", F.normalize(class_embeddings.detach().float(), dim=-1))  # [C, D]
        self.scale = scale

    @classmethod
    @torch.no_grad()
    def from_prompts(cls, embed_text: TextEmbedder, classes: Sequence[str],
                     templates: Sequence[str] = ("a photo of a {}",)) -> ZeroShotClassifier:
        """Embed ``template × class`` prompts with ``embed_text`` (list of str -> ``[n, D]``) and average the
        unit-length embeddings of each class over the templates."""
        if len(classes) == 0:
            raise ValueError("no class names given: zero-shot classification needs at least one class prompt")
        if len(templates) == 0:
            raise ValueError("no prompt templates given; use e.g. templates=('a photo of a {}',)")
        per_template = []
        for t in templates:
            prompts = class_prompts(classes, t)
            z = embed_text(prompts)
            if z.dim() != 2 or z.shape[0] != len(prompts):
                raise ValueError(f"embed_text must map {len(prompts)} prompts to [{len(prompts)}, D], "
                                 f"got {list(z.shape)}")
            per_template.append(F.normalize(z.float(), dim=-1))
        return cls(torch.stack(per_template).mean(0))  # [C, D]

    @property
    def n_classes(self) -> int:
        return int(self.weights.shape[0])

    def forward(self, z: Tensor) -> Tensor:
        if z.dim() != 2 or z.shape[1] != self.weights.shape[1]:
            raise ValueError(f"embeddings must be [B, {self.weights.shape[1]}] (the prompts' space), "
                             f"got {list(z.shape)}")
        return self.scale * F.normalize(z.float(), dim=-1) @ self.weights.to(z.device).T  # [B, C]

    @torch.no_grad()
    def accuracy(self, z: Tensor, labels: Tensor) -> float:
        """Fraction of rows whose best-matching prompt is their class (labels are used only to score)."""
        if labels.shape != (z.shape[0],):
            raise ValueError(f"labels must be [{z.shape[0]}], got {list(labels.shape)}")
        return float((self(z).argmax(-1) == labels.to(z.device)).float().mean())
