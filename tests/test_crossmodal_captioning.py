"""mmcourse.crossmodal captioning: decoder, teacher forcing, greedy/beam decoding, exact-attribute accuracy."""

import itertools

import pytest
import torch
from torch import nn

from mmcourse.batch import Batch
from mmcourse.crossmodal.caption_metrics import attribute_accuracy, attribute_word_ids, mentions
from mmcourse.crossmodal.captioning import CaptionDecoder, Captioner, CaptionLoss, caption_targets_mask, memory_data
from mmcourse.crossmodal.decoding import beam_search, greedy_decode
from mmcourse.data.text import Vocab
from mmcourse.engine import fit


def markov_model(V=4, seed=0):
    """next_logits depending on the last token and the prefix length (a toy language model)."""
    table = torch.randn(8, V, V, generator=torch.Generator().manual_seed(seed)) * 2

    def next_logits(prefix):
        return table[prefix.shape[1] - 1, prefix[:, -1]]

    return next_logits, table


def sequence_logprob(next_logits, seq, bos, eos):
    """Log-probability of one sequence, counting tokens up to and including the first end token."""
    prefix, total = torch.tensor([[bos]]), 0.0
    for tok in seq:
        total += float(next_logits(prefix).log_softmax(-1)[0, tok])
        if tok == eos:
            break
        prefix = torch.cat([prefix, torch.tensor([[tok]])], 1)
    return total


def test_greedy_equals_stepwise_argmax():
    f, _ = markov_model()
    out = greedy_decode(f, 3, bos_id=2, eos_id=0, max_len=6)
    assert out.shape == (3, 6)
    prefix, expect = torch.tensor([[2]]), []
    for _ in range(6):
        tok = int(f(prefix).argmax())
        expect.append(tok if not (expect and 0 in expect) else 0)
        prefix = torch.cat([prefix, torch.tensor([[tok]])], 1)
    assert out[0].tolist() == expect and (out == out[0]).all()


def test_beam_of_one_is_greedy_and_wide_beam_is_exact():
    f, _ = markov_model(V=3, seed=1)
    greedy = greedy_decode(f, 2, bos_id=2, eos_id=0, max_len=3)
    assert torch.equal(beam_search(f, 2, beam_size=1, bos_id=2, eos_id=0, max_len=3), greedy)
    best = beam_search(f, 1, beam_size=27, bos_id=2, eos_id=0, max_len=3)[0].tolist()
    scores = {s: sequence_logprob(f, s, 2, 0) for s in itertools.product(range(3), repeat=3)}
    exact = max(scores.values())
    assert sequence_logprob(f, best, 2, 0) == pytest.approx(exact, abs=1e-5)
    assert exact >= sequence_logprob(f, greedy[0].tolist(), 2, 0) - 1e-6


def test_decoding_pads_after_the_end_token():
    V = 5
    def f(prefix):  # always prefers the end token 4 at step 2
        logits = torch.zeros(prefix.shape[0], V)
        logits[:, 3 if prefix.shape[1] < 2 else 4] = 5.0
        return logits
    for out in (greedy_decode(f, 2, bos_id=1, eos_id=4, max_len=5),
                beam_search(f, 2, beam_size=3, bos_id=1, eos_id=4, max_len=5)):
        assert out[0].tolist() == [3, 4, 0, 0, 0]


def test_targets_mask_trains_words_and_first_end():
    caps = torch.tensor([[5, 6, 0, 0], [5, 6, 7, 8]])
    assert caption_targets_mask(caps).tolist() == [[True, True, True, False], [True, True, True, True]]


