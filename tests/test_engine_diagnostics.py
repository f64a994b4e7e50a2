"""Tests for mmcourse/engine/diagnostics.py: the initial-loss check, overfitting one batch, the learning-rate
range test and gradient-norm monitoring (with ``fit`` and by hand)."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmcourse.data.dataset import MultimodalDataset
from mmcourse.engine import fit
from mmcourse.engine.diagnostics import (
    GradNormMonitor,
    check_initial_loss,
    expected_initial_loss,
    global_grad_norm,
    layer_grad_norms,
    lr_range_test,
    overfit_one_batch,
)


def _blobs(n=256, d=10, c=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(c, d, generator=g) * 3
    y = torch.randint(0, c, (n,), generator=g)
    return centres[y] + torch.randn(n, d, generator=g), y


def _mlp(d=10, c=4, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, 32), nn.ReLU(), nn.Linear(32, c))


def test_initial_loss_check_accepts_log_c_and_rejects_a_large_init():
    x, y = _blobs()
    assert expected_initial_loss(10) == pytest.approx(math.log(10))
    model = _mlp()
    with torch.no_grad():
        model[2].weight.mul_(0.01)
        ratio = check_initial_loss(F.cross_entropy(model(x), y).item(), 4)
    assert 0.9 < ratio < 1.1
    with torch.no_grad():
        model[2].weight.mul_(3000)  # confident, random logits
        big = F.cross_entropy(model(x), y).item()
    with pytest.raises(ValueError, match="too high"):
        check_initial_loss(big, 4)
    with pytest.raises(ValueError, match="too low"):
        check_initial_loss(0.01, 4)
    with pytest.raises(ValueError, match="num_classes"):
        expected_initial_loss(1)


def test_overfit_one_batch_memorises_random_labels():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(16, 10, generator=g), torch.randint(0, 4, (16,), generator=g)  # no pattern at all
    model = _mlp()
    losses = overfit_one_batch(model, lambda m: F.cross_entropy(m(x), y), steps=150, lr=1e-2)
    assert len(losses) == 150 and losses[0] > 1.0 and losses[-1] < 0.05
    # a model that cannot fit (its output ignores the input) stays near log C
    flat = nn.Sequential(nn.Linear(10, 4), nn.Flatten(0), nn.Unflatten(0, (16, 4)))
    stuck = overfit_one_batch(flat, lambda m: F.cross_entropy(m(x * 0), y), steps=150, lr=1e-2)
    assert stuck[-1] > 1.0


def test_lr_range_test_finds_the_valley_diverges_and_restores_weights():
    x, y = _blobs(512)
    model = _mlp()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    idx = torch.randperm(512, generator=torch.Generator().manual_seed(0)).split(32)

    def step_loss(m, i):
        b = idx[i % len(idx)]
        return F.cross_entropy(m(x[b]), y[b])

    res = lr_range_test(model, step_loss, lr_min=1e-5, lr_max=100.0, steps=120, optimizer="sgd")
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), f"{k} changed: the range test must restore the weights"
    assert res.diverged_at is not None and res.diverged_at > res.min_loss_lr
    assert len(res.lrs) == len(res.losses) == len(res.smoothed) < 120
    assert all(b > a for a, b in zip(res.lrs, res.lrs[1:])), "learning rates grow"
    assert min(res.smoothed) < 0.5 * res.smoothed[0], "the loss must fall somewhere in the range"
    assert 1e-3 < res.suggestion < 1.0
    with pytest.raises(ValueError, match="lr_min"):
        lr_range_test(model, step_loss, lr_min=1.0, lr_max=0.1)


def test_global_grad_norm_equals_clip_grad_norm_and_layer_norms():
    x, y = _blobs(64)
    model = _mlp()
    F.cross_entropy(model(x), y).backward()
    ours = global_grad_norm(model)
    ref = torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf"), norm_type=2.0)
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(global_grad_norm(model.parameters(), 1.0),
                               torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf"), norm_type=1.0))
    per = layer_grad_norms(model)
    assert set(per) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    assert math.sqrt(sum(v * v for v in per.values())) == pytest.approx(float(ours), rel=1e-5)
    assert float(global_grad_norm(nn.Linear(2, 2))) == 0.0


class _Classifier(nn.Module):
    """The engine's contract: ``(inputs, present) -> {task: logits}``."""

    def __init__(self):
        super().__init__()
        self.net = _mlp()

    def forward(self, inputs, present=None):
        return {"label": self.net(inputs["image"])}


def test_grad_norm_monitor_records_every_step_of_fit_after_clipping():
    x, y = _blobs(200)
    data = MultimodalDataset({"image": x}, {"label": y}, {"label": list("abcd")})
    mon = GradNormMonitor()
    fit(_Classifier(), data, epochs=2, batch_size=50, lr=1e-2, clip_grad=0.05, callbacks=[mon], progress=False,
        device="cpu")
    assert len(mon.norms) == 8 and mon.steps == list(range(1, 9))
    assert len(mon.epochs) == 2 and mon.epochs[0]["max"] == max(mon.norms[:4])
    assert max(mon.norms) <= 0.05 + 1e-5, "the monitor must see the gradients the optimiser used (clipped)"
    mon2 = GradNormMonitor(every=2)
    fit(_Classifier(), data, epochs=1, batch_size=50, lr=1e-2, callbacks=[mon2], progress=False, device="cpu")
    assert mon2.steps == [2, 4] and min(mon2.norms) > 0.05
    with pytest.raises(ValueError, match="every"):
        GradNormMonitor(every=0)
