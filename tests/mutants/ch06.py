"""Wrong answers for chapter 06's checks (GRU cell, masked mean pooling, the batch_first bug, remembering the
first symbol)."""

import torch
from torch import nn

from mmcourse.grading.ch06 import REMEMBER_ANSWER, REMEMBER_KEYS

from . import Mutant


def _gates(x, h, w_ih, w_hh, b_ih, b_hh):
    return (x @ w_ih.T + b_ih).chunk(3, dim=-1), (h @ w_hh.T + b_hh).chunk(3, dim=-1)


def gru_z_swapped(x, h, w_ih, w_hh, b_ih, b_hh):
    (i_r, i_z, i_n), (h_r, h_z, h_n) = _gates(x, h, w_ih, w_hh, b_ih, b_hh)
    r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
    return z * torch.tanh(i_n + r * h_n) + (1 - z) * h


def gru_reset_outside_bias(x, h, w_ih, w_hh, b_ih, b_hh):
    (i_r, i_z, i_n), (h_r, h_z, _) = _gates(x, h, w_ih, w_hh, b_ih, b_hh)
    r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
    hidden = w_hh.shape[0] // 3
    n = torch.tanh(i_n + r * (h @ w_hh[2 * hidden:].T) + b_hh[2 * hidden:])
    return (1 - z) * n + z * h


def gru_gate_order_zr(x, h, w_ih, w_hh, b_ih, b_hh):
    (i_z, i_r, i_n), (h_z, h_r, h_n) = _gates(x, h, w_ih, w_hh, b_ih, b_hh)
    r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
    return (1 - z) * torch.tanh(i_n + r * h_n) + z * h


def mean_over_all(h, mask):
    return h.mean(1)


def mean_unclamped(h, mask):
    m = mask.unsqueeze(-1).to(h.dtype)
    return (h * m).sum(1) / m.sum(1)


def mean_divides_by_length(h, mask):
    return (h * mask.unsqueeze(-1)).sum(1) / h.shape[1]


class TimeMajorEncoder(nn.Module):  # the bug itself: batch_first missing, out[:, -1]
    def __init__(self, in_dim, hidden, batch_first=False):
        super().__init__()
        self.rnn = nn.GRU(in_dim, hidden, batch_first=batch_first)

    def forward(self, x, lengths):
        out, _ = self.rnn(x)
        return out[:, -1]


class LastSampleEncoder(TimeMajorEncoder):  # batch_first=True, but out[-1]
    def __init__(self, in_dim, hidden):
        super().__init__(in_dim, hidden, batch_first=True)

    def forward(self, x, lengths):
        out, _ = self.rnn(x)
        return out[-1]


class IgnoresLengthsEncoder(TimeMajorEncoder):  # batch_first=True, out[:, -1]: reads past the padding
    def __init__(self, in_dim, hidden):
        super().__init__(in_dim, hidden, batch_first=True)


class FinalStateEncoder(LastSampleEncoder):  # h_n of an unpacked batch: the state after the padding too
    def forward(self, x, lengths):
        return self.rnn(x)[1][-1]


class OffByOneEncoder(LastSampleEncoder):
    def forward(self, x, lengths):
        out, _ = self.rnn(x)
        return out[torch.arange(len(x)), lengths.clamp(max=x.shape[1] - 1)]


MUTANTS = {
    "06.gru_cell": {"z and 1 - z swapped": Mutant(gru_z_swapped, "swapped"), "reset outside the bias":
                    Mutant(gru_reset_outside_bias, "bias included"), "gate order (z, r, n)": gru_gate_order_zr},
    "06.masked_mean": {"mean over padding too": Mutant(mean_over_all, "padded"),
                       "NaN for an empty row": Mutant(mean_unclamped, "nan"),
                       "divides by the padded length": mean_divides_by_length},
    "06.last_step_encoder": {"no batch_first (the bug)": Mutant(TimeMajorEncoder, "batch_first=true"),
                             "out[-1] with batch_first": Mutant(LastSampleEncoder, "out[-1]"),
                             "ignores the lengths": Mutant(IgnoresLengthsEncoder, "lengths[b] - 1"),
                             "h_n without packing": Mutant(FinalStateEncoder, "padding"),
                             "lengths, not lengths - 1": OffByOneEncoder},
}


# --- 06.remember_first ----------------------------------------------------------------------------------------


def remember_gates_always_work():  # "a GRU is gated, so it remembers"
    return {k: "learns" for k in REMEMBER_KEYS}


def remember_bias_does_not_matter():  # long sequences fail whatever the bias
    return {**REMEMBER_ANSWER, "keep bias, T=30": "chance"}


def remember_all_chance():
    return {k: "chance" for k in REMEMBER_KEYS}


def remember_other_names():
    return {"gru": "chance", "gru, keep bias": "learns"}


def remember_percentages():
    return {k: 1.0 if v == "learns" else 0.25 for k, v in REMEMBER_ANSWER.items()}


MUTANTS["06.remember_first"] = {"gates always remember": Mutant(remember_gates_always_work, "3 of 4"),
                                "the bias does not help": Mutant(remember_bias_does_not_matter, "3 of 4"),
                                "nothing learns": Mutant(remember_all_chance, "1 of 4"),
                                "other case names": Mutant(remember_other_names, "missing"),
                                "accuracies, not choices": Mutant(remember_percentages, "one of")}
