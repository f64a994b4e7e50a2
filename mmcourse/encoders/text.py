"""Text encoders for captions ``[B, L]`` int64 (pad id 0): GRU/LSTM, a Transformer, and a small BERT.

Chapter 06 trains the recurrent encoders (built on ``mmcourse.layers.rnn``), chapter 07 the Transformer (built
on ``mmcourse.layers.transformer``) and a config-built ``transformers`` BertModel. Every encoder maps ids to
``[B, out_dim]`` (``forward``) and to per-token features ``[B, L, out_dim]`` (``tokens``), treating id 0 as
padding: padding never changes an encoding. Ids outside ``[0, vocab_size)`` raise a ``ValueError`` (checked
eagerly; the check is skipped while ``torch.compile`` traces, since it needs the values on the host).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mmcourse.layers.positional import LearnedPositionalEncoding, SinusoidalPositionalEncoding
from mmcourse.layers.rnn import GRU, LSTM
from mmcourse.layers.transformer import TransformerBlock

PAD = 0


def check_token_ids(x: Tensor, vocab_size: int, who: str, max_len: int | None = None) -> None:
    """Raise ``ValueError`` unless ``x`` is int ``[B, L]`` with ids in ``[0, vocab_size)`` and ``L <= max_len``."""
    if x.dim() != 2:
        raise ValueError(f"{who} expects token ids of shape [B, L], got {list(x.shape)}")
    if x.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"{who} expects integer token ids [B, L] (int64), got dtype {x.dtype}")
    if max_len is not None and x.shape[1] > max_len:
        raise ValueError(f"{who}: sequence length {x.shape[1]} is longer than the positional table "
                         f"(max_len={max_len}); got ids of shape {list(x.shape)}")
    if torch.compiler.is_compiling() or x.numel() == 0 or x.device.type != "cpu":
        return  # on a GPU, reading min/max would make the host wait every step; the embedding kernel asserts there
    lo, hi = int(x.min()), int(x.max())
    if lo < 0 or hi >= vocab_size:
        bad = lo if lo < 0 else hi
        raise ValueError(f"{who}: token id {bad} is outside the vocabulary [0, {vocab_size}) "
                         f"(vocab_size={vocab_size}); is the encoder built with len(vocab)?")


def masked_mean(h: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``h [B, L, D]`` over the positions where ``mask [B, L]`` is True; all-padding rows give 0."""
    m = mask.unsqueeze(-1).to(h.dtype)  # [B, L, 1]
    return (h * m).sum(1) / m.sum(1).clamp_min(1.0)


