"""Wrong answers for chapter 10's checks (symmetric InfoNCE, recall@K, greedy decoding)."""

import torch
import torch.nn.functional as F

from . import Mutant


def _sim(a, b, temperature, normalise=True):
    if normalise:
        a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    return a @ b.T / temperature


def nce_one_direction(a, b, temperature):
    return F.cross_entropy(_sim(a, b, temperature), torch.arange(len(a)))


def nce_unnormalised(a, b, temperature):
    s, t = _sim(a, b, temperature, normalise=False), torch.arange(len(a))
    return (F.cross_entropy(s, t) + F.cross_entropy(s.T, t)) / 2


def nce_no_temperature(a, b, temperature):
    s, t = _sim(a, b, 1.0), torch.arange(len(a))
    return (F.cross_entropy(s, t) + F.cross_entropy(s.T, t)) / 2


def recall_dot_product(queries, gallery, k):
    top = (queries @ gallery.T).topk(k, dim=1).indices
    return (top == torch.arange(len(queries))[:, None]).any(1).float().mean()


def recall_top_k_minus_one(queries, gallery, k):
    s = F.normalize(queries, dim=-1) @ F.normalize(gallery, dim=-1).T
    top = s.topk(max(k - 1, 1), dim=1).indices
    return (top == torch.arange(len(queries))[:, None]).any(1).float().mean()


def recall_columns(queries, gallery, k):
    s = F.normalize(queries, dim=-1) @ F.normalize(gallery, dim=-1).T
    top = s.topk(k, dim=0).indices
    return (top == torch.arange(len(queries))[None, :]).any(0).float().mean()


def decode_no_padding(next_logits, batch_size, bos_id, eos_id, max_len):
    seq = torch.full((batch_size, 1), bos_id, dtype=torch.long)
    for _ in range(max_len):
        seq = torch.cat([seq, next_logits(seq).argmax(-1)[:, None]], dim=1)
    return seq[:, 1:]


def decode_keeps_bos(next_logits, batch_size, bos_id, eos_id, max_len):
    seq = torch.full((batch_size, 1), bos_id, dtype=torch.long)
    done = torch.zeros(batch_size, dtype=torch.bool)
    for _ in range(max_len - 1):
        nxt = torch.where(done, torch.zeros(batch_size, dtype=torch.long), next_logits(seq).argmax(-1))
        done = done | (nxt == eos_id)
        seq = torch.cat([seq, nxt[:, None]], dim=1)
    return seq


def decode_pads_the_eos_too(next_logits, batch_size, bos_id, eos_id, max_len):
    seq = torch.full((batch_size, 1), bos_id, dtype=torch.long)
    for _ in range(max_len):
        nxt = next_logits(seq).argmax(-1)
        nxt = torch.where((seq == eos_id).any(1) | (nxt == eos_id), torch.zeros_like(nxt), nxt)
        seq = torch.cat([seq, nxt[:, None]], dim=1)
    return seq[:, 1:]


MUTANTS = {
    "10.info_nce": {"one direction": Mutant(nce_one_direction, "one direction"),
                    "not normalised": nce_unnormalised, "no temperature": nce_no_temperature},
    "10.recall_at_k": {"dot product": recall_dot_product, "top k-1": recall_top_k_minus_one,
                       "ranks queries per gallery item": recall_columns},
    "10.greedy_decode": {"no padding after the end": Mutant(decode_no_padding, "must be 0"),
                         "keeps the start token": decode_keeps_bos, "pads the end token too": decode_pads_the_eos_too},
}