class TinyImage(nn.Module):
    """An 'image' encoder for vectors with ``tokens`` (two tokens: the two halves of the input)."""

    def __init__(self, in_dim=8, out_dim=16):
        super().__init__()
        self.out_dim = out_dim
        self.lin = nn.Linear(in_dim // 2, out_dim)

    def tokens(self, x):
        return self.lin(x.view(x.shape[0], 2, -1))  # [B, 2, D]

    def forward(self, x):
        return self.tokens(x).mean(1)


def caption_data(n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randint(0, 4, (n,), generator=g), torch.randint(0, 3, (n,), generator=g)
    image = torch.cat([nn.functional.one_hot(a, 4), nn.functional.one_hot(b, 4)], 1).float()
    text = torch.zeros(n, 4, dtype=torch.long)
    text[:, 0], text[:, 1] = 3 + a, 7 + b  # "<a-word> <b-word>" then padding
    text[b == 2, 2] = 10  # some captions are one word longer
    return {"image": image, "text": text}


def test_decoder_is_causal():
    dec = CaptionDecoder(12, 16, dim=16, depth=2, heads=2, max_len=6).eval()
    mem = torch.randn(2, 3, 16)
    p1, p2 = torch.tensor([[2, 5, 6, 7]] * 2), torch.tensor([[2, 5, 9, 9]] * 2)
    l1, l2 = dec(p1, mem), dec(p2, mem)
    assert l1.shape == (2, 4, 12)
    torch.testing.assert_close(l1[:, :2], l2[:, :2])
    assert not torch.allclose(l1[:, 2:], l2[:, 2:])
    with pytest.raises(ValueError, match="same B"):
        dec(p1, torch.randn(3, 3, 16))


@pytest.mark.parametrize("frozen", [False, True])
def test_captioner_learns_to_describe(frozen):
    torch.manual_seed(0)
    enc = TinyImage()
    if frozen:
        enc.requires_grad_(False)
    dec = CaptionDecoder(12, 16, dim=32, depth=1, heads=2, max_len=4, dropout=0.0, memory_len=2)
    model = Captioner(enc, dec)
    data, test = caption_data(400, 0), caption_data(100, 1)
    train = memory_data(model, data) if frozen else Batch(data, {})  # a frozen encoder's tokens: computed once
    hist = fit(model, train, loss=CaptionLoss(), epochs=20, lr=5e-3, batch_size=50, drop_last=True, clip_grad=1.0,
               device="cpu", progress=False)
    losses = hist["train_loss"]
    assert losses[-1] < 0.3 * losses[0], losses
    assert hist.last["train_word_acc"] > 0.9
    for method in ("greedy", "beam"):
        out = model.generate(test["image"], method=method, beam_size=3, chunk=32)
        assert out.shape == (100, 4)
        exact = (out == test["text"]).all(1).float().mean()
        assert exact > 0.9, (method, exact)
    with pytest.raises(ValueError, match="greedy"):
        model.generate(test["image"], method="sample")


def test_attribute_accuracy_counts_synonyms_and_rejects_two_classes():
    vocab = Vocab(["a", "red", "crimson", "blue", "circle", "disc", "square", "small", "big"])
    words = {"color": (("red", "crimson"), ("blue",)), "shape": (("circle", "disc"), ("square",))}
    table = attribute_word_ids(vocab, words)
    assert table["color"].shape == (2, 2) and table["color"][1, 1] == -1

    def enc(s):
        return vocab.encode(s) + [0] * (5 - len(vocab.encode(s)))

    caps = torch.tensor([enc("a crimson disc"), enc("a blue circle"), enc("a red square"), enc("a red blue disc")])
    targets = {"color": torch.tensor([0, 1, 0, 0]), "shape": torch.tensor([0, 0, 0, 0]),
               "size": torch.tensor([0, 0, 0, 0])}
    assert mentions(caps, table["color"]).tolist() == [[True, False], [False, True], [True, False], [True, True]]
    acc = attribute_accuracy(caps, targets, table)
    assert acc == pytest.approx({"color": 0.75, "shape": 0.75, "all": 0.5})
    with pytest.raises(ValueError, match="no word in the vocabulary"):
        attribute_word_ids(vocab, {"size": (("small",), ("medium",))})
    with pytest.raises(ValueError, match="no attribute to score"):
        attribute_accuracy(caps, {"motion": torch.zeros(4)}, table)


def test_world_lexicon_has_every_attribute_word():
    from mmcourse.data.captions import world_lexicon

    table = attribute_word_ids(world_lexicon())
    assert table["shape"].shape == (10, 3) and table["color"].shape == (6, 3) and table["size"].shape == (3, 3)


def test_memory_grid_pools_square_token_grids():
    class GridImage(nn.Module):
        out_dim = 4

        def tokens(self, x):
            return x.flatten(2).transpose(1, 2)  # [B, 3, 4, 4] -> 16 tokens of width 3

        def forward(self, x):
            return self.tokens(x).mean(1)

    x = torch.arange(2 * 3 * 16, dtype=torch.float).view(2, 3, 4, 4)
    model = Captioner(GridImage(), CaptionDecoder(12, 3, dim=8, depth=1, heads=2, max_len=4), memory_grid=2)
    mem = model.memory(x)
    assert mem.shape == (2, 4, 3)
    torch.testing.assert_close(mem[:, 0], x[:, :, :2, :2].mean((2, 3)))
    model.memory_grid = 3
    assert model.memory(x).shape == (2, 9, 3)
    bad = Captioner(GridImage(), CaptionDecoder(12, 3, dim=8, depth=1, heads=2, max_len=4), memory_grid=2)
    with pytest.raises(ValueError, match="square grid"):
        bad.memory(torch.zeros(1, 3, 2, 3))
