"""Hidden tests of chapter 6's exercises (recurrent encoders): a GRU cell (the chapter writes the LSTM cell; the
GRU is its neighbour), masked mean pooling, fixing an encoder that reads ``out[:, -1]`` from a GRU built without
``batch_first=True`` (find the bug), and predicting when a GRU remembers the first symbol of a sequence
(experiment and interpret).

The learner's notebook is ``solutions/06_recurrent_encoders.ipynb`` (``exercises/`` holds the blank copy).
The GRU cell is compared with PyTorch's own ``nn.GRUCell`` given the same weights, the encoder with an
``nn.GRU`` holding the learner's weights; the experiment's answer with what the notebook's run shows (the
notebook asserts that its run agrees).
"""

from __future__ import annotations

import torch
from torch import nn

from mmcourse.grading.choices import check_choices
from mmcourse.grading.probing import build_module
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
            b_hn = b_hh[2 * hidden:]
            n_outside = torch.tanh(gi[:, 2 * hidden:] + r * (gh[:, 2 * hidden:] - b_hn) + b_hn)  # r * W_hn h + b_hn
            if torch.allclose(got, (1 - z) * n_outside + z * h, atol=1e-6):
                raise AssertionError("the reset gate must scale the recurrent part with its bias included, "
                                     "r * (W_hn h + b_hn), as torch's GRU does; you added b_hn outside")
        torch.testing.assert_close(got, want, msg=lambda m: f"your GRU cell differs from nn.GRUCell: {m}")


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


# --- 06.last_step_encoder: the batch_first bug, fixed -----------------------------------------------------

# (batch size, lengths): B != T everywhere, so a batch read as time shows; padding after every length but one.
LAST_STEP_CASES = ((3, (5, 2, 4)), (4, (1, 7, 3, 6)), (5, (2, 1, 2, 2, 1)))
LAST_STEP_DIMS = (6, 5)  # (input features D, hidden size H)


