"""Hidden tests of chapter 10's exercises (cross-modal learning): InfoNCE with several positives per anchor,
the mean reciprocal rank when a query has several right answers, beam search over a toy next-token model, an
InfoNCE computed a chunk of rows at a time whose targets restart in every chunk and whose uneven chunks are
averaged (find the bugs), and choosing the temperature on validation data (an experiment, its sweep in
:func:`temperature_table`)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mmcourse.grading.registry import register


def _pairs(n: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, d, generator=g)
    return a, a + 0.8 * torch.randn(n, d, generator=g)


def _multi_positive(a: torch.Tensor, b: torch.Tensor, labels: torch.Tensor, tau: float, *, normalise: bool = True,
                    sides: str = "both", inside: bool = False, self_positive: bool = True,
                    pooled: bool = False) -> torch.Tensor:
    """The multi-positive InfoNCE (the defaults) and the variants a learner's bug gives, in float64."""
    a, b = a.double(), b.double()
    if normalise:
        a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    s = a @ b.T / tau  # [B, B]
    pos = labels[:, None] == labels[None, :]  # symmetric: the same mask for the rows and the columns
    if not self_positive:
        pos = pos & ~torch.eye(len(a), dtype=torch.bool)

    def side(dim: int) -> torch.Tensor:
        logp = s.log_softmax(dim)
        if inside:  # log of the summed probabilities of the positives
            return -torch.logsumexp(logp.masked_fill(~pos, float("-inf")), dim).mean()
        p = pos.double()
        if pooled:  # one mean over every positive pair of the batch
            return -(logp * p).sum() / p.sum()
        return (-(logp * p).sum(dim) / p.sum(dim).clamp_min(1)).mean()

    loss = side(1) if sides == "rows" else (side(1) + side(0)) / 2
    return loss.to(torch.float32)


def _labels(n: int, classes: int, seed: int) -> torch.Tensor:
    return torch.randint(classes, (n,), generator=torch.Generator().manual_seed(seed))


_MP_BUGS = {  # variant of _multi_positive -> what the learner should do about it
    "diagonal": "only the diagonal counts as positive — every pair with the same label is a positive "
                "(labels[i] == labels[j]), not only j == i",
    "rows": "your loss only covers one direction (a→b); average it with the b→a direction (the columns)",
    "inside": "you summed the positives' probabilities inside the log; average the log-probabilities of the "
              "positives instead (-1/|P(i)| Σ_p log p)",
    "self": "row i's own partner (j == i) is a positive too: a_i and b_i are a matching pair, so keep the diagonal "
            "in the mask",
    "pooled": "you averaged over all positive pairs of the batch at once; average over each row's positives first "
              "(divide by that row's count), then over the rows",
    "unnormalised": "L2-normalise a and b first (cosine similarity): the loss must not change when an embedding "
                    "is scaled",
    "no temperature": "divide the similarities by the temperature",
}


def _mp_variant(name: str, a, b, labels, tau) -> torch.Tensor:
    if name == "diagonal":
        return _multi_positive(a, b, torch.arange(len(a)), tau)
    if name == "no temperature":
        return _multi_positive(a, b, labels, 1.0)
    kw = {"rows": {"sides": "rows"}, "inside": {"inside": True}, "self": {"self_positive": False},
          "pooled": {"pooled": True}, "unnormalised": {"normalise": False}}[name]
    return _multi_positive(a, b, labels, tau, **kw)


@register("10.multi_positive_nce", points=2, timeout=30,
          hint="normalise both, S = a @ b.T / temperature, P = labels[:, None] == labels[None, :]; for each row "
               "average -log_softmax(S, dim=1) over its positives, same for the columns with dim=0; average the "
               "two means")
