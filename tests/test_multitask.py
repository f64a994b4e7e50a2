"""mmcourse.multitask: task heads, per-task losses, and the three loss weightings as losses for fit."""

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from mmcourse.batch import IGNORE_INDEX as IGNORE
from mmcourse.engine import fit
from mmcourse.models import ModelSpec, build_model
from mmcourse.multitask import (
    DynamicWeightAverage,
    FixedWeighting,
    UncertaintyWeighting,
    make_weighting,
    plot_task_weights,
    task_heads,
    task_losses,
)


def shared_trunk_model(encoders, num_classes):
    return build_model(ModelSpec(classes=num_classes), encoders)


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
def test_fit_with_a_weighting_learns_and_records_weights(name):
    torch.manual_seed(0)
    data, val = _toy(512, 0), _toy(256, 1)
    model = shared_trunk_model({"image": Flat(4, 16)}, {"a": 2, "b": 2})
    weighting = make_weighting(name, ["a", "b"])
    hist = fit(model, data, val, loss=weighting, epochs=4, lr=1e-2, batch_size=64, device="cpu", progress=False)
    assert len(hist.rows) == 4
    assert {"train_weight/a", "train_loss/a", "train_acc/a", "val_acc/a", "val_acc"} <= set(hist.last)
    assert hist.last["val_acc"] > 0.85, hist.last
    if name == "uncertainty":  # the learned weights moved: fit optimised the loss's parameters with the model
        assert hist.last["train_weight/a"] != pytest.approx(1.0)
        assert weighting.log_var.abs().sum() > 0
    if name == "dwa":  # fit called the loss's on_epoch_end hook: the weights change from the third epoch on
        assert hist.rows[1]["train_weight/a"] == 1.0 and hist.rows[2]["train_weight/a"] != 1.0
        assert len(weighting.history) == 4
    ax = plot_task_weights(hist)
    assert len(ax.lines) == 2


def test_dwa_state_survives_a_resume(tmp_path):
    data = _toy(256, 0)
    kw = dict(epochs=4, lr=1e-2, batch_size=64, device="cpu", progress=False, seed=3)

    class StopAfter:
        def __init__(self, n):
            self.n = n

        def on_epoch_end(self, state, row):
            state.stop = state.epoch >= self.n

    torch.manual_seed(0)
    straight, w1 = shared_trunk_model({"image": Flat(4, 8)}, {"a": 2, "b": 2}), DynamicWeightAverage(["a", "b"])
    h1 = fit(straight, data, loss=w1, **kw)
    torch.manual_seed(0)
    first = shared_trunk_model({"image": Flat(4, 8)}, {"a": 2, "b": 2})
    fit(first, data, loss=DynamicWeightAverage(["a", "b"]), checkpoint=tmp_path / "c.pt", callbacks=[StopAfter(3)],
        **kw)
    resumed, w2 = shared_trunk_model({"image": Flat(4, 8)}, {"a": 2, "b": 2}), DynamicWeightAverage(["a", "b"])
    h2 = fit(resumed, data, loss=w2, resume=tmp_path / "c.pt", **kw)
    assert w2.history == w1.history and torch.equal(w2.w, w1.w)
    assert [r["train_loss"] for r in h2.rows] == [r["train_loss"] for r in h1.rows]
    for p, q in zip(straight.parameters(), resumed.parameters()):
        assert torch.equal(p, q)


def test_weighting_rejects_tasks_the_data_does_not_have():
    model = shared_trunk_model({"image": Flat(4, 8)}, {"c": 2})
    with pytest.raises(ValueError, match="at least one task"):
        fit(model, _toy(32), epochs=1, device="cpu", progress=False)
    model = shared_trunk_model({"image": Flat(4, 8)}, {"a": 2, "b": 2})
    with pytest.raises(KeyError, match="weighs tasks"):
        fit(model, _toy(32), loss=FixedWeighting(["a", "z"]), epochs=1, device="cpu", progress=False)
    with pytest.raises(ValueError, match=">= 0"):
        FixedWeighting(["a"], {"a": -1.0})
