"""Caption generation (chapter 10): a small Transformer decoder that writes a caption for an image.

The decoder reads the image as a sequence of feature tokens (``encoder.tokens(image)``, or one pooled
vector) through cross-attention, and the caption so far through causal self-attention. It is trained with
teacher forcing (the true previous words are fed in, every position predicts its next word at once) and
decodes greedily or with beam search (``mmcourse.crossmodal.decoding``). Captions follow the contract's
text format, PAD=0 after the last word; the decoder starts from ``bos_id`` (the vocabulary's ``<cls>``) and
ends a caption by predicting PAD, which doubles as end-of-sequence.

The captioner speaks the dict contract — ``captioner({"image": x, "text": captions}) -> {"caption": logits}``
— and :class:`CaptionLoss` is its next-word cross-entropy, so ``fit(captioner, data, loss=CaptionLoss())``
trains it. A frozen encoder's image tokens never change: :func:`memory_data` computes them once, and the
captioner reads them from the input ``"memory"`` instead of running the encoder every epoch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmcourse.batch import Batch
from mmcourse.crossmodal.contrastive import tensors_of
from mmcourse.crossmodal.decoding import beam_search, greedy_decode
from mmcourse.layers.attention import MultiHeadAttention
from mmcourse.layers.positional import LearnedPositionalEncoding

PAD_ID, BOS_ID = 0, 2  # the course vocabulary's <pad> and <cls>


class DecoderBlock(nn.Module):
    """Pre-norm decoder block: causal self-attention, cross-attention to the image tokens, then an MLP."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0):
        super().__init__()
        self.self_attn = MultiHeadAttention(dim, heads, dropout=dropout)
        self.cross_attn = MultiHeadAttention(dim, heads, dropout=dropout)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, int(dim * mlp_ratio)), nn.GELU(), nn.Linear(int(dim * mlp_ratio), dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, memory: Tensor) -> Tensor:
        """``x [B, T, D]`` (the caption so far), ``memory [B, M, D]`` (image tokens) -> ``[B, T, D]``."""
        x = x + self.drop(self.self_attn(self.norm1(x), is_causal=True)[0])
        h = self.norm2(x)
        x = x + self.drop(self.cross_attn(h, memory, memory)[0])
        return x + self.drop(self.mlp(self.norm3(x)))


