"""A frozen pretrained text tower for chapter 10: caption embeddings computed once, then served as features.

A frozen tower never changes, so its outputs can be computed once and reused every epoch; the trainable
image tower is then paired with :class:`PrecomputedFeatures`, an identity "encoder" over those vectors.
``caption_embeddings`` embeds the world's captions (token ids of the course vocabulary) with a sentence
encoder such as ``MiniLMTextEncoder`` in one of two ways:

- ``"sentences"``: decode each caption to a string and embed it whole (each distinct string once);
- ``"words"``: embed each vocabulary word once and average the word vectors of a caption — a bag of
  pretrained word vectors, far cheaper on a CPU (the 6-layer model runs on ~100 words, not thousands of
  captions), at the price of ignoring word order.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mmcourse.data.text import Vocab, tokenize

MODES = ("sentences", "words")


class PrecomputedFeatures(nn.Module):
    """An identity tower over vectors computed beforehand (``out_dim`` = their width)."""

    def __init__(self, out_dim: int):
        super().__init__()
        self.out_dim = out_dim

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 2 or x.shape[1] != self.out_dim:
            raise ValueError(f"PrecomputedFeatures expects [B, {self.out_dim}] features, got {list(x.shape)}")
        return x


class SentenceEmbedder:
    """Embeds strings with a frozen sentence encoder (anything with ``encode(list[str]) -> [N, D]``).

    ``mode="words"`` averages cached single-word embeddings instead of running the encoder on whole texts.
    """

    def __init__(self, encoder: object, mode: str = "sentences", batch_size: int = 256):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.encoder, self.mode, self.batch_size = encoder, mode, batch_size
        self._words: dict[str, Tensor] = {}

    def _word_vectors(self, words: Sequence[str]) -> Tensor:
        new = sorted({w for w in words if w not in self._words})
        if new:
            for w, v in zip(new, self.encoder.encode(new, batch_size=self.batch_size)):
                self._words[w] = v
        return torch.stack([self._words[w] for w in words])

    @torch.no_grad()
    def __call__(self, texts: Sequence[str]) -> Tensor:
        """``[N, D]`` embeddings of ``texts`` (each distinct text, or word, is run through the encoder once)."""
        if len(texts) == 0:
            raise ValueError("no texts to embed")
        if self.mode == "words":
            split = [tokenize(t) for t in texts]
            if any(not ws for ws in split):
                raise ValueError("a text has no words to embed")
            flat = self._word_vectors([w for ws in split for w in ws])  # [sum words, D]
            owner = torch.repeat_interleave(torch.arange(len(split)), torch.tensor([len(ws) for ws in split]))
            out = torch.zeros(len(split), flat.shape[1], dtype=flat.dtype, device=flat.device)
            out.index_add_(0, owner.to(flat.device), flat)
            return out / torch.tensor([len(ws) for ws in split], device=flat.device, dtype=flat.dtype)[:, None]
        uniq = sorted(set(texts))
        where = {t: i for i, t in enumerate(uniq)}
        emb = self.encoder.encode(uniq, batch_size=self.batch_size)  # [U, D]
        return emb[torch.tensor([where[t] for t in texts], device=emb.device)]


@torch.no_grad()
def caption_embeddings(embedder: SentenceEmbedder, vocab: Vocab, captions: Tensor) -> Tensor:
    """``[N, D]`` embeddings of caption ids ``[N, L]`` (course vocabulary, PAD=0), on the embedder's device."""
    if captions.dim() != 2:
        raise ValueError(f"captions must be [N, L] token ids, got {list(captions.shape)}")
    if embedder.mode == "words":  # one table lookup per token, then a masked mean: no strings per caption
        words = vocab.itos[3:]  # skip <pad>, <unk>, <cls>
        table = embedder._word_vectors(words)  # [V-3, D]
        table = torch.cat([torch.zeros(3, table.shape[1], dtype=table.dtype, device=table.device), table])
        ids = captions.to(table.device)
        mask = (ids > 2).to(table.dtype).unsqueeze(-1)  # [N, L, 1]
        return (table[ids] * mask).sum(1) / mask.sum(1).clamp_min(1)
    return embedder(vocab.decode_batch(captions))
