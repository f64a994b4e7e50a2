"""Exact-attribute accuracy of generated captions (chapter 10): does a caption name the right shape, colour, size?

A caption counts as right for an attribute when it names the true class (any synonym) and no other class of
that attribute. Word lists come from the synthetic world's caption lexicon; everything is one vectorised
comparison of the caption ids against a ``[C, S]`` table of synonym ids.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from mmcourse.data.captions import COLOR_WORDS, SHAPE_WORDS, SIZE_WORDS
from mmcourse.data.text import Vocab

WORLD_ATTRIBUTE_WORDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "shape": SHAPE_WORDS, "color": COLOR_WORDS, "size": SIZE_WORDS}


def attribute_word_ids(vocab: Vocab, words: Mapping[str, Sequence[Sequence[str]]] | None = None
                       ) -> dict[str, Tensor]:
    """``{attribute: int64 [C, S]}``: ids of the words naming each class (``-1`` fills short rows).

    Words missing from ``vocab`` are skipped; a class with no known word at all raises ``ValueError``.
    """
    words = WORLD_ATTRIBUTE_WORDS if words is None else words
    out = {}
    for attr, classes in words.items():
        ids = [[vocab.stoi[w] for w in syn if w in vocab] for syn in classes]
        empty = [i for i, row in enumerate(ids) if not row]
        if empty:
            raise ValueError(f"{attr} class {empty[0]} ({list(classes[empty[0]])}) has no word in the vocabulary")
        width = max(len(r) for r in ids)
        out[attr] = torch.tensor([r + [-1] * (width - len(r)) for r in ids], dtype=torch.int64)
    return out


def mentions(captions: Tensor, table: Tensor) -> Tensor:
    """Bool ``[N, C]``: caption ``n`` contains a word of class ``c`` (``table`` is ``[C, S]`` of ids)."""
    table = table.to(captions.device)
    hits = captions[:, :, None, None] == table[None, None]  # [N, L, C, S]
    return hits.any(-1).any(1)


def attribute_accuracy(captions: Tensor, targets: Mapping[str, Tensor], table: Mapping[str, Tensor]
                       ) -> dict[str, float]:
    """Per attribute the fraction of captions naming exactly the right class, plus ``"all"`` (all of them).

    Args:
        captions: ``[N, L]`` generated token ids. targets: ``{attribute: [N]}`` true classes.
        table: from :func:`attribute_word_ids`; only attributes present in both are scored.
    """
    attrs = [a for a in table if a in targets]
    if not attrs:
        raise ValueError(f"no attribute to score: targets have {sorted(targets)}, the word table {sorted(table)}")
    right = {}
    for a in attrs:
        y = targets[a].to(captions.device)
        if y.shape != (captions.shape[0],):
            raise ValueError(f"targets[{a!r}] must be [{captions.shape[0]}], got {list(y.shape)}")
        m = mentions(captions, table[a])  # [N, C]
        right[a] = m.gather(1, y[:, None]).squeeze(1) & (m.sum(1) == 1)
    right["all"] = torch.stack([right[a] for a in attrs]).all(0)
    values = torch.stack([r.float().mean() for r in right.values()]).tolist()  # one host sync
    return dict(zip(right, values))
