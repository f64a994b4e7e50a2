"""Recurrent layers from scratch (mmcourse.layers.rnn) against nn.RNN/LSTM/GRU with copied weights."""

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from mmcourse.layers.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell

OURS = {"rnn": RNN, "lstm": LSTM, "gru": GRU}
THEIRS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def _pair(mode, layers=1, bidir=False, in_size=5, hidden=7):
    torch.manual_seed(0)
    theirs = THEIRS[mode](in_size, hidden, num_layers=layers, bidirectional=bidir, batch_first=True).double()
    ours = OURS[mode](in_size, hidden, num_layers=layers, bidirectional=bidir).double()
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


@pytest.mark.parametrize("ours_cls, theirs_cls", [(RNNCell, nn.RNNCell), (LSTMCell, nn.LSTMCell),
                                                  (GRUCell, nn.GRUCell)])
def test_cells_equal_torch(ours_cls, theirs_cls):
    torch.manual_seed(0)
    theirs = theirs_cls(4, 6).double()
    ours = ours_cls(4, 6).double()
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(3, 4, dtype=torch.double)
    if ours_cls is LSTMCell:
        s = (torch.randn(3, 6, dtype=torch.double), torch.randn(3, 6, dtype=torch.double))
        for a, b in zip(ours(x, s), theirs(x, s)):
            torch.testing.assert_close(a, b)
    else:
        h = torch.randn(3, 6, dtype=torch.double)
        torch.testing.assert_close(ours(x, h), theirs(x, h))
        torch.testing.assert_close(ours(x), theirs(x))


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("layers, bidir", [(1, False), (2, True), (3, False)])
def test_stack_equals_torch(mode, layers, bidir):
    ours, theirs = _pair(mode, layers, bidir)
    x = torch.randn(4, 6, 5, dtype=torch.double)
    out_a, st_a = ours(x)
    out_b, st_b = theirs(x)
    torch.testing.assert_close(out_a, out_b)
    for a, b in zip(st_a if mode == "lstm" else (st_a,), st_b if mode == "lstm" else (st_b,)):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
def test_initial_state_is_used(mode):
    ours, theirs = _pair(mode, 2, True)
    x = torch.randn(3, 5, 5, dtype=torch.double)
    h0 = torch.randn(4, 3, 7, dtype=torch.double)
    s0 = (h0, torch.randn_like(h0)) if mode == "lstm" else h0
    torch.testing.assert_close(ours(x, s0)[0], theirs(x, s0)[0])


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("layers, bidir", [(1, False), (2, True)])
def test_mask_matches_pack_padded_sequence(mode, layers, bidir):
    ours, theirs = _pair(mode, layers, bidir)
    lengths = torch.tensor([6, 2, 4, 1])
    x = torch.randn(4, 6, 5, dtype=torch.double)
    mask = torch.arange(6)[None] < lengths[:, None]
    x = x * mask[..., None] + 100.0 * ~mask[..., None]  # garbage at padded steps must not leak in
    out_a, st_a = ours(x, mask=mask)
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out_p, st_b = theirs(packed)
    out_b, _ = pad_packed_sequence(out_p, batch_first=True, total_length=6)
    torch.testing.assert_close(out_a, out_b)
    for a, b in zip(st_a if mode == "lstm" else (st_a,), st_b if mode == "lstm" else (st_b,)):
        torch.testing.assert_close(a, b)


def test_gradients_flow_like_torch():
    ours, theirs = _pair("lstm", 2, True)
    x = torch.randn(2, 4, 5, dtype=torch.double, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    ours(x)[0].square().sum().backward()
    theirs(x2)[0].square().sum().backward()
    torch.testing.assert_close(x.grad, x2.grad)
    torch.testing.assert_close(ours.weight_hh_l1_reverse.grad, theirs.weight_hh_l1_reverse.grad)


def test_gradcheck_gru_cell():
    cell = GRUCell(3, 4).double()
    x = torch.randn(2, 3, dtype=torch.double, requires_grad=True)
    h = torch.randn(2, 4, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(cell, (x, h))


def test_bad_input_names_shapes():
    gru = GRU(5, 7)
    with pytest.raises(ValueError, match=r"\[B, L, 5\].*\(2, 3\)"):
        gru(torch.randn(2, 3))
    with pytest.raises(ValueError, match=r"\[B, L, 5\].*\(2, 3, 4\)"):
        gru(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match=r"mask must have shape \[B, L\] = \(2, 3\).*\(2, 4\)"):
        gru(torch.randn(2, 3, 5), mask=torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"initial state must have shape \(1, 2, 7\)"):
        gru(torch.randn(2, 3, 5), torch.zeros(2, 2, 7))
    with pytest.raises(ValueError, match=r"\[B, 4\].*\(2, 5\)"):
        LSTMCell(4, 3)(torch.randn(2, 5))