def _multi_positive_nce(fn):
    for n, d, classes, tau, seed in [(8, 4, 3, 0.07, 0), (12, 16, 5, 0.5, 1), (10, 3, 2, 1.0, 2),
                                     (7, 4, 7, 0.2, 4)]:
        a, b = _pairs(n, d, seed)
        labels = _labels(n, classes, seed) if classes < n else torch.arange(n)
        b[0] = b[1]  # make the matrix asymmetric enough that rows and columns differ
        a[2] *= 3.0  # one longer embedding: only cosine similarity ignores it
        got = fn(a.clone(), b.clone(), labels.clone(), tau)
        what = f"for B={n}, D={d}, labels={labels.tolist()}, temperature={tau}"
        assert torch.is_tensor(got) and got.dim() == 0, f"return a scalar tensor, got {type(got).__name__} " \
                                                       f"{getattr(got, 'shape', '')}"
        want = _multi_positive(a, b, labels, tau)
        if torch.allclose(got.float(), want, atol=1e-5):
            continue
        for bug, advice in _MP_BUGS.items():
            if torch.allclose(got.float(), _mp_variant(bug, a, b, labels, tau), atol=1e-5):
                raise AssertionError(f"{what}: {advice}")
        if classes >= n:
            raise AssertionError(f"{what}: with all labels distinct the loss must be the symmetric InfoNCE "
                                 f"{float(want):.5f}, got {float(got):.5f}")
        raise AssertionError(f"{what}: got {float(got):.5f}, expected {float(want):.5f}")


# --- 10.mean_reciprocal_rank: ranking when a query has several right answers ---------------------------------

def _mrr(q: torch.Tensor, g: torch.Tensor, owner: torch.Tensor, *, normalise: bool = True, diagonal: bool = False,
         ties_against: bool = False, which: str = "best", of_mean: bool = False) -> float:
    """The mean reciprocal rank (the defaults) and the variants a learner's bug gives, in float64.

    Query ``i``'s right answers are the gallery items ``j`` with ``owner[j] == i``; its rank is one plus the number
    of gallery items scored strictly higher than its best-scored right answer (ties in the query's favour, as in
    the chapter's ``retrieval_ranks``)."""
    q, g = q.double(), g.double()
    if normalise:
        q, g = F.normalize(q, dim=-1), F.normalize(g, dim=-1)
    s = q @ g.T  # [N, M]
    n = len(q)
    right = owner[None, :] == torch.arange(n)[:, None]  # [N, M]
    if diagonal:
        right = torch.eye(n, len(g), dtype=torch.bool)
    if which == "best":
        score = s.masked_fill(~right, float("-inf")).amax(1)  # [N]
    else:  # the first right answer in gallery order
        score = s.gather(1, right.long().argmax(1, keepdim=True))[:, 0]
    if which == "each":  # every right answer ranked on its own, the reciprocal ranks averaged
        above = (s[:, None, :] > s[:, :, None]).sum(2) + 1  # [N, M, M] -> [N, M]: rank of item j for query i
        rr = (1.0 / above.double() * right).sum(1) / right.sum(1)
        return float(rr.mean())
    other = s if which == "first" else s.masked_fill(right, float("-inf"))  # "first": the others above count
    above = (other >= score[:, None]) if ties_against else (other > score[:, None])
    rank = above.sum(1).double() + 1  # [N]
    return float(1 / rank.mean()) if of_mean else float((1 / rank).mean())


_MRR_BUGS = {  # variant of _mrr -> what the learner should do about it
    "diagonal": {"diagonal": True},
    "ties": {"ties_against": True},
    "unnormalised": {"normalise": False},
    "first": {"which": "first"},
    "each": {"which": "each"},
    "of_mean": {"of_mean": True},
}
_MRR_ADVICE = {
    "diagonal": "query i's right answers are every gallery item j with owner[j] == i, not gallery row i",
    "ties": "an item scored exactly as high as the right answer must not push it down: count only the items "
            "scored strictly higher (ties in the query's favour, as the chapter's ranks)",
    "unnormalised": "use cosine similarity (L2-normalise first): scaling a gallery item changed your answer",
    "first": "rank the query's best-scored right answer, and count only wrong items above it: another right "
             "answer ranked higher is a hit, not a miss",
    "each": "rank the query's best-scored right answer once; do not average over all its right answers",
    "of_mean": "average the reciprocal ranks, mean(1 / rank), not 1 / mean(rank)",
}


def _owners(n: int, m: int, seed: int) -> torch.Tensor:
    """``[m]`` owners in ``0 .. n-1``, every query owning at least one item, in a shuffled order."""
    g = torch.Generator().manual_seed(seed)
    owner = torch.cat([torch.arange(n), torch.randint(n, (m - n,), generator=g)])
    return owner[torch.randperm(m, generator=g)]


