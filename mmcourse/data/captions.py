"""Captions of the synthetic world, built as token ids in one batched pass (chapter 00).

A caption is a sequence of slots: an opening ("a" / "there is a" / ...), an optional noise word, the size,
the colour, the shape, the position ("near the top" ...) and an optional closing noise word. Each slot
picks a synonym at random; the shape word is replaced by a generic word ("object") with probability
``caption_shape_dropout`` and the size/colour/position words are dropped with probability ``word_dropout``.
Captions never mention motion. Empty slots are squeezed out so the padding (id 0) sits at the end.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mmcourse.data.text import Vocab

OPENINGS = (("a",), ("there", "is", "a"), ("this", "is", "a"), ("i", "see", "a"))
SHAPE_WORDS = (("circle", "disc", "round"), ("square", "box", "block"), ("triangle", "wedge", "pyramid"),
               ("diamond", "rhombus", "lozenge"), ("cross", "plus", "cruciform"), ("ring", "hoop", "donut"),
               ("star", "pentagram", "starlet"), ("hexagon", "hex", "honeycomb"), ("bar", "stripe", "rod"),
               ("crescent", "moon", "sickle"))
GENERIC_SHAPE = ("object", "thing", "shape")
COLOR_WORDS = (("red", "crimson", "scarlet"), ("green", "emerald", "lime"), ("blue", "navy", "azure"),
               ("yellow", "golden", "lemon"), ("purple", "violet", "lilac"), ("orange", "amber", "tangerine"))
SIZE_WORDS = (("small", "tiny", "little"), ("medium", "midsize", "moderate"), ("large", "big", "huge"))
REGIONS = ("top", "bottom", "left", "right", "middle")
POSITION_PHRASES = ((("near", "the", "top"), ("at", "the", "top")),
                    (("near", "the", "bottom"), ("at", "the", "bottom")),
                    (("on", "the", "left"), ("to", "the", "left")),
                    (("on", "the", "right"), ("to", "the", "right")),
                    (("in", "the", "middle"), ("at", "the", "centre")))
NOISE_WORDS = ("really", "quite", "nice", "here", "today", "again", "indeed", "lovely", "just", "now")
MAX_CAPTION_WORDS = 3 + 1 + 1 + 1 + 1 + 3 + 1  # opening, noise, size, colour, shape, position, noise


def world_lexicon() -> Vocab:
    """Every word a world caption can use, in a fixed order (the ids the generator writes)."""
    words: list[str] = []
    groups = (OPENINGS, SHAPE_WORDS, (GENERIC_SHAPE,), COLOR_WORDS, SIZE_WORDS,
              tuple(p for region in POSITION_PHRASES for p in region), (NOISE_WORDS,))
    for group in groups:
        for entry in group:
            for w in entry:
                if w not in words:
                    words.append(w)
    return Vocab(words)


def _table(lex: Vocab, rows: tuple[tuple[str, ...], ...], device: torch.device) -> Tensor:
    """int64 ``[len(rows), width]`` of word ids, short rows padded with 0."""
    width = max(len(r) for r in rows)
    return torch.tensor([[lex.stoi[w] for w in r] + [0] * (width - len(r)) for r in rows],
                        dtype=torch.int64, device=device)


def region_of(cx: Tensor, cy: Tensor, centre: float = 15.5, middle: float = 4.0) -> Tensor:
    """Region class ``[B]`` (index into ``REGIONS``) of shape centres: the dominant offset from the middle."""
    dx, dy = cx - centre, cy - centre
    horiz = dx.abs() >= dy.abs()
    region = torch.where(horiz, torch.where(dx < 0, 2, 3), torch.where(dy < 0, 0, 1))
    return torch.where(torch.maximum(dx.abs(), dy.abs()) < middle, 4, region)


def make_captions(shape: Tensor, color: Tensor, size: Tensor, region: Tensor, *, length: int,
                  shape_dropout: float, word_dropout: float, synonyms: bool, noise_words: float,
                  gen: torch.Generator) -> Tensor:
    """Token ids ``[B, length]`` (world-lexicon ids, PAD=0 at the end) for a batch of scenes."""
    if length < MAX_CAPTION_WORDS:
        raise ValueError(f"caption length {length} is shorter than the longest world caption "
                         f"({MAX_CAPTION_WORDS} words); use caption_len >= {MAX_CAPTION_WORDS}")
    dev = shape.device
    n = shape.shape[0]
    lex = world_lexicon()
    n_syn = 3 if synonyms else 1

    def rand_int(high: int) -> Tensor:
        return torch.randint(high, (n,), generator=gen, device=dev)

    def keep(p: float) -> Tensor:
        return torch.rand(n, generator=gen, device=dev) >= p

    opening = _table(lex, OPENINGS, dev)[rand_int(len(OPENINGS))]  # [B, 3]
    shape_w = _table(lex, SHAPE_WORDS, dev)[shape, rand_int(n_syn)]
    generic = _table(lex, (GENERIC_SHAPE,), dev)[0, rand_int(n_syn)]
    shape_w = torch.where(keep(shape_dropout), shape_w, generic)
    color_w = _table(lex, COLOR_WORDS, dev)[color, rand_int(n_syn)] * keep(word_dropout)
    size_w = _table(lex, SIZE_WORDS, dev)[size, rand_int(n_syn)] * keep(word_dropout)
    pos_table = torch.stack([_table(lex, r, dev) for r in POSITION_PHRASES])  # [5, 2, 3]
    pos_w = pos_table[region, rand_int(2 if synonyms else 1)] * keep(word_dropout).unsqueeze(1)  # [B, 3]
    noise_table = _table(lex, (NOISE_WORDS,), dev)[0]
    noise1 = noise_table[rand_int(len(NOISE_WORDS))] * ~keep(noise_words)
    noise2 = noise_table[rand_int(len(NOISE_WORDS))] * ~keep(noise_words)
    slots = torch.cat([opening, noise1[:, None], size_w[:, None], color_w[:, None], shape_w[:, None],
                       pos_w, noise2[:, None]], dim=1)  # [B, MAX_CAPTION_WORDS]
    # squeeze out empty slots: a stable sort on "is padding" keeps the word order
    order = torch.sort((slots == 0).to(torch.int8), dim=1, stable=True).indices
    packed = slots.gather(1, order)
    out = torch.zeros(n, length, dtype=torch.int64, device=dev)
    out[:, :MAX_CAPTION_WORDS] = packed
    return out
