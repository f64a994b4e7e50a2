"""mmcourse.multitask: task heads, per-task losses, the three loss weightings and fit_multitask."""

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from mmcourse.multitask import (
    IGNORE,
    DynamicWeightAverage,
    FixedWeighting,
    UncertaintyWeighting,
    fit_multitask,
    make_weighting,
    plot_task_weights,
    shared_trunk_model,
    task_heads,
    task_losses,
)


class Flat(nn.Module):
    def __init__(self, d_in, d_out):
        super().__init__()
        self.net, self.out_dim = nn.Sequential(nn.Flatten(), nn.Linear(d_in, d_out), nn.ReLU()), d_out

    def forward(self, x):
        return self.net(x)


def _toy(n=256, seed=0):
    """Two tasks read from one input: 'a' = sign of x0, 'b' = sign of x1."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    return SimpleNamespace(inputs={"image": x}, targets={"a": (x[:, 0] > 0).long(), "b": (x[:, 1] > 0).long()})


def test_task_heads_and_shared_trunk():
    heads = task_heads(8, {"shape": 10, "color": 6}, hidden=16)
    assert set(heads) == {"shape", "color"}
    assert heads["shape"](torch.zeros(2, 8)).shape == (2, 10)
    model = shared_trunk_model({"image": Flat(4, 8), "text": Flat(3, 5)}, {"a": 2, "b": 3})
    out = model({"image": torch.randn(2, 4), "text": torch.randn(2, 3)})
    assert out["a"].shape == (2, 2) and out["b"].shape == (2, 3)
    with pytest.raises(ValueError, match="at least 2 classes"):
        task_heads(8, {"x": 1})


def test_task_losses_ignore_missing_labels():
    logits = torch.randn(4, 3)
    y = torch.tensor([0, IGNORE, 2, IGNORE])
    got = task_losses({"t": logits, "extra": logits}, {"t": y})
    want = torch.nn.functional.cross_entropy(logits[[0, 2]], y[[0, 2]])
    torch.testing.assert_close(got["t"], want)
    assert set(got) == {"t"}
    none = task_losses({"t": logits}, {"t": torch.full((4,), IGNORE)})
    assert none["t"].item() == 0.0
    with pytest.raises(ValueError, match="at least one task"):
        task_losses({"t": logits}, {"u": y})


def test_fixed_weighting():
    w = FixedWeighting(["a", "b"], {"b": 0.5})
    total = w({"a": torch.tensor(2.0), "b": torch.tensor(4.0)})
    assert total.item() == pytest.approx(4.0)
    assert w.weights() == {"a": 1.0, "b": 0.5}
    with pytest.raises(KeyError, match="unknown tasks"):
        FixedWeighting(["a"], {"c": 1.0})
    with pytest.raises(KeyError, match="weighs tasks"):
        w({"a": torch.tensor(1.0)})


def test_uncertainty_weighting_formula_and_optimum():
    w = UncertaintyWeighting(["a", "b"])
    with torch.no_grad():
        w.log_var.copy_(torch.tensor([0.5, -1.0]))
    la, lb = torch.tensor(2.0), torch.tensor(3.0)
    want = math.exp(-0.5) * 2 + 0.25 + math.exp(1.0) * 3 - 0.5
    assert w({"a": la, "b": lb}).item() == pytest.approx(want, rel=1e-6)
    assert w.weights()["b"] == pytest.approx(math.exp(1.0))
    # with fixed losses the learned weight goes to 1 / (2 L): a larger loss gets a smaller weight
    opt = torch.optim.Adam(w.parameters(), lr=0.05)
    for _ in range(800):
        opt.zero_grad()
        w({"a": la, "b": lb}).backward()
        opt.step()
    assert w.weights()["a"] == pytest.approx(0.25, rel=1e-2)
    assert w.weights()["b"] == pytest.approx(1 / 6, rel=1e-2)


def test_dwa_weights():
    w = DynamicWeightAverage(["a", "b"], temperature=2.0)
    for epoch_losses in ([1.0, 1.0], [0.5, 1.0]):  # a halves, b stays
        w.train()
        w({"a": torch.tensor(epoch_losses[0]), "b": torch.tensor(epoch_losses[1])})
        assert w.weights() == {"a": 1.0, "b": 1.0}  # first two epochs: equal weights
        w.epoch_end()
    ra, rb = 0.5, 1.0
    ea, eb = math.exp(ra / 2), math.exp(rb / 2)
    assert w.weights()["a"] == pytest.approx(2 * ea / (ea + eb))
    assert w.weights()["b"] == pytest.approx(2 * eb / (ea + eb))
    assert sum(w.weights().values()) == pytest.approx(2.0)
    assert w.weights()["b"] > w.weights()["a"]  # the slower task gets more weight
    with pytest.raises(ValueError, match="temperature"):
        DynamicWeightAverage(["a"], temperature=0)


def test_make_weighting_names():
    assert isinstance(make_weighting("dwa", ["a"]), DynamicWeightAverage)
    with pytest.raises(ValueError, match="choose one of"):
        make_weighting("gradnorm", ["a"])


@pytest.mark.parametrize("name", ["fixed", "uncertainty", "dwa"])
def test_fit_multitask_learns_and_records_weights(name):
    torch.manual_seed(0)
    data, val = _toy(512, 0), _toy(256, 1)
    model = shared_trunk_model({"image": Flat(4, 16)}, {"a": 2, "b": 2})
    hist = fit_multitask(model, data, val, epochs=4, weighting=name, lr=1e-2, batch_size=64, device="cpu")
    assert len(hist.rows) == 4
    assert {"weight/a", "weight/b", "train_loss/a", "val_acc/a", "val_acc"} <= set(hist.last)
    assert hist.last["val_acc"] > 0.85, hist.last
    if name == "uncertainty":  # the learned weights moved away from their start of 1
        assert hist.last["weight/a"] != pytest.approx(1.0)
    if name == "dwa":
        assert hist.rows[1]["weight/a"] == 1.0 and hist.rows[2]["weight/a"] != 1.0
    ax = plot_task_weights(hist)
    assert len(ax.lines) == 2


def test_fit_multitask_rejects_bad_input():
    model = shared_trunk_model({"image": Flat(4, 8)}, {"c": 2})
    with pytest.raises(ValueError, match="heads"):
        fit_multitask(model, _toy(32), epochs=1, device="cpu")
    with pytest.raises(ValueError, match="epochs"):
        fit_multitask(model, _toy(32), epochs=0, device="cpu")