def _mrr_case(n: int, m: int, d: int, noise: float, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Queries ``[n, d]``, a gallery ``[m, d]`` of noisy copies of their owners, with exact ties: one gallery item
    copied onto another query's item, and one item scaled by 4 (only cosine similarity ignores it)."""
    g = torch.Generator().manual_seed(100 + seed)
    owner = _owners(n, m, seed)
    q = torch.randn(n, d, generator=g)
    gallery = q[owner] + noise * torch.randn(m, d, generator=g)
    for i in range(min(3, n - 1)):  # query i's right answer copied onto an item of query i + 1: an exact tie
        j, k = int((owner == i).nonzero()[0]), int((owner == i + 1).nonzero()[0])
        gallery[k] = gallery[j]
    gallery[int((owner == n - 1).nonzero()[0])] *= 4.0
    return q, gallery, owner


@register("10.mean_reciprocal_rank", points=2, timeout=30,
          hint="S = cosine similarities [N, M]; for query i take the best score among its right answers "
               "(owner == i), count the gallery items scored strictly higher, add one: that is its rank; "
               "return the mean of 1 / rank")
def _mean_reciprocal_rank(fn):
    for n, m, d, noise, seed in [(6, 15, 4, 1.0, 0), (10, 10, 3, 0.8, 1), (8, 30, 5, 1.5, 2), (4, 9, 2, 0.6, 11)]:
        q, g, owner = _mrr_case(n, m, d, noise, seed)
        got = fn(q.clone(), g.clone(), owner.clone())
        what = f"for N={n} queries, M={m} gallery items, owner={owner.tolist()}"
        if torch.is_tensor(got):
            assert got.dim() == 0 and got.is_floating_point(), \
                f"return a float or a 0-d float tensor, got a tensor of shape {list(got.shape)}, {got.dtype}"
            got = float(got)
        elif type(got) is not float:
            raise AssertionError(f"return a float or a 0-d float tensor, got {type(got).__name__} {got!r}")
        want = _mrr(q, g, owner)
        if abs(got - want) < 1e-5:
            continue
        for bug, kw in _MRR_BUGS.items():
            if abs(got - _mrr(q, g, owner, **kw)) < 1e-5:
                raise AssertionError(f"{what}: {_MRR_ADVICE[bug]}")
        raise AssertionError(f"{what}: got {got:.5f}, expected {want:.5f}")


# --- 10.beam_search: the k most likely prefixes instead of the one most likely token ----------------------------

class ToyLM:
    """A next-token model for the tests: ``ToyLM(vocab, seed, eos)(prefix)`` gives ``[vocab]`` scores (logits)
    that depend on the whole prefix (a list of ints, the start token first), drawn from a generator seeded by
    the prefix, with the end token made likelier once a word is written. Picklable: it travels to the sandbox."""

    def __init__(self, vocab: int, seed: int, eos: int):
        self.vocab, self.seed, self.eos = vocab, seed, eos

    def __call__(self, prefix) -> torch.Tensor:
        tokens = torch.as_tensor(prefix).flatten().tolist()
        h = self.seed
        for t in tokens:
            h = (h * 1_000_003 + int(t) + 1) % (2**61 - 1)
        logits = 2.0 * torch.randn(self.vocab, generator=torch.Generator().manual_seed(h))
        if len(tokens) > 1:
            logits[self.eos] += 1.0
        return logits


class TableLM:
    """A next-token model written as a lookup table: ``{prefix tuple: next-token probabilities}``, and
    ``default`` for every other prefix; it returns the log-probabilities as its scores."""

    def __init__(self, table: dict[tuple[int, ...], list[float]], default: list[float]):
        self.table, self.default = table, default

    def __call__(self, prefix) -> torch.Tensor:
        key = tuple(torch.as_tensor(prefix).flatten().tolist())
        return torch.tensor(self.table.get(key, self.default)).log()


def garden_path() -> TableLM:
    """The table where greedy decoding loses: "a" is likelier than "b" as the first word (0.5 vs 0.4), but after
    "b" the caption almost surely ends (0.9), while after "a" nothing is likely. Tokens: 0 = end, 1 = "a",
    2 = "b"; the start token is 3."""
    return TableLM({(3,): [0.1, 0.5, 0.4], (3, 1): [0.3, 0.4, 0.3], (3, 2): [0.9, 0.05, 0.05]},
                   default=[0.7, 0.15, 0.15])


def _beam(next_logits, bos: int, eos: int, max_len: int, k: int, *, log_softmax: bool = True, stop: bool = True,
          length_norm: bool = False) -> tuple[list[int], float]:
    """Beam search as the task states it (the defaults) and the variants a learner's bug gives: a beam of
    ``(tokens, log-probability, finished)``; finished hypotheses stay in it unchanged; stop when all are finished
    or after ``max_len`` steps; return the best of the final beam."""
    beam: list[tuple[list[int], float, bool]] = [([], 0.0, False)]
    for _ in range(max_len):
        if all(done for *_, done in beam):
            break
        candidates = []
        for tokens, score, done in beam:
            if done and stop:
                candidates.append((tokens, score, True))
                continue
            s = torch.as_tensor(next_logits([bos, *tokens])).double()
            logp = s.log_softmax(-1) if log_softmax else s
            candidates += [(tokens + [v], score + lp, v == eos) for v, lp in enumerate(logp.tolist())]
        beam = sorted(candidates, key=lambda c: -c[1])[:k]
    best = max(beam, key=(lambda c: c[1] / len(c[0])) if length_norm else (lambda c: c[1]))
    return best[0], best[1]


def _tokens_and_logp(got, what: str) -> tuple[list[int], float]:
    if type(got) not in (tuple, list) or len(got) != 2:
        raise AssertionError(f"{what}: return a pair (tokens, log_prob), got {type(got).__name__} {got!r}"[:300])
    tokens, logp = got
    if torch.is_tensor(tokens) and tokens.dim() == 1 and not tokens.is_floating_point():
        tokens = tokens.tolist()
    if type(tokens) not in (list, tuple) or any(type(t) is not int for t in tokens):
        raise AssertionError(f"{what}: tokens should be a list of Python ints, got {tokens!r}"[:300])
    if torch.is_tensor(logp) and logp.dim() == 0 and logp.is_floating_point():
        logp = float(logp)
    if type(logp) is not float:
        raise AssertionError(f"{what}: log_prob should be a float, got {type(logp).__name__} {logp!r}"[:300])
    return list(tokens), logp


_BEAM_CASES = [  # vocab, max_len, beam size, eos, seed
    (6, 5, 3, 0, 1), (5, 3, 5, 3, 3), (4, 5, 2, 0, 5), (5, 6, 3, 0, 6), (5, 4, 2, 0, 0), (4, 6, 1, 0, 2),
    (7, 5, 4, 0, 4)]


@register("10.beam_search", points=2, timeout=30,
          hint="keep a list of (tokens, log-probability, finished); at each step extend every unfinished one by "
               "every token (adding log_softmax of its scores), keep the finished ones as they are, sort, keep "
               "the beam_size best; at the end return the best one's tokens and total log-probability")
def _beam_search(fn):
    cases = [(garden_path(), 3, 0, 4, 2, "the garden-path table")]
    cases += [(ToyLM(v, seed, eos), v, eos, max_len, k, f"ToyLM(vocab={v}, seed={seed})")
              for v, max_len, k, eos, seed in _BEAM_CASES]
    for lm, bos, eos, max_len, k, name in cases:
        what = f"{name}, bos_id={bos}, eos_id={eos}, max_len={max_len}, beam_size={k}"
        tokens, logp = _tokens_and_logp(fn(lm, bos, eos, max_len, k), what)
        want, want_logp = _beam(lm, bos, eos, max_len, k)
        if tokens == want:
            if abs(logp - want_logp) < 1e-4:
                continue
            if logp > 0 and abs(math.log(logp) - want_logp) < 1e-4:
                raise AssertionError(f"{what}: return the log-probability (a sum of log-probabilities), not the "
                                     f"probability: {want_logp:.4f}, got {logp:.4f}")
            raise AssertionError(f"{what}: right tokens {want}, but their log-probability is {want_logp:.4f} (the "
                                 f"sum of log_softmax of the scores of every token, the end token included); got "
                                 f"{logp:.4f}")
        if tokens[:1] == [bos] and tokens[1:] == want:
            raise AssertionError(f"{what}: return the generated tokens without the start token")
        greedy = _beam(lm, bos, eos, max_len, 1)[0]
        advice = [
            (k > 1 and tokens == greedy, f"you returned the greedy sequence {greedy}; a beam of {k} keeps the {k} "
                                         "most likely prefixes at every step, not only the best one"),
            (tokens == _beam(lm, bos, eos, max_len, k, log_softmax=False)[0],
             "the scores are logits: turn each step's scores into log-probabilities (log_softmax) before adding "
             "them up, or prefixes are compared on different scales"),
            (tokens == _beam(lm, bos, eos, max_len, k, stop=False)[0],
             f"a hypothesis ends at the end token {eos}: keep it in the beam as it is, never extend it"),
            (tokens == _beam(lm, bos, eos, max_len, k, length_norm=True)[0],
             "return the hypothesis with the highest total log-probability; do not divide by its length"),
        ]
        for matched, message in advice:
            if matched:
                raise AssertionError(f"{what}: {message}")
        raise AssertionError(f"{what}: got {tokens} (log-probability {logp:.4f}), expected {want} "
                             f"({want_logp:.4f})")


# --- 10.fix_chunked_nce: an InfoNCE computed a chunk of rows at a time ---------------------------------------

def _chunked(a: torch.Tensor, b: torch.Tensor, tau: float, chunk: int, *, fixed_targets: bool,
             fixed_average: bool) -> torch.Tensor:
    """The exercise's chunked InfoNCE with either of its two bugs fixed or not (both fixed: the right loss)."""
    a, b = F.normalize(a.double(), dim=-1), F.normalize(b.double(), dim=-1)
    parts = []
    for start in range(0, len(a), chunk):
        stop = min(start + chunk, len(a))
        target = torch.arange(start, stop) if fixed_targets else torch.arange(stop - start)
        s_ab, s_ba = a[start:stop] @ b.T / tau, b[start:stop] @ a.T / tau  # [chunk, B] each
        red = "sum" if fixed_average else "mean"
        parts.append(F.cross_entropy(s_ab, target, reduction=red) + F.cross_entropy(s_ba, target, reduction=red))
    loss = sum(parts) / (2 * len(a)) if fixed_average else torch.stack(parts).mean() / 2
    return loss.to(torch.float32)


@register("10.fix_chunked_nce", points=2, timeout=30, kind="find-the-bug",
          hint="the rows start, ..., stop - 1 of a chunk have their partners in the columns start, ..., stop - 1: "
               "target = torch.arange(start, stop); add up the per-row losses (reduction='sum') and divide by 2B "
               "at the end, since the last chunk can be smaller")
def _fix_chunked_nce(fn):
    for n, d, tau, chunk, seed in [(10, 4, 0.1, 4, 0), (37, 8, 0.07, 16, 1), (12, 3, 0.5, 12, 2),
                                   (9, 5, 1.0, 2, 3), (12, 6, 0.2, 3, 4), (5, 4, 0.3, 8, 5)]:
        a, b = _pairs(n, d, seed)
        b[0] = b[1]  # rows and columns differ
        got = fn(a.clone(), b.clone(), tau, chunk=chunk)
        what = f"chunked_info_nce(B={n}, temperature={tau}, chunk={chunk})"
        assert torch.is_tensor(got) and got.dim() == 0, \
            f"{what}: return a scalar tensor, got {type(got).__name__} {getattr(got, 'shape', '')}"
        want = _chunked(a, b, tau, chunk, fixed_targets=True, fixed_average=True)
        if torch.allclose(got.float(), want, atol=1e-5):
            continue
        targets = ("the targets restart at 0 in every chunk, so after the first chunk the 'positives' are off the "
                   "diagonal of S: row start + i belongs to column start + i")
        average = ("the chunks' mean losses are averaged, but the last chunk is smaller (B is not a multiple of "
                   "chunk), so its rows weigh more: add up the per-row losses (reduction='sum') and divide by 2B")
        for fixed_targets, fixed_average, advice in [(False, False, f"{targets}; and {average}"),
                                                     (False, True, targets), (True, False, average)]:
            bug = _chunked(a, b, tau, chunk, fixed_targets=fixed_targets, fixed_average=fixed_average)
            if torch.allclose(got.float(), bug, atol=1e-5):
                raise AssertionError(f"{what}: {advice}")
        s = F.normalize(a.double(), dim=-1) @ F.normalize(b.double(), dim=-1).T / tau
        if torch.allclose(got.double(), F.cross_entropy(s, torch.arange(n)), atol=1e-5):
            raise AssertionError(f"{what}: only one direction (a→b) is there; the b→a rows count too")
        raise AssertionError(f"{what}: got {float(got):.5f}, the symmetric InfoNCE of the whole batch is "
                             f"{float(want):.5f} (it must not depend on how the batch is cut)")


# --- 10.pick_temperature: choose τ by validation recall@1 (experiment) ------------------------------------------

TEMPERATURES = (0.01, 0.03, 0.1, 0.3, 1.0)
TEMP_SEEDS = (0, 1, 2)
TEMP_EPOCHS, TEMP_LR, TEMP_NOISE = 20, 2e-2, 0.7
TEMP_TRAIN, TEMP_QUERIES = 300, 500
TEMP_TOLERANCE = 0.03  # a temperature within 3 points of the best validation recall@1 is as good a choice


def toy_scenes(n: int, noise: float, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Scenes ``i = 0 .. n-1`` of a 10 × 10 world (scene i is ``(i % 10, (i // 10) % 10)``): images ``[n, 12]``,
    a fixed projection of the two one-hots plus Gaussian noise; captions ``[n, 2]``, the word ids
    ``[x, 10 + y]``."""
    x, y = torch.arange(n) % 10, (torch.arange(n) // 10) % 10
    proj = torch.randn(20, 12, generator=torch.Generator().manual_seed(1234))
    images = torch.cat([F.one_hot(x, 10), F.one_hot(y, 10)], 1).float() @ proj
    return images + noise * torch.randn(images.shape, generator=g), torch.stack([x, 10 + y], 1)


class ToyTowers(torch.nn.Module):
    """An MLP image tower and a bag-of-words caption tower into a 16-d space."""

    def __init__(self):
        super().__init__()
        self.image = torch.nn.Sequential(torch.nn.Linear(12, 32), torch.nn.ReLU(), torch.nn.Linear(32, 16))
        self.text = torch.nn.EmbeddingBag(20, 16, mode="mean")


def temperature_runs(temperatures: tuple[float, ...], seeds: tuple[int, ...]) -> list[dict[str, float]]:
    """Train :class:`ToyTowers` with the symmetric InfoNCE at each fixed temperature and seed (a run per pair, in
    ``temperatures``-major order): ``TEMP_EPOCHS`` full-batch Adam steps on ``TEMP_TRAIN`` noisy scenes (each of
    the 100 scenes three times; the seed draws the data and the initial weights, the same for every τ). Each run
    returns its final training loss and its validation recall@1: ``TEMP_QUERIES`` fresh noisy images, each
    ranking the 100 distinct captions (a hit when its own scene's caption comes first).

    All runs train at once, as one stack of independent models (``[M, ...]`` weights): their losses are summed,
    so each model's gradient is its own loss's, and Adam updates every weight on its own — the same as training
    them one after the other, in a fraction of the time.
    """
    data, inits = [], []
    for seed in seeds:
        g = torch.Generator().manual_seed(seed)
        train_images, train_captions = toy_scenes(TEMP_TRAIN, TEMP_NOISE, g)
        queries, _ = toy_scenes(TEMP_QUERIES, TEMP_NOISE, g)
        data.append((train_images, train_captions, queries))
        torch.manual_seed(seed)
        towers = ToyTowers()
        inits.append([towers.image[0].weight, towers.image[0].bias, towers.image[2].weight, towers.image[2].bias,
                      towers.text.weight])
    pick = [seeds.index(s) for _ in temperatures for s in seeds]  # run -> its seed's data and weights
    taus = torch.tensor([t for t in temperatures for _ in seeds])[:, None, None]  # [M, 1, 1]
    w1, b1, w2, b2, emb = (torch.stack([inits[i][k].detach() for i in pick]).requires_grad_()
                           for k in range(5))  # [M, 32, 12], [M, 32], [M, 16, 32], [M, 16], [M, 20, 16]
    x, words, queries = (torch.stack([data[i][k] for i in pick]) for k in range(3))  # [M, N, 12], [M, N, 2], …
    captions = toy_scenes(100, 0.0, torch.Generator())[1].expand(len(pick), 100, 2)  # the 100 distinct captions
    rows = torch.arange(len(pick))[:, None, None]

    def embed(images: torch.Tensor, caps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        za = torch.relu(images @ w1.mT + b1[:, None]) @ w2.mT + b2[:, None]  # [M, N, 16]
        zb = emb[rows, caps].mean(2)  # [M, N, 16]: EmbeddingBag(mode="mean")
        return F.normalize(za, dim=-1), F.normalize(zb, dim=-1)

    opt = torch.optim.Adam([w1, b1, w2, b2, emb], lr=TEMP_LR)
    target = torch.arange(TEMP_TRAIN).repeat(len(pick))
    for _ in range(TEMP_EPOCHS):
        za, zb = embed(x, words)
        s = za @ zb.mT / taus  # [M, N, N]
        ce = [F.cross_entropy(m.flatten(0, 1), target, reduction="none").view(len(pick), -1).mean(1)
              for m in (s, s.mT)]
        loss = (ce[0] + ce[1]) / 2  # [M]: each run's InfoNCE
        opt.zero_grad()
        loss.sum().backward()
        opt.step()
    with torch.no_grad():
        za, zb = embed(queries, captions)
        hits = (za @ zb.mT).argmax(2) == torch.arange(TEMP_QUERIES) % 100  # [M, queries]
    return [{"train loss": float(lo), "val recall@1": float(h)}
            for lo, h in zip(loss.detach(), hits.float().mean(1))]


_TEMP_CACHE: dict[float, dict[str, float]] = {}


def temperature_table() -> dict[float, dict[str, float]]:
    """``{temperature: {"train loss": …, "val recall@1": …}}`` for each of ``TEMPERATURES``, the means over
    ``TEMP_SEEDS`` of :func:`temperature_runs`: the sweep of 10.pick_temperature (computed once per process)."""
    if not _TEMP_CACHE:
        with torch.random.fork_rng():  # leave the caller's global random state as it was
            runs = temperature_runs(TEMPERATURES, TEMP_SEEDS)
        for i, tau in enumerate(TEMPERATURES):
            mine = runs[i * len(TEMP_SEEDS):(i + 1) * len(TEMP_SEEDS)]
            _TEMP_CACHE[tau] = {k: sum(r[k] for r in mine) / len(mine) for k in mine[0]}
    return {tau: dict(row) for tau, row in _TEMP_CACHE.items()}


@register("10.pick_temperature", points=2, timeout=60, kind="experiment",
          hint="read the sweep's validation recall@1 column, not the training loss (losses at different τ are on "
               "different scales); the best temperature, or one within 3 points of it, is the answer")
def _pick_temperature(fn):
    got = fn()
    if type(got) not in (int, float):
        raise AssertionError(f"best_temperature() should return a Python float, one of {list(TEMPERATURES)}; got "
                             f"{type(got).__name__} {got!r}")
    match = [t for t in TEMPERATURES if abs(got - t) < 1e-9]
    assert match, f"choose one of the temperatures of the sweep {list(TEMPERATURES)}, got {got}"
    recall = {t: row["val recall@1"] for t, row in temperature_table().items()}
    best = max(recall.values())
    good = [t for t, r in recall.items() if r >= best - TEMP_TOLERANCE]
    if match[0] in good:
        return
    side = ("too small a τ makes the softmax so sharp that nearly all the gradient goes to a few hardest "
            "negatives: training is brittle" if got < min(good)
            else "too large a τ leaves the softmax flat: every negative is pushed about equally, the near misses "
                 "no harder than the rest")
    raise AssertionError(f"τ = {got} reaches a validation recall@1 of {recall[match[0]]:.1%}, the best temperature "
                         f"of the sweep {best:.1%}: pick the temperature by the validation column; {side}")
