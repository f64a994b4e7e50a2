"""Recurrent layers from scratch: RNN, LSTM and GRU cells and multi-layer, bidirectional wrappers (chapter 06).

The wrappers name their parameters exactly as ``nn.RNN``/``nn.LSTM``/``nn.GRU`` do (``weight_ih_l0``,
``bias_hh_l1_reverse``, ...), so ``ours.load_state_dict(theirs.state_dict())`` copies weights and the two agree.
Padding is handled with a mask instead of packing: at a padded step the state is carried over unchanged and the
output is zero. That gives the same outputs and final states as ``pack_padded_sequence`` (the backward direction
starts at each sequence's last real token) without moving lengths to the host, so it also runs under
``torch.compile`` and on a GPU without syncs. The loop runs over time steps, never over samples.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

State = Tensor | tuple[Tensor, Tensor]

GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def rnn_cell(x: Tensor, h: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None = None,
             b_hh: Tensor | None = None, nonlinearity: str = "tanh") -> Tensor:
    """One Elman step: ``h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh)``. ``x [B, I]``, ``h [B, H]`` -> ``[B, H]``."""
    pre = _affine(x, w_ih, b_ih) + _affine(h, w_hh, b_hh)
    return torch.tanh(pre) if nonlinearity == "tanh" else torch.relu(pre)


def lstm_cell(x: Tensor, state: tuple[Tensor, Tensor], w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None = None,
              b_hh: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """One LSTM step with torch's gate order (input, forget, cell candidate, output). Returns ``(h', c')``."""
    h, c = state
    gates = _affine(x, w_ih, b_ih) + _affine(h, w_hh, b_hh)  # [B, 4H]
    i, f, g, o = gates.chunk(4, dim=-1)
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)  # forget some memory, write some new
    h_new = torch.sigmoid(o) * torch.tanh(c_new)  # expose a gated view of the memory
    return h_new, c_new


def gru_cell(x: Tensor, h: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None = None,
             b_hh: Tensor | None = None) -> Tensor:
    """One GRU step with torch's gate order (reset, update, new). ``h' = (1 - z) * n + z * h``."""
    gi = _affine(x, w_ih, b_ih)  # [B, 3H]
    gh = _affine(h, w_hh, b_hh)  # [B, 3H]
    i_r, i_z, i_n = gi.chunk(3, dim=-1)
    h_r, h_z, h_n = gh.chunk(3, dim=-1)
    r = torch.sigmoid(i_r + h_r)
    z = torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)  # the reset gate scales the recurrent part only (as in torch/cuDNN)
    return (1 - z) * n + z * h