def _seq_input(lengths: tuple[int, ...], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x [B, T, D] with random values in the padding too (so reading past a length shows), and lengths [B]."""
    g = torch.Generator().manual_seed(200 + seed)
    return torch.randn(len(lengths), max(lengths), LAST_STEP_DIMS[0], generator=g), torch.tensor(lengths)


def probe_last_step(cls, cases) -> dict:
    """Build the learner's encoder, report its GRU's weights and its encodings of padded batches."""
    enc = build_module(cls, LAST_STEP_DIMS, 0, f"LastStepEncoder{LAST_STEP_DIMS}")
    if isinstance(enc, dict):
        return enc
    rnn = getattr(enc, "rnn", None)
    if not isinstance(rnn, nn.GRU):
        return {"error": "keep the GRU in self.rnn (an nn.GRU) as in the colleague's encoder"}
    enc.eval()
    seen: dict = {"state": {k: v.detach().clone() for k, v in rnn.state_dict().items()}, "outs": []}
    for seed, (_, lengths) in enumerate(cases):
        x, lens = _seq_input(lengths, seed)
        try:
            with torch.no_grad():
                seen["outs"].append(enc(x, lens))
        except NotImplementedError:  # a blank exercise: "not implemented", not a failure
            raise
        except Exception as e:  # noqa: BLE001 - reported to the check
            seen["outs"].append(f"{type(e).__name__}: {e}")
    return seen


@register("06.last_step_encoder", points=2, timeout=30, kind="find-the-bug",
          hint="nn.GRU(in_dim, hidden, batch_first=True); out [B, T, H]; "
               "return out[torch.arange(B), lengths - 1]")
def _last_step_encoder(fn):
    seen = fn.probe(probe_last_step, LAST_STEP_CASES)
    assert isinstance(seen, dict), "the hidden test could not build your encoder"
    if "error" in seen:
        raise AssertionError(seen["error"])
    ref = nn.GRU(*LAST_STEP_DIMS, batch_first=True)
    try:
        ref.load_state_dict(seen["state"])
    except RuntimeError:
        raise AssertionError("self.rnn should be nn.GRU(in_dim, hidden, batch_first=True): one layer, one "
                             f"direction, with biases; its weights are {sorted(seen['state'])}") from None
    hidden = LAST_STEP_DIMS[1]
    for seed, ((b, lengths), got) in enumerate(zip(LAST_STEP_CASES, seen["outs"])):
        x, lens = _seq_input(lengths, seed)
        t = x.shape[1]
        what = f"encoder(x [B={b}, T={t}, D={x.shape[2]}], lengths={list(lengths)})"
        if isinstance(got, str):
            raise AssertionError(f"{what} raised {got}")
        assert isinstance(got, torch.Tensor), f"{what}: return a tensor [B, H], got {type(got).__name__}"
        with torch.no_grad():
            out, _ = ref(x)  # [B, T, H]
        want = out[torch.arange(b), lens - 1]
        if tuple(got.shape) == (t, hidden):
            raise AssertionError(f"{what} has shape {tuple(got.shape)} = [T, H], expected ({b}, {hidden}) = [B, H]: "
                                 "with batch_first=True, out[-1] is the last *sample* at every step, not every "
                                 "sample's last step")
        assert tuple(got.shape) == (b, hidden), f"{what} has shape {tuple(got.shape)}, expected ({b}, {hidden})"
        bug = _time_major_last(seen["state"], x)
        if torch.allclose(got, bug, atol=1e-5):
            raise AssertionError(f"{what}: the GRU reads x [B, T, D] as [T, B, D] (its default batch_first=False), "
                                 "so it runs across the batch and out[:, -1] mixes samples: build it with "
                                 "batch_first=True")
        if torch.allclose(got, out[:, -1], atol=1e-5):
            raise AssertionError(f"{what}: out[:, -1] is the state after the padding for the shorter sequences; "
                                 "read each sample's state at its last real step, lengths[b] - 1")
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4, msg=lambda m, what=what: (
            f"{what}: not the GRU's state at each sample's last real step (out[b, lengths[b] - 1]): {m}"))


def _time_major_last(state: dict, x: torch.Tensor) -> torch.Tensor:
    """The bug's answer: a GRU without batch_first on x [B, T, D], read as out[:, -1]."""
    gru = nn.GRU(*LAST_STEP_DIMS)
    gru.load_state_dict(state)
    with torch.no_grad():
        return gru(x)[0][:, -1]


# --- 06.remember_first: a GRU's update gate at initialisation (experiment and interpret) ----------------------

REMEMBER_KEYS = ("default, T=5", "default, T=30", "keep bias, T=5", "keep bias, T=30")
REMEMBER_OPTIONS = ("learns", "chance")
# What the exercise's run shows (five seeds tried): with torch's default initialisation the update gate starts
# near z = sigmoid(0) = 0.5, so a GRU keeps about half of its state per step and the first token is all but gone
# after 29 more steps (0.5^29 ~ 2e-9): it stays at chance within the 100 training steps (still on five seeds at
# 120 steps; at 300 three of five get there); with its update gate biased towards keeping (z = sigmoid(4) ~ 0.98,
# 0.98^29 ~ 0.6) it remembers after 80 steps on five seeds. Short sequences are learnt either way.
REMEMBER_ANSWER = {"default, T=5": "learns", "default, T=30": "chance", "keep bias, T=5": "learns",
                   "keep bias, T=30": "learns"}


@register("06.remember_first", points=2, timeout=10, kind="experiment",
          hint="run the training cell and read its table: 'learns' above 90 % test accuracy, 'chance' near 25 %; "
               "then compute how much of h_1 is left after T steps when z is 0.5, and when it is 0.98")
def _remember_first(fn):
    check_choices(fn(), answer=REMEMBER_ANSWER, options=REMEMBER_OPTIONS, fn_name="remember_answers",
                  what="{case: 'learns' or 'chance'}", cases="the four cases",
                  advice="read the table again "
                  "('learns' = above 90 % test accuracy, 'chance' = near 25 %) — a gated cell is "
                  "not born remembering")