class CaptionDecoder(nn.Module):
    """Word embeddings + learned positions → ``depth`` decoder blocks → next-word logits ``[B, T, V]``.

    Args:
        vocab_size: size of the caption vocabulary. memory_dim: width of the image tokens it reads.
        dim, depth, heads: the decoder's width, number of blocks and attention heads.
        max_len: longest caption it can write (in words, without the start token).
        memory_len: number of image tokens; when given, each gets a learned position vector, so the decoder
            knows *where* a token sits (attention alone is blind to the order of what it reads).
    """

    def __init__(self, vocab_size: int, memory_dim: int, dim: int = 128, depth: int = 2, heads: int = 4,
                 max_len: int = 16, dropout: float = 0.1, memory_len: int | None = None):
        super().__init__()
        self.vocab_size, self.max_len, self.dim = vocab_size, max_len, dim
        self.embed = nn.Embedding(vocab_size, dim)
        self.pos = LearnedPositionalEncoding(dim, max_len + 1)
        self.mem_proj = nn.Linear(memory_dim, dim)
        self.mem_pos = LearnedPositionalEncoding(dim, memory_len) if memory_len else None
        self.blocks = nn.ModuleList(DecoderBlock(dim, heads, dropout=dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, vocab_size)

    def forward(self, prefix: Tensor, memory: Tensor) -> Tensor:
        """``prefix [B, T]`` token ids, ``memory [B, M, memory_dim]`` -> logits ``[B, T, V]``."""
        if prefix.dim() != 2 or memory.dim() != 3 or prefix.shape[0] != memory.shape[0]:
            raise ValueError(f"CaptionDecoder expects prefix [B, T] and memory [B, M, D] with the same B, got "
                             f"{list(prefix.shape)} and {list(memory.shape)}")
        x = self.pos(self.embed(prefix))  # [B, T, D]
        mem = self.mem_proj(memory)  # [B, M, D]
        if self.mem_pos is not None:
            mem = self.mem_pos(mem)
        for block in self.blocks:
            x = block(x, mem)
        return self.out(self.norm(x))


def caption_targets_mask(captions: Tensor, eos_id: int = PAD_ID) -> Tensor:
    """Bool ``[B, L]``: the positions that are trained — every word and the first end token, nothing after."""
    is_end = (captions == eos_id).long()
    return (is_end.cumsum(1) - is_end) == 0


class Captioner(nn.Module):
    """An image encoder (its ``tokens`` if it has them, else its pooled vector) feeding a ``CaptionDecoder``.

    ``captioner(inputs)`` reads ``inputs["image"]`` (or precomputed tokens ``inputs["memory"]``) and the
    captions ``inputs["text"]``, and returns ``{"caption": next-word logits [B, L, V]}`` (teacher forcing).
    A frozen encoder (no trainable parameter) stays in eval mode.

    Args:
        memory_grid: average-pool a square grid of image tokens (e.g. SmallCNN's 8×8) down to
            ``memory_grid × memory_grid`` tokens, which makes cross-attention cheaper.
    """

    def __init__(self, encoder: nn.Module, decoder: CaptionDecoder, *, use_tokens: bool = True,
                 memory_grid: int | None = None, bos_id: int = BOS_ID, eos_id: int = PAD_ID):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.use_tokens = use_tokens and hasattr(encoder, "tokens")
        self.memory_grid = memory_grid
        self.bos_id, self.eos_id = bos_id, eos_id

    @property
    def frozen_encoder(self) -> bool:
        return not any(p.requires_grad for p in self.encoder.parameters())

    def train(self, mode: bool = True) -> Captioner:
        super().train(mode)
        if self.frozen_encoder:
            self.encoder.eval()
        return self

    def memory(self, images: Tensor) -> Tensor:
        """Image tokens ``[B, M, D]`` the decoder attends to."""
        if not self.use_tokens:
            return self.encoder(images).unsqueeze(1)
        tok = self.encoder.tokens(images)  # [B, M, D]
        if self.memory_grid is None:
            return tok
        side = math.isqrt(tok.shape[1])
        if side * side != tok.shape[1]:
            raise ValueError(f"memory_grid needs a square grid of tokens, got {tok.shape[1]} tokens")
        grid = tok.transpose(1, 2).reshape(tok.shape[0], tok.shape[2], side, side)  # [B, D, s, s]
        return F.adaptive_avg_pool2d(grid, self.memory_grid).flatten(2).transpose(1, 2)  # [B, g*g, D]

    def logits_from_memory(self, memory: Tensor, captions: Tensor) -> Tensor:
        """Teacher forcing: feed ``<bos> w1 .. w_{L-1}``, get logits ``[B, L, V]`` predicting ``w1 .. w_L``."""
        bos = torch.full_like(captions[:, :1], self.bos_id)
        return self.decoder(torch.cat([bos, captions[:, :-1]], dim=1), memory)

    def forward(self, inputs: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None
                ) -> dict[str, Tensor]:
        if "text" not in inputs or not ({"image", "memory"} & set(inputs)):
            raise KeyError(f"Captioner reads 'image' (or precomputed 'memory') and 'text'; got {sorted(inputs)}")
        captions = inputs["text"]
        if captions.shape[1] > self.decoder.max_len:
            raise ValueError(f"captions have {captions.shape[1]} tokens but the decoder was built with "
                             f"max_len={self.decoder.max_len}")
        memory = inputs["memory"] if "memory" in inputs else self.memory(inputs["image"])
        return {"caption": self.logits_from_memory(memory, captions)}  # [B, L, V]

    @torch.no_grad()
    def generate(self, images: Tensor, *, method: str = "greedy", beam_size: int = 3, max_len: int | None = None,
                 length_penalty: float = 0.0, chunk: int = 512) -> Tensor:
        """Captions ``[B, max_len]`` (PAD after the end) for ``images``, ``chunk`` images at a time."""
        if method not in ("greedy", "beam"):
            raise ValueError(f"method must be 'greedy' or 'beam', got {method!r}")
        was = self.training
        self.eval()
        max_len = max_len or self.decoder.max_len
        outs = []
        for lo in range(0, images.shape[0], chunk):
            mem = self.memory(images[lo:lo + chunk])
            if method == "greedy":
                outs.append(greedy_decode(lambda p, m=mem: self.decoder(p, m)[:, -1], mem.shape[0],
                                          bos_id=self.bos_id, eos_id=self.eos_id, max_len=max_len,
                                          device=mem.device))
            else:
                mem_k = mem.repeat_interleave(beam_size, dim=0)  # [B*K, M, D]
                outs.append(beam_search(lambda p, m=mem_k: self.decoder(p, m)[:, -1], mem.shape[0],
                                        beam_size=beam_size, bos_id=self.bos_id, eos_id=self.eos_id,
                                        max_len=max_len, device=mem.device, length_penalty=length_penalty))
        self.train(was)
        return torch.cat(outs)


class CaptionLoss(nn.Module):
    """Next-word cross-entropy over the trained positions (every word and the first end token; see
    ``caption_targets_mask``): a loss for ``fit``. The targets are the captions themselves,
    ``batch.inputs["text"]``; the part ``word_acc`` is the share of those positions predicted right."""

    def __init__(self, eos_id: int = PAD_ID):
        super().__init__()
        self.eos_id = eos_id

    def forward(self, outputs: Mapping[str, Tensor], batch: Batch) -> tuple[Tensor, dict[str, Any]]:
        logits, captions = outputs["caption"], batch.inputs["text"]  # [B, L, V], [B, L]
        mask = caption_targets_mask(captions, self.eos_id)
        ce = F.cross_entropy(logits.transpose(1, 2).float(), captions, reduction="none")  # [B, L]
        n = mask.sum()
        correct = ((logits.argmax(-1) == captions) & mask).sum()
        return (ce * mask).sum() / n.clamp_min(1), {"word_acc": (correct, n)}


@torch.no_grad()
def image_memory(model: Captioner, images: Tensor, chunk: int = 512) -> Tensor:
    """The (frozen) encoder's tokens for all ``images``, in chunks, on the model's device."""
    dev = next(model.parameters()).device
    model.encoder.eval()
    return torch.cat([model.memory(images[i:i + chunk].to(dev)) for i in range(0, images.shape[0], chunk)])


def memory_data(model: Captioner, data: object) -> Batch:
    """Training data for a captioner whose encoder is frozen: ``{"memory": image tokens, "text": captions}``,
    the tokens computed once (they never change), so ``fit`` trains only the decoder's side."""
    if not model.frozen_encoder:
        raise ValueError("memory_data is for a frozen encoder (its tokens never change); this encoder trains")
    t = tensors_of(data, ("image", "text"))
    mem = image_memory(model, t["image"])
    return Batch({"memory": mem, "text": t["text"].to(mem.device)}, {})
