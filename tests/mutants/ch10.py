"""Wrong answers for chapter 10's checks (multi-positive InfoNCE, the mean reciprocal rank with several right
answers, beam search, the chunked InfoNCE to fix, the temperature to pick)."""

import math

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


def owner_mask(n, owner):
    return owner[None, :] == torch.arange(n)[:, None]  # [N, M]


def _best_rank(s, right, strict=True):
    best = s.masked_fill(~right, float("-inf")).amax(1, keepdim=True)  # [N, 1]
    wrong = s.masked_fill(right, float("-inf"))
    above = wrong > best if strict else wrong >= best
    return above.sum(1) + 1  # [N]


def mrr_diagonal(queries, gallery, owner):  # the chapter's setting: gallery row i is query i's partner
    s = F.normalize(queries, dim=-1) @ F.normalize(gallery, dim=-1).T
    rank = (s > s[torch.arange(len(s)), torch.arange(len(s))][:, None]).sum(1) + 1
    return (1 / rank.float()).mean()


def mrr_ties_against(queries, gallery, owner):
    s = F.normalize(queries, dim=-1) @ F.normalize(gallery, dim=-1).T
    return (1 / _best_rank(s, owner_mask(len(s), owner), strict=False).float()).mean()


def mrr_sorted(queries, gallery, owner):  # the position in a sorted list: ties broken by the sort
    s = F.normalize(queries, dim=-1) @ F.normalize(gallery, dim=-1).T
    order = s.argsort(1, descending=True, stable=True)  # [N, M]
    hit = owner[order] == torch.arange(len(s))[:, None]
    return (1 / (hit.float().argmax(1) + 1).float()).mean()


def mrr_dot_product(queries, gallery, owner):
    s = queries @ gallery.T
    return (1 / _best_rank(s, owner_mask(len(s), owner)).float()).mean()


def mrr_first_answer(queries, gallery, owner):  # the first right answer in gallery order, all items above count
    s = F.normalize(queries, dim=-1) @ F.normalize(gallery, dim=-1).T
    first = (owner[None, :] == torch.arange(len(s))[:, None]).float().argmax(1)  # [N]
    rank = (s > s[torch.arange(len(s)), first][:, None]).sum(1) + 1
    return (1 / rank.float()).mean()


def mrr_every_answer(queries, gallery, owner):  # every right answer ranked, their reciprocal ranks averaged
    s = F.normalize(queries, dim=-1) @ F.normalize(gallery, dim=-1).T
    per_query = []
    for i in range(len(s)):
        mine = (owner == i).nonzero()[:, 0].tolist()
        per_query.append(sum(1 / (int((s[i] > s[i, j]).sum()) + 1) for j in mine) / len(mine))
    return sum(per_query) / len(per_query)


def mrr_reciprocal_of_mean(queries, gallery, owner):
    s = F.normalize(queries, dim=-1) @ F.normalize(gallery, dim=-1).T
    return 1 / _best_rank(s, owner_mask(len(s), owner)).float().mean()


def mrr_as_int_count(queries, gallery, owner):  # the number of queries ranked first, not a mean
    s = F.normalize(queries, dim=-1) @ F.normalize(gallery, dim=-1).T
    return int((_best_rank(s, owner_mask(len(s), owner)) == 1).sum())


def _beam(next_logits, bos_id, eos_id, max_len, beam_size, log_softmax=True, stop=True, length_norm=False):
    beam = [([], 0.0, False)]
    for _ in range(max_len):
        if all(done for _, _, done in beam):
            break
        candidates = []
        for tokens, score, done in beam:
            if done and stop:
                candidates.append((tokens, score, done))
                continue
            s = next_logits([bos_id, *tokens])
            logp = s.log_softmax(-1) if log_softmax else s
            for v in range(len(logp)):
                candidates.append((tokens + [v], score + float(logp[v]), v == eos_id))
        beam = sorted(candidates, key=lambda c: c[1], reverse=True)[:beam_size]
    if length_norm:
        return max(((t, s) for t, s, _ in beam), key=lambda c: c[1] / len(c[0]))
    tokens, score, _ = beam[0]
    return tokens, score


def beam_greedy(next_logits, bos_id, eos_id, max_len, beam_size):  # the beam size ignored
    return _beam(next_logits, bos_id, eos_id, max_len, 1)


def beam_raw_logits(next_logits, bos_id, eos_id, max_len, beam_size):
    return _beam(next_logits, bos_id, eos_id, max_len, beam_size, log_softmax=False)


def beam_extends_finished(next_logits, bos_id, eos_id, max_len, beam_size):
    return _beam(next_logits, bos_id, eos_id, max_len, beam_size, stop=False)


def beam_length_normalised(next_logits, bos_id, eos_id, max_len, beam_size):
    return _beam(next_logits, bos_id, eos_id, max_len, beam_size, length_norm=True)


def beam_returns_probability(next_logits, bos_id, eos_id, max_len, beam_size):
    tokens, score = _beam(next_logits, bos_id, eos_id, max_len, beam_size)
    return tokens, math.exp(score)


def beam_keeps_start_token(next_logits, bos_id, eos_id, max_len, beam_size):
    tokens, score = _beam(next_logits, bos_id, eos_id, max_len, beam_size)
    return [bos_id, *tokens], score


def beam_drops_end_token_logp(next_logits, bos_id, eos_id, max_len, beam_size):  # the end token's cost left out
    tokens, score = _beam(next_logits, bos_id, eos_id, max_len, beam_size)
    if tokens and tokens[-1] == eos_id:
        prefix = [bos_id, *tokens[:-1]]
        score -= float(next_logits(prefix).log_softmax(-1)[eos_id])
    return tokens, score


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
    "10.mean_reciprocal_rank": {
        "gallery row i taken as query i's answer": Mutant(mrr_diagonal, "owner[j] == i"),
        "ties counted against the query": Mutant(mrr_ties_against, "strictly higher"),
        "the position in a sorted list": Mutant(mrr_sorted, "strictly higher"),
        "dot product": Mutant(mrr_dot_product, "cosine"),
        "the first right answer, other right answers above it count": Mutant(mrr_first_answer, "best-scored"),
        "every right answer ranked and averaged": Mutant(mrr_every_answer, "once"),
        "1 / mean(rank)": Mutant(mrr_reciprocal_of_mean, "mean(1 / rank)"),
        "a count, not a mean": Mutant(mrr_as_int_count, "float")},
    "10.beam_search": {
        "greedy (beam size ignored)": Mutant(beam_greedy, "greedy"),
        "raw logits added up": Mutant(beam_raw_logits, "log_softmax"),
        "finished hypotheses extended": Mutant(beam_extends_finished, "never extend it"),
        "length-normalised choice": Mutant(beam_length_normalised, "length"),
        "the probability, not its log": Mutant(beam_returns_probability, "not the probability"),
        "the start token kept": Mutant(beam_keeps_start_token, "without the start token"),
        "the end token's log-probability left out": Mutant(beam_drops_end_token_logp, "end token included")},
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
