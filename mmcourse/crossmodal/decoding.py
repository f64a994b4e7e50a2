"""Decoding a sequence from a next-token model (chapter 10): greedy search and beam search, batched.

Both take ``next_logits(prefix [R, T]) -> [R, V]``, the scores of the next token after each prefix, so they
work with any autoregressive decoder. Every step runs for all rows at once; finished rows keep emitting the
end token (PAD=0 in the course's captions), so no step needs to ask the GPU whether all rows are done.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

NextLogits = Callable[[Tensor], Tensor]


def _check(batch_size: int, max_len: int, beam_size: int = 1) -> None:
    if batch_size < 1 or max_len < 1 or beam_size < 1:
        raise ValueError(f"need batch_size, max_len and beam_size >= 1, got {batch_size}, {max_len}, {beam_size}")


@torch.no_grad()
def greedy_decode(next_logits: NextLogits, batch_size: int, *, bos_id: int, eos_id: int, max_len: int,
                  device: torch.device | str | None = None, pad_id: int = 0) -> Tensor:
    """Pick the most likely token at every step: ``[B, max_len]`` ids, ``pad_id`` after the end token."""
    _check(batch_size, max_len)
    seq = torch.full((batch_size, 1), bos_id, dtype=torch.int64, device=device)
    done = torch.zeros(batch_size, dtype=torch.bool, device=device)
    for _ in range(max_len):
        nxt = next_logits(seq).argmax(-1)  # [B]
        nxt = torch.where(done, torch.full_like(nxt, pad_id), nxt)
        done = done | (nxt == eos_id)
        seq = torch.cat([seq, nxt[:, None]], dim=1)
    return seq[:, 1:]


@torch.no_grad()
def beam_search(next_logits: NextLogits, batch_size: int, *, beam_size: int, bos_id: int, eos_id: int,
                max_len: int, device: torch.device | str | None = None, length_penalty: float = 0.0,
                pad_id: int = 0) -> Tensor:
    """Keep the ``beam_size`` most likely prefixes per row; return the best finished one, ``[B, max_len]``.

    ``next_logits`` is called on ``[B * beam_size, T]`` prefixes (row ``b * beam_size + k`` is beam ``k`` of
    item ``b``), so a decoder's image memory must be repeated ``beam_size`` times per item. A hypothesis is
    scored by its total log-probability divided by ``length ** length_penalty`` (0: no normalisation).
    """
    _check(batch_size, max_len, beam_size)
    B, K = batch_size, beam_size
    seq = torch.full((B * K, 1), bos_id, dtype=torch.int64, device=device)
    scores = torch.full((B, K), float("-inf"), device=device)
    scores[:, 0] = 0.0  # all beams start identical: keep one alive so the first step is not duplicated
    done = torch.zeros(B * K, dtype=torch.bool, device=device)
    lengths = torch.zeros(B * K, device=device)
    rows = torch.arange(B, device=device)
    for _ in range(max_len):
        logp = next_logits(seq).float().log_softmax(-1)  # [B*K, V]
        V = logp.shape[-1]
        ended = torch.full_like(logp, float("-inf"))
        ended[:, pad_id] = 0.0  # a finished beam only pads, at no cost
        logp = torch.where(done[:, None], ended, logp)
        cand = (scores.reshape(B * K, 1) + logp).reshape(B, K * V)
        scores, flat = cand.topk(K, dim=1)  # [B, K]
        parent = (rows[:, None] * K + flat // V).reshape(-1)  # [B*K] row of the beam each came from
        tok = (flat % V).reshape(-1)
        lengths = lengths[parent] + (~done[parent]).float()
        done = done[parent] | (tok == eos_id)
        seq = torch.cat([seq[parent], tok[:, None]], dim=1)
    tokens = seq[:, 1:].reshape(B, K, max_len)
    final = scores / lengths.reshape(B, K).clamp_min(1.0) ** length_penalty
    best = final.argmax(1)  # [B]
    out = tokens[rows, best]
    if eos_id != pad_id:  # make everything after the end token padding
        after = (out == eos_id).long().cumsum(1) - (out == eos_id).long() > 0
        out = out.masked_fill(after, pad_id)
    return out
