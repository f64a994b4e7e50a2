"""Hidden tests of chapter 10's exercises (cross-modal learning): InfoNCE, recall@K and greedy decoding."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mmcourse.crossmodal.decoding import greedy_decode
from mmcourse.grading.registry import register


def _pairs(n: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, d, generator=g)
    return a, a + 0.8 * torch.randn(n, d, generator=g)


def _reference_info_nce(a: torch.Tensor, b: torch.Tensor, tau: float) -> torch.Tensor:
    s = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / tau
    target = torch.arange(len(a))
    return (F.cross_entropy(s, target) + F.cross_entropy(s.T, target)) / 2


@register("10.info_nce", points=2, timeout=30,
          hint="normalise both, S = a @ b.T / temperature, then average the cross-entropy of rows and of columns "
               "with the diagonal as the target")
def _info_nce(fn):
    for n, d, tau, seed in [(8, 4, 0.07, 0), (5, 16, 0.5, 1), (12, 3, 1.0, 2)]:
        a, b = _pairs(n, d, seed)
        b[0] = b[1]  # make the matrix asymmetric enough that rows and columns differ
        got = fn(a, b, tau)
        assert torch.is_tensor(got) and got.dim() == 0, f"return a scalar tensor, got {type(got).__name__} " \
                                                       f"{getattr(got, 'shape', '')}"
        want = _reference_info_nce(a, b, tau)
        row_only = F.cross_entropy(F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / tau, torch.arange(n))
        assert not torch.allclose(got, row_only, atol=1e-5) or torch.allclose(want, row_only, atol=1e-5), \
            "your loss only covers one direction (a→b); average it with the b→a direction."
        assert torch.allclose(got, want, atol=1e-5), \
            f"for B={n}, D={d}, temperature={tau}: got {float(got):.5f}, expected {float(want):.5f}."
    a, b = _pairs(6, 5, 3)
    assert torch.allclose(fn(3 * a, b, 0.1), fn(a, b, 0.1), atol=1e-5), \
        "scaling an embedding changed the loss: L2-normalise a and b first (cosine similarity)."


def _reference_recall(q: torch.Tensor, g: torch.Tensor, k: int) -> float:
    s = F.normalize(q, dim=-1) @ F.normalize(g, dim=-1).T
    top = s.topk(k, dim=1).indices
    return float((top == torch.arange(len(q))[:, None]).any(1).float().mean())


@register("10.recall_at_k", points=2, timeout=30,
          hint="cosine similarities [N, N]; query i is a hit when gallery item i is among its k largest scores")
def _recall_at_k(fn):
    for n, d, seed in [(30, 6, 0), (64, 3, 1)]:
        q, g = _pairs(n, d, seed)
        for k in (1, 5, n):
            got = float(fn(q, g, k))
            want = _reference_recall(q, g, k)
            assert abs(got - want) < 1e-6, f"N={n}, k={k}: got {got:.4f}, expected {want:.4f}."
    q, g = _pairs(20, 4, 5)
    assert abs(float(fn(q, 5 * g, 1)) - _reference_recall(q, g, 1)) < 1e-6, \
        "use cosine similarity (normalise first): scaling the gallery changed your recall."


class ToyModel:
    """next_logits that depends on the step, the last token and the row of the batch (picklable: it travels to
    the sandbox with the call)."""

    def __init__(self, vocab: int, batch: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.batch = batch
        self.table = torch.randn(16, vocab, vocab, generator=g) * 2
        self.row_bias = torch.randn(batch, vocab, generator=g)

    def __call__(self, prefix: torch.Tensor) -> torch.Tensor:
        if prefix.dim() != 2 or prefix.shape[0] != self.batch:
            raise AssertionError(f"next_logits expects the prefixes of all {self.batch} rows as [B, T], "
                                 f"got shape {list(prefix.shape)}")
        return self.table[prefix.shape[1] - 1, prefix[:, -1]] + self.row_bias


@register("10.greedy_decode", points=2, timeout=30,
          hint="start from a [B, 1] column of bos_id; at each step append argmax(next_logits(seq)); after a row "
               "has produced eos_id, write 0 (padding); return the max_len generated tokens")
def _greedy_decode(fn):
    for vocab, batch, eos, max_len, seed in [(5, 4, 0, 6, 0), (7, 3, 3, 8, 1), (4, 6, 0, 1, 2)]:
        f = ToyModel(vocab, batch, seed)
        want = greedy_decode(f, batch, bos_id=1, eos_id=eos, max_len=max_len)
        got = fn(f, batch, 1, eos, max_len)
        assert torch.is_tensor(got) and tuple(got.shape) == (batch, max_len), \
            f"return a [B, max_len] = [{batch}, {max_len}] tensor, got {getattr(got, 'shape', type(got))}."
        if not torch.equal(got.long(), want):
            row = int((got.long() != want).any(1).nonzero()[0])
            raise AssertionError(f"row {row}: got {got[row].tolist()}, expected {want[row].tolist()} "
                                 f"(eos_id={eos}; tokens after the end must be 0).")
