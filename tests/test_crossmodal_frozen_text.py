"""mmcourse.crossmodal.frozen_text: frozen-tower embeddings computed once (whole sentences or word means)."""

import pytest
import torch

from mmcourse.crossmodal.frozen_text import PrecomputedFeatures, SentenceEmbedder, caption_embeddings
from mmcourse.data.text import Vocab, encode_batch


class CountingEncoder:
    """A fake sentence encoder: a deterministic vector per string; counts how many strings it ran on."""

    def __init__(self):
        self.seen = 0

    def encode(self, texts, batch_size=256):
        self.seen += len(texts)
        return torch.stack([torch.tensor([float(len(t)), float(sum(map(ord, t)) % 7), 1.0]) for t in texts])


def test_sentence_mode_embeds_each_distinct_text_once():
    enc = CountingEncoder()
    emb = SentenceEmbedder(enc, "sentences")
    out = emb(["a red disc", "a box", "a red disc"])
    assert enc.seen == 2 and out.shape == (3, 3)
    torch.testing.assert_close(out[0], out[2])
    torch.testing.assert_close(out[1], enc.encode(["a box"])[0])


def test_word_mode_is_the_mean_of_word_vectors_for_strings_and_ids():
    enc = CountingEncoder()
    emb = SentenceEmbedder(enc, "words")
    vocab = Vocab(["a", "red", "disc", "box"])
    ids = encode_batch(vocab, ["a red disc", "a box"], max_len=5)
    by_ids = caption_embeddings(emb, vocab, ids)
    by_text = emb(["a red disc", "a box"])
    ref = enc.encode(["a", "red", "disc"]).mean(0)
    torch.testing.assert_close(by_ids, by_text)
    torch.testing.assert_close(by_text[0], ref)
    assert enc.seen == 4 + 3  # the vocabulary once, plus the reference call


def test_bad_input():
    with pytest.raises(ValueError, match="mode"):
        SentenceEmbedder(CountingEncoder(), "tokens")
    with pytest.raises(ValueError, match="no texts"):
        SentenceEmbedder(CountingEncoder())([])
    with pytest.raises(ValueError, match=r"\[B, 3\]"):
        PrecomputedFeatures(3)(torch.randn(2, 4))
