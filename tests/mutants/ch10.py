"""Wrong answers for chapter 10's checks (multi-positive InfoNCE, recall@K, greedy decoding, the chunked InfoNCE
to fix, the temperature to pick)."""

import torch
import torch.nn.functional as F

from . import Mutant


def _sim(a, b, temperature, normalise=True):
    if normalise:
        a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    return a @ b.T / temperature


def _mp(a, b, labels, temperature, normalise=True):
    s = _sim(a, b, temperature, normalise)
    return s, (labels[:, None] == labels[None, :]).float()


def mp_diagonal_only(a, b, labels, temperature):  # the chapter's InfoNCE, labels ignored
    s, t = _sim(a, b, temperature), torch.arange(len(a))
    return (F.cross_entropy(s, t) + F.cross_entropy(s.T, t)) / 2


def mp_one_direction(a, b, labels, temperature):
    s, pos = _mp(a, b, labels, temperature)
    return (-(s.log_softmax(1) * pos).sum(1) / pos.sum(1)).mean()


def mp_summed_inside_the_log(a, b, labels, temperature):
    s, pos = _mp(a, b, labels, temperature)
    rows = -torch.logsumexp(s.log_softmax(1).masked_fill(pos == 0, float("-inf")), 1)
    cols = -torch.logsumexp(s.log_softmax(0).masked_fill(pos == 0, float("-inf")), 0)
    return (rows.mean() + cols.mean()) / 2


def mp_excludes_the_pair_itself(a, b, labels, temperature):  # SupCon's j != i, copied
    s, pos = _mp(a, b, labels, temperature)
    pos = pos * (1 - torch.eye(len(a)))
    n = pos.sum(1).clamp_min(1)
    return ((-(s.log_softmax(1) * pos).sum(1) / n).mean() + (-(s.log_softmax(0) * pos).sum(0) / n).mean()) / 2


def mp_pooled_mean(a, b, labels, temperature):
    s, pos = _mp(a, b, labels, temperature)
    return (-(s.log_softmax(1) * pos).sum() / pos.sum() - (s.log_softmax(0) * pos).sum() / pos.sum()) / 2


def mp_unnormalised(a, b, labels, temperature):
    s, pos = _mp(a, b, labels, temperature, normalise=False)
    return ((-(s.log_softmax(1) * pos).sum(1) / pos.sum(1)).mean()
            + (-(s.log_softmax(0) * pos).sum(0) / pos.sum(0)).mean()) / 2


def mp_no_temperature(a, b, labels, temperature):
    s, pos = _mp(a, b, labels, 1.0)
    return ((-(s.log_softmax(1) * pos).sum(1) / pos.sum(1)).mean()
            + (-(s.log_softmax(0) * pos).sum(0) / pos.sum(0)).mean()) / 2


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


def _chunked(a, b, temperature, chunk, restart_targets, mean_of_means, both_sides=True):
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    parts = []
    for start in range(0, len(a), chunk):
        stop = min(start + chunk, len(a))
        target = torch.arange(stop - start) if restart_targets else torch.arange(start, stop)
        red = "mean" if mean_of_means else "sum"
        part = F.cross_entropy(a[start:stop] @ b.T / temperature, target, reduction=red)
        if both_sides:
            part = part + F.cross_entropy(b[start:stop] @ a.T / temperature, target, reduction=red)
        parts.append(part)
    if mean_of_means:
        return torch.stack(parts).mean() / (2 if both_sides else 1)
    return sum(parts) / (len(a) * (2 if both_sides else 1))


def chunked_as_given(a, b, temperature, chunk=256):  # nothing fixed
    return _chunked(a, b, temperature, chunk, restart_targets=True, mean_of_means=True)


def chunked_targets_still_restart(a, b, temperature, chunk=256):  # the average fixed, not the targets
    return _chunked(a, b, temperature, chunk, restart_targets=True, mean_of_means=False)


def chunked_mean_of_chunk_means(a, b, temperature, chunk=256):  # the targets fixed, not the average
    return _chunked(a, b, temperature, chunk, restart_targets=False, mean_of_means=True)


def chunked_one_direction(a, b, temperature, chunk=256):
    return _chunked(a, b, temperature, chunk, restart_targets=False, mean_of_means=False, both_sides=False)


def chunked_off_by_one(a, b, temperature, chunk=256):  # stop - 1 instead of stop
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    total = a.new_zeros(())
    for start in range(0, len(a), chunk):
        stop = min(start + chunk, len(a))
        target = torch.arange(start + 1, stop + 1) % len(a)
        total = total + F.cross_entropy(a[start:stop] @ b.T / temperature, target, reduction="sum")
        total = total + F.cross_entropy(b[start:stop] @ a.T / temperature, target, reduction="sum")
    return total / (2 * len(a))


def temperature_smallest():  # "sharper is better"
    return 0.01


def temperature_too_small():
    return 0.03


def temperature_one():  # no temperature at all
    return 1.0


def temperature_not_in_sweep():  # CLIP's initial value
    return 0.07


def temperature_as_text():
    return "0.1"


def temperature_as_tensor():
    return torch.tensor(0.1)


MUTANTS = {
    "10.multi_positive_nce": {
        "only the diagonal is positive": Mutant(mp_diagonal_only, "same label"),
        "one direction": Mutant(mp_one_direction, "one direction"),
        "probabilities summed inside the log": Mutant(mp_summed_inside_the_log, "inside the log"),
        "the pair itself left out": Mutant(mp_excludes_the_pair_itself, "own partner"),
        "one mean over all positive pairs": Mutant(mp_pooled_mean, "each row's positives"),
        "not normalised": Mutant(mp_unnormalised, "normalise"),
        "no temperature": Mutant(mp_no_temperature, "temperature")},
    "10.recall_at_k": {"dot product": recall_dot_product, "top k-1": recall_top_k_minus_one,
                       "ranks queries per gallery item": recall_columns},
    "10.greedy_decode": {"no padding after the end": Mutant(decode_no_padding, "must be 0"),
                         "keeps the start token": decode_keeps_bos, "pads the end token too": decode_pads_the_eos_too},
    "10.fix_chunked_nce": {
        "the given code": Mutant(chunked_as_given, "restart at 0"),
        "targets still restart in every chunk": Mutant(chunked_targets_still_restart, "restart at 0"),
        "a mean of the chunks' means": Mutant(chunked_mean_of_chunk_means, "reduction='sum'"),
        "one direction": Mutant(chunked_one_direction, "b→a"),
        "targets shifted by one": chunked_off_by_one},
    "10.pick_temperature": {
        "the smallest τ": Mutant(temperature_smallest, "too small a τ"),
        "τ = 0.03": Mutant(temperature_too_small, "too small a τ"),
        "τ = 1 (no temperature)": Mutant(temperature_one, "too large a τ"),
        "a τ the sweep did not try": Mutant(temperature_not_in_sweep, "one of the temperatures"),
        "a string": Mutant(temperature_as_text, "python float"),
        "a tensor": Mutant(temperature_as_tensor, "python float")},
}
