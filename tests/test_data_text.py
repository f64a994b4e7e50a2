"""Tests for the text pipeline (mmcourse/data/text.py)."""

from __future__ import annotations

import pytest
import torch

from mmcourse.data.text import (
    CLS,
    PAD,
    UNK,
    Vocab,
    bucket_length,
    encode_batch,
    hf_tokenize,
    minilm_path,
    pad_batch,
    pad_to_bucket,
    text_mask,
    tokenize,
)


def test_tokenize_lowercases_and_drops_punctuation():
    assert tokenize("A small, RED circle -- near the top!") == ["a", "small", "red", "circle", "near", "the", "top"]
    assert tokenize("mid-sized don't") == ["mid-sized", "don't"]
    with pytest.raises(TypeError, match="str"):
        tokenize(3)  # type: ignore[arg-type]


def test_vocab_specials_frequency_order_and_unk():
    v = Vocab.build(["a red circle", "a blue circle", "a red square"])
    assert v.itos[:3] == ["<pad>", "<unk>", "<cls>"] and (PAD, UNK, CLS) == (0, 1, 2)
    assert v.itos[3:5] == ["a", "circle"] and v.itos[5] == "red"  # by count, ties a-z
    assert v.encode("a green circle") == [v.stoi["a"], UNK, v.stoi["circle"]]
    assert v.encode("a", add_cls=True) == [CLS, v.stoi["a"]]
    assert v.decode(v.encode("a red square")) == "a red square"
    assert len(Vocab.build(["a a b"], min_freq=2)) == 4
    with pytest.raises(ValueError, match="outside this vocabulary"):
        v.decode([99])
    with pytest.raises(ValueError, match="twice"):
        Vocab(["x", "x"])


def test_pad_batch_mask_and_too_long():
    ids = pad_batch([[5, 6, 7], [8]])
    assert torch.equal(ids, torch.tensor([[5, 6, 7], [8, 0, 0]]))
    assert torch.equal(text_mask(ids), torch.tensor([[True, True, True], [True, False, False]]))
    with pytest.raises(ValueError, match="4 tokens, more than max_len=3"):
        pad_batch([[1, 2], [3, 4, 5, 6]], max_len=3)
    assert pad_batch([[1, 2, 3, 4]], max_len=3, truncate=True).tolist() == [[1, 2, 3]]
    with pytest.raises(ValueError, match="no sequences"):
        pad_batch([])
    with pytest.raises(TypeError, match="integer token ids"):
        text_mask(torch.zeros(2, 3))


def test_buckets():
    assert bucket_length(5) == 8 and bucket_length(9) == 16
    assert pad_to_bucket([[1] * 9, [2]]).shape == (2, 16)
    with pytest.raises(ValueError, match="largest bucket"):
        bucket_length(500)


def test_encode_batch_fixed_width_and_error():
    v = Vocab.build(["a red circle"])
    out = encode_batch(v, ["a red circle", "circle"], max_len=5, add_cls=True)
    assert out.shape == (2, 5) and out[0, 0] == CLS
    with pytest.raises(ValueError, match="max_len=2"):
        encode_batch(v, ["a red circle"], max_len=2)


def test_hf_tokenizer_offline_minilm():
    assert (minilm_path() / "tokenizer.json").exists()
    enc = hf_tokenize(["a small red circle", "a big blue square near the top"], max_len=16)
    assert enc["input_ids"].shape == (2, 16) and enc["input_ids"].dtype == torch.int64
    assert enc["attention_mask"][0].sum() == 6  # [CLS] a small red circle [SEP]
    with pytest.raises(ValueError, match="max_len=4"):
        hf_tokenize(["a small red circle near the top"], max_len=4)
    assert hf_tokenize(["a small red circle near the top"], max_len=4, truncate=True)["input_ids"].shape == (1, 4)
