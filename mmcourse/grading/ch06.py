"""Hidden tests of chapter 6's exercises (recurrent encoders): a GRU cell, an LSTM cell, masked mean pooling.

The learner's notebook is ``solutions/06_recurrent_encoders.ipynb`` (``exercises/`` holds the blank copy).
Every test compares with PyTorch's own cell (``nn.GRUCell``, ``nn.LSTMCell``) given the same weights.
"""

from __future__ import annotations

import torch
from torch import nn

from mmcourse.grading.registry import register


def _weights(cell: nn.Module) -> tuple:
    return cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh


def _inputs(hidden: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(3, 5, generator=g, dtype=torch.double), torch.randn(3, hidden, generator=g, dtype=torch.double)


@register("06.gru_cell", points=2, timeout=30,
          hint="split W_ih x + b_ih and W_hh h + b_hh into (r, z, n) parts with .chunk(3, -1); "
               "n = tanh(x_n + r * h_n); h' = (1 - z) * n + z * h")
def _gru_cell(fn):
    for hidden, seed in ((4, 0), (7, 1)):
        torch.manual_seed(seed)
        cell = nn.GRUCell(5, hidden).double()
        x, h = _inputs(hidden, seed)
        with torch.no_grad():
            got = fn(x, h, *_weights(cell))
            want = cell(x, h)
        assert isinstance(got, torch.Tensor), f"return a tensor h' of shape [B, H], got {type(got).__name__}"
        assert tuple(got.shape) == tuple(want.shape), f"h' has shape {tuple(got.shape)}, expected {tuple(want.shape)}"
        with torch.no_grad():
            w_ih, w_hh, b_ih, b_hh = _weights(cell)
            gi, gh = x @ w_ih.T + b_ih, h @ w_hh.T + b_hh
            r, z = torch.sigmoid(gi[:, :hidden] + gh[:, :hidden]), torch.sigmoid(gi[:, hidden:2 * hidden]
                                                                                 + gh[:, hidden:2 * hidden])
            n = torch.tanh(gi[:, 2 * hidden:] + r * gh[:, 2 * hidden:])
            if torch.allclose(got, z * n + (1 - z) * h, atol=1e-6):
                raise AssertionError("z and 1 - z are swapped: torch keeps the old state with z, h' = (1-z)*n + z*h")
        torch.testing.assert_close(got, want, msg=lambda m: f"your GRU cell differs from nn.GRUCell: {m}")


@register("06.lstm_cell", points=2, timeout=30,
          hint="gates = W_ih x + b_ih + W_hh h + b_hh; i, f, g, o = gates.chunk(4, -1); "
               "c' = σ(f)·c + σ(i)·tanh(g); h' = σ(o)·tanh(c')")
def _lstm_cell(fn):
    for hidden, seed in ((4, 0), (6, 2)):
        torch.manual_seed(seed)
        cell = nn.LSTMCell(5, hidden).double()
        x, h = _inputs(hidden, seed)
        c = torch.randn_like(h)
        with torch.no_grad():
            got = fn(x, (h, c), *_weights(cell))
            want_h, want_c = cell(x, (h, c))
        assert isinstance(got, tuple) and len(got) == 2, "return the pair (h', c')"
        got_h, got_c = got
        if torch.allclose(got_c, want_h, atol=1e-6) and torch.allclose(got_h, want_c, atol=1e-6):
            raise AssertionError("you returned (c', h'); return (h', c') in that order")
        torch.testing.assert_close(got_c, want_c, msg=lambda m: f"the new cell state c' differs: {m}")
        torch.testing.assert_close(got_h, want_h, msg=lambda m: f"the new hidden state h' differs: {m}")


@register("06.masked_mean", points=2, timeout=30,
          hint="multiply by mask[..., None], sum over L, divide by the number of real tokens clamped to >= 1")
def _masked_mean(fn):
    g = torch.Generator().manual_seed(0)
    h = torch.randn(4, 6, 3, generator=g)
    lengths = torch.tensor([6, 2, 1, 4])
    mask = torch.arange(6)[None] < lengths[:, None]
    got = fn(h, mask)
    assert isinstance(got, torch.Tensor), f"return a tensor [B, D], got {type(got).__name__}"
    assert tuple(got.shape) == (4, 3), f"the result has shape {tuple(got.shape)}, expected (4, 3) = [B, D]"
    want = torch.stack([h[i, : int(n)].mean(0) for i, n in enumerate(lengths)])
    if torch.allclose(got, h.mean(1), atol=1e-6):
        raise AssertionError("this is the mean over all positions: padded positions must not count")
    torch.testing.assert_close(got, want, msg=lambda m: f"masked mean differs from the mean over real tokens: {m}")
    empty = fn(h[:1], torch.zeros(1, 6, dtype=torch.bool))
    assert torch.isfinite(empty).all() and torch.all(empty == 0), \
        "a caption with no real token must give zeros, not NaN (clamp the count to at least 1)"