class _RecurrentTextEncoder(nn.Module):
    rnn_cls: type[nn.Module] = GRU

    def __init__(self, vocab_size: int, dim: int = 128, hidden: int | None = None, num_layers: int = 1,
                 bidirectional: bool = False, pool: str = "mean", dropout: float = 0.0):
        super().__init__()
        if pool not in ("mean", "last"):
            raise ValueError(f"pool must be 'mean' or 'last', got {pool!r}")
        hidden = hidden or dim
        self.vocab_size, self.pool = vocab_size, pool
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=PAD)
        self.drop = nn.Dropout(dropout)
        self.rnn = self.rnn_cls(dim, hidden, num_layers=num_layers, bidirectional=bidirectional)
        self.out_dim = hidden * (2 if bidirectional else 1)

    def _run(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        check_token_ids(x, self.vocab_size, type(self).__name__)
        mask = x != PAD  # [B, L]
        out, state = self.rnn(self.drop(self.embed(x)), mask=mask)  # [B, L, out_dim]
        h_n = state[0] if isinstance(state, tuple) else state  # [layers*dirs, B, H]
        dirs = 2 if self.rnn.bidirectional else 1
        last = torch.cat(list(h_n[-dirs:]), dim=-1)  # top layer, both directions: [B, out_dim]
        return out, mask, last

    def tokens(self, x: Tensor) -> Tensor:
        """Per-token hidden states ``[B, L, out_dim]`` (zeros at padding)."""
        return self._run(x)[0]

    def forward(self, x: Tensor) -> Tensor:
        """``[B, L]`` ids -> ``[B, out_dim]``: masked mean of the states, or the last real state."""
        out, mask, last = self._run(x)
        return masked_mean(out, mask) if self.pool == "mean" else last


class GRUTextEncoder(_RecurrentTextEncoder):
    """Embedding -> (bi)GRU from ``mmcourse.layers.rnn`` -> masked-mean or last-state pooling.

    Args:
        vocab_size: ``len(vocab)``. dim: embedding width. hidden: GRU width (default ``dim``).
        num_layers, bidirectional: as in ``nn.GRU``. pool: ``"mean"`` or ``"last"``.
    """

    rnn_cls = GRU


class LSTMTextEncoder(_RecurrentTextEncoder):
    """Like :class:`GRUTextEncoder` with an LSTM; ``"last"`` pools the final hidden state ``h_n``."""

    rnn_cls = LSTM


class TransformerTextEncoder(nn.Module):
    """Embedding + positions -> ``depth`` pre-norm blocks -> final LayerNorm -> CLS or masked-mean pooling.

    With ``pool="cls"`` a learned CLS vector is put in front of the caption (position 0) and its output is the
    encoding; ``max_len`` counts caption tokens only. ``tokens(x)`` returns the caption positions ``[B, L, D]``.
    """

    def __init__(self, vocab_size: int, dim: int = 128, depth: int = 2, heads: int = 4, max_len: int = 64,
                 pool: str = "cls", mlp_ratio: float = 4.0, dropout: float = 0.0, positions: str = "sinusoidal"):
        super().__init__()
        if pool not in ("cls", "mean"):
            raise ValueError(f"pool must be 'cls' or 'mean', got {pool!r}")
        if positions not in ("sinusoidal", "learned"):
            raise ValueError(f"positions must be 'sinusoidal' or 'learned', got {positions!r}")
        self.vocab_size, self.max_len, self.pool, self.out_dim = vocab_size, max_len, pool, dim
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=PAD)
        pos_cls = SinusoidalPositionalEncoding if positions == "sinusoidal" else LearnedPositionalEncoding
        self.pos = pos_cls(dim, max_len + (1 if pool == "cls" else 0))
        self.cls = nn.Parameter(torch.randn(1, 1, dim) * 0.02) if pool == "cls" else None
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, mlp_ratio, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def _run(self, x: Tensor, need_weights: bool = False) -> tuple[Tensor, Tensor, list[Tensor]]:
        check_token_ids(x, self.vocab_size, type(self).__name__, self.max_len)
        mask = x != PAD  # [B, L]
        h = self.embed(x)  # [B, L, D]
        if self.cls is not None:
            h = torch.cat([self.cls.expand(x.shape[0], -1, -1).to(h.dtype), h], dim=1)  # [B, 1+L, D]
            mask = torch.cat([mask.new_ones(x.shape[0], 1), mask], dim=1)
        h = self.pos(h)
        maps = []
        for block in self.blocks:
            if need_weights:
                h, w = block(h, key_mask=mask, need_weights=True)
                maps.append(w)
            else:
                h = block(h, key_mask=mask)
        return self.norm(h), mask, maps

    def attention_maps(self, x: Tensor) -> list[Tensor]:
        """Head-averaged attention of every block, each ``[B, L', L']`` (``L' = L + 1`` with a CLS token)."""
        return self._run(x, need_weights=True)[2]

    def tokens(self, x: Tensor) -> Tensor:
        """Per-token features of the caption positions ``[B, L, D]``."""
        h, _, _ = self._run(x)
        return h[:, 1:] if self.cls is not None else h

    def forward(self, x: Tensor) -> Tensor:
        """``[B, L]`` ids -> ``[B, D]``."""
        h, mask, _ = self._run(x)
        return h[:, 0] if self.cls is not None else masked_mean(h, mask)


class BertTextEncoder(nn.Module):
    """A small BERT (``transformers.BertModel``) built from a config, randomly initialised, trained from scratch.

    The caption vocabulary's ids are used directly (pad id 0 = BERT's ``pad_token_id``); the attention mask is
    ``x != 0``. Pooling: ``"cls"`` takes position 0 (prepend the vocab's CLS id 2 to captions for a true CLS
    token) or ``"mean"`` (masked mean).
    """

    def __init__(self, vocab_size: int, dim: int = 128, depth: int = 2, heads: int = 4, max_len: int = 64,
                 intermediate: int | None = None, dropout: float = 0.0, pool: str = "mean"):
        super().__init__()
        if pool not in ("cls", "mean"):
            raise ValueError(f"pool must be 'cls' or 'mean', got {pool!r}")
        from transformers import BertConfig, BertModel

        self.config = BertConfig(vocab_size=vocab_size, hidden_size=dim, num_hidden_layers=depth,
                                 num_attention_heads=heads, intermediate_size=intermediate or 4 * dim,
                                 max_position_embeddings=max_len, hidden_dropout_prob=dropout,
                                 attention_probs_dropout_prob=dropout, pad_token_id=PAD, type_vocab_size=1)
        self.bert = BertModel(self.config, add_pooling_layer=False)
        self.vocab_size, self.max_len, self.pool, self.out_dim = vocab_size, max_len, pool, dim

    def tokens(self, x: Tensor) -> Tensor:
        """``last_hidden_state`` ``[B, L, D]``."""
        check_token_ids(x, self.vocab_size, type(self).__name__, self.max_len)
        return self.bert(input_ids=x, attention_mask=(x != PAD).long()).last_hidden_state

    def forward(self, x: Tensor) -> Tensor:
        """``[B, L]`` ids -> ``[B, D]``."""
        h = self.tokens(x)
        return h[:, 0] if self.pool == "cls" else masked_mean(h, x != PAD)
