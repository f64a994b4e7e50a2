"""Tests for mmcourse/layers/softmax.py: stable softmax/log-softmax and cross-entropy equal to torch's."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from mmcourse.layers.softmax import cross_entropy, log_softmax, logsumexp, softmax, softmax_naive


def test_naive_softmax_overflows_stable_does_not():
    x = torch.tensor([[1000.0, 999.0, -5.0]])
    assert torch.isnan(softmax_naive(x)).any()
    torch.testing.assert_close(softmax(x), torch.softmax(x, -1))
    torch.testing.assert_close(log_softmax(x), torch.log_softmax(x, -1))


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_logsumexp_equal_torch(dim):
    g = torch.Generator().manual_seed(dim + 5)
    x = torch.randn(4, 5, 6, generator=g) * 30
    torch.testing.assert_close(logsumexp(x, dim), torch.logsumexp(x, dim))
    torch.testing.assert_close(log_softmax(x, dim), torch.log_softmax(x, dim))
    torch.testing.assert_close(softmax(x, dim, temperature=2.5), torch.softmax(x / 2.5, dim))
    xi = torch.tensor([[-float("inf"), 0.0], [-float("inf"), -float("inf")]])
    torch.testing.assert_close(logsumexp(xi, -1), torch.logsumexp(xi, -1))


def test_temperature_limits_and_errors():
    x = torch.tensor([2.0, 1.0, 0.0])
    assert softmax(x, temperature=1e-3)[0] > 0.999
    torch.testing.assert_close(softmax(x, temperature=1e4), torch.full((3,), 1 / 3), atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        softmax(x, temperature=0.0)


def test_log_softmax_gradcheck():
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: log_softmax(t, -1, temperature=0.7), (x,))


CONFIGS = list(itertools.product(["mean", "sum", "none"], [0.0, 0.1, 0.5], [False, True], [False, True]))


@pytest.mark.parametrize("reduction,smoothing,weighted,ignore", CONFIGS)
def test_cross_entropy_equals_torch(reduction, smoothing, weighted, ignore):
    g = torch.Generator().manual_seed(CONFIGS.index((reduction, smoothing, weighted, ignore)))
    logits = torch.randn(12, 5, generator=g, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, 5, (12,), generator=g)
    if ignore:
        target[::3] = 3 if reduction != "mean" else -1
    kw = dict(reduction=reduction, label_smoothing=smoothing, ignore_index=(3 if reduction != "mean" else -1)
              if ignore else -100)
    if weighted:
        kw["weight"] = torch.rand(5, generator=g, dtype=torch.float64) + 0.1
    ours, ref = cross_entropy(logits, target, **kw), F.cross_entropy(logits, target, **kw)
    torch.testing.assert_close(ours, ref)
    g1, = torch.autograd.grad(ours.sum(), logits)
    g2, = torch.autograd.grad(ref.sum(), logits)
    torch.testing.assert_close(g1, g2)


def test_cross_entropy_spatial_and_soft_targets():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 4, 3, 5, generator=g)
    target = torch.randint(0, 4, (2, 3, 5), generator=g)
    torch.testing.assert_close(cross_entropy(logits, target, label_smoothing=0.2),
                               F.cross_entropy(logits, target, label_smoothing=0.2))
    soft = torch.softmax(torch.randn(6, 4, generator=g), -1)
    z = torch.randn(6, 4, generator=g)
    w = torch.rand(4, generator=g)
    for red in ("mean", "sum", "none"):
        torch.testing.assert_close(cross_entropy(z, soft, weight=w, reduction=red, label_smoothing=0.1),
                                   F.cross_entropy(z, soft, weight=w, reduction=red, label_smoothing=0.1))


def test_cross_entropy_stable_for_huge_logits():
    logits = torch.tensor([[1e4, 0.0, -1e4]])
    assert torch.isfinite(cross_entropy(logits, torch.tensor([2])))


def test_cross_entropy_bad_inputs():
    z = torch.randn(4, 3)
    with pytest.raises(ValueError, match=r"target must have shape \[4\] .* got \[4, 1\]"):
        cross_entropy(z, torch.zeros(4, 1, dtype=torch.long))
    with pytest.raises(ValueError, match=r"outside \[0, 2\]"):
        cross_entropy(z, torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="weight must have shape"):
        cross_entropy(z, torch.tensor([0, 1, 2, 0]), weight=torch.ones(4))
    with pytest.raises(ValueError, match="reduction"):
        cross_entropy(z, torch.tensor([0, 1, 2, 0]), reduction="avg")
    with pytest.raises(ValueError, match="logits must be"):
        cross_entropy(torch.randn(3), torch.tensor(0))