def _affine(x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    y = x @ w.t()
    return y if b is None else y + b


class _Cell(nn.Module):
    """Shared parameters of the three cells, named like ``nn.RNNCell``/``nn.LSTMCell``/``nn.GRUCell``."""

    mode = "rnn"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True):
        super().__init__()
        g = GATES[self.mode]
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih = nn.Parameter(torch.empty(g * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(g * hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(g * hidden_size)) if bias else None
        self.bias_hh = nn.Parameter(torch.empty(g * hidden_size)) if bias else None
        bound = 1.0 / math.sqrt(hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def _check(self, x: Tensor) -> None:
        if x.dim() != 2 or x.shape[-1] != self.input_size:
            raise ValueError(f"{type(self).__name__} expects x of shape [B, {self.input_size}], got {tuple(x.shape)}")

    def _zeros(self, x: Tensor) -> Tensor:
        return x.new_zeros(x.shape[0], self.hidden_size)


class RNNCell(_Cell):
    """Elman cell equal to ``nn.RNNCell``: ``cell(x [B, I], h [B, H] | None) -> h' [B, H]``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh"):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, bias)
        self.nonlinearity = nonlinearity

    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        self._check(x)
        h = self._zeros(x) if h is None else h
        return rnn_cell(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh, self.nonlinearity)


class LSTMCell(_Cell):
    """LSTM cell equal to ``nn.LSTMCell``: ``cell(x, (h, c) | None) -> (h', c')``."""

    mode = "lstm"

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        self._check(x)
        state = (self._zeros(x), self._zeros(x)) if state is None else state
        return lstm_cell(x, state, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)


class GRUCell(_Cell):
    """GRU cell equal to ``nn.GRUCell``: ``cell(x, h | None) -> h'``."""

    mode = "gru"

    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        self._check(x)
        h = self._zeros(x) if h is None else h
        return gru_cell(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)


class _Recurrent(nn.Module):
    """A stack of recurrent layers, optionally bidirectional, batch-first, with mask-based padding."""

    mode = "rnn"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 bidirectional: bool = False, nonlinearity: str = "tanh"):
        super().__init__()
        if num_layers < 1 or hidden_size < 1 or input_size < 1:
            raise ValueError(f"sizes must be positive: input_size={input_size}, hidden_size={hidden_size}, "
                             f"num_layers={num_layers}")
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bidirectional, self.bias, self.nonlinearity = bidirectional, bias, nonlinearity
        self.num_directions = 2 if bidirectional else 1
        g = GATES[self.mode]
        bound = 1.0 / math.sqrt(hidden_size)
        for layer in range(num_layers):
            in_size = input_size if layer == 0 else hidden_size * self.num_directions
            for suffix in ("", "_reverse")[: self.num_directions]:
                shapes = {"weight_ih": (g * hidden_size, in_size), "weight_hh": (g * hidden_size, hidden_size)}
                if bias:
                    shapes.update(bias_ih=(g * hidden_size,), bias_hh=(g * hidden_size,))
                for name, shape in shapes.items():
                    p = nn.Parameter(torch.empty(shape).uniform_(-bound, bound))
                    self.register_parameter(f"{name}_l{layer}{suffix}", p)

    def _weights(self, layer: int, suffix: str) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        get = lambda n: getattr(self, f"{n}_l{layer}{suffix}") if (self.bias or n.startswith("w")) else None
        return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh")

    def _step(self, x: Tensor, state: State, w: tuple) -> State:
        if self.mode == "lstm":
            return lstm_cell(x, state, *w)  # type: ignore[arg-type]
        if self.mode == "gru":
            return gru_cell(x, state, *w)  # type: ignore[arg-type]
        return rnn_cell(x, state, *w, nonlinearity=self.nonlinearity)  # type: ignore[arg-type]

    def _check(self, x: Tensor, mask: Tensor | None) -> None:
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(f"{type(self).__name__} expects x of shape [B, L, {self.input_size}] (batch first), "
                             f"got {tuple(x.shape)}")
        if mask is not None and (mask.dim() != 2 or tuple(mask.shape) != tuple(x.shape[:2])):
            raise ValueError(f"mask must have shape [B, L] = {tuple(x.shape[:2])} (True = real step), "
                             f"got {tuple(mask.shape)}")

    def forward(self, x: Tensor, state: State | None = None, mask: Tensor | None = None
                ) -> tuple[Tensor, State]:
        """Run the stack over ``x [B, L, I]``.

        Args:
            x: batch-first inputs.
            state: initial ``h0 [layers*dirs, B, H]`` (LSTM: ``(h0, c0)``), zeros when None.
            mask: bool ``[B, L]``, True at real steps. Padded steps keep the state and output zeros, like
                ``pack_padded_sequence``; padding may sit anywhere, but packing only matches right padding.

        Returns:
            ``(outputs [B, L, dirs*H], h_n)`` where ``h_n`` is ``[layers*dirs, B, H]`` (LSTM: ``(h_n, c_n)``).
        """
        self._check(x, mask)
        B, L, _ = x.shape
        n_states = self.num_layers * self.num_directions
        if state is None:
            zeros = x.new_zeros(n_states, B, self.hidden_size)
            state = (zeros, zeros) if self.mode == "lstm" else zeros
        expect = (n_states, B, self.hidden_size)
        for s in (state if isinstance(state, tuple) else (state,)):
            if tuple(s.shape) != expect:
                raise ValueError(f"initial state must have shape {expect}, got {tuple(s.shape)}")
        keep = None if mask is None else mask.to(torch.bool).unsqueeze(-1)  # [B, L, 1]
        finals_h, finals_c = [], []
        layer_in = x
        for layer in range(self.num_layers):
            outs = []
            for d, suffix in enumerate(("", "_reverse")[: self.num_directions]):
                idx = layer * self.num_directions + d
                s: State = (state[0][idx], state[1][idx]) if isinstance(state, tuple) else state[idx]
                w = self._weights(layer, suffix)
                steps = range(L - 1, -1, -1) if d == 1 else range(L)
                seq: list[Tensor] = [x.new_zeros(0)] * L
                for t in steps:
                    new = self._step(layer_in[:, t], s, w)
                    if keep is not None:
                        k = keep[:, t]  # [B, 1]
                        new = (tuple(torch.where(k, a, b) for a, b in zip(new, s)) if isinstance(new, tuple)
                               else torch.where(k, new, s))
                    s = new
                    h_t = s[0] if isinstance(s, tuple) else s
                    seq[t] = h_t if keep is None else h_t * keep[:, t]
                outs.append(torch.stack(seq, dim=1))  # [B, L, H]
                finals_h.append(s[0] if isinstance(s, tuple) else s)
                if isinstance(s, tuple):
                    finals_c.append(s[1])
            layer_in = torch.cat(outs, dim=-1) if len(outs) > 1 else outs[0]  # [B, L, dirs*H]
        h_n = torch.stack(finals_h)
        return layer_in, ((h_n, torch.stack(finals_c)) if self.mode == "lstm" else h_n)


class RNN(_Recurrent):
    """Multi-layer (bi)directional Elman RNN equal to ``nn.RNN(batch_first=True)`` with copied weights."""

    mode = "rnn"


class LSTM(_Recurrent):
    """Multi-layer (bi)directional LSTM equal to ``nn.LSTM(batch_first=True)`` with copied weights."""

    mode = "lstm"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 bidirectional: bool = False):
        super().__init__(input_size, hidden_size, num_layers, bias, bidirectional)


class GRU(_Recurrent):
    """Multi-layer (bi)directional GRU equal to ``nn.GRU(batch_first=True)`` with copied weights."""

    mode = "gru"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 bidirectional: bool = False):
        super().__init__(input_size, hidden_size, num_layers, bias, bidirectional)
