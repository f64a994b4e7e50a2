"""Tests for mmcourse/layers/linear.py: forward and manual backward vs torch, init schemes, activations, MLP."""

import math

import pytest
import torch
import torch.nn.functional as F

from mmcourse.layers.linear import (
    ACTIVATIONS,
    MLP,
    Linear,
    activation_stds,
    gelu,
    init_weight_,
    linear,
    linear_backward,
    relu,
    sigmoid,
    tanh,
)


@pytest.mark.parametrize("lead", [(5,), (2, 3), (1,)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_equals_torch(lead, bias):
    g = torch.Generator().manual_seed(len(lead) + bias)
    x, w = torch.randn(*lead, 7, generator=g), torch.randn(4, 7, generator=g)
    b = torch.randn(4, generator=g) if bias else None
    torch.testing.assert_close(linear(x, w, b), F.linear(x, w, b))


def test_linear_backward_equals_autograd():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 6, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, 6, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(5, generator=g, dtype=torch.float64, requires_grad=True)
    grad_out = torch.randn(2, 3, 5, generator=g, dtype=torch.float64)
    F.linear(x, w, b).backward(grad_out)
    gx, gw, gb = linear_backward(x.detach(), w.detach(), grad_out)
    torch.testing.assert_close(gx, x.grad)
    torch.testing.assert_close(gw, w.grad)
    torch.testing.assert_close(gb, b.grad)


def test_linear_gradcheck():
    g = torch.Generator().manual_seed(2)
    args = [torch.randn(*s, generator=g, dtype=torch.float64, requires_grad=True) for s in [(3, 4), (2, 4), (2,)]]
    assert torch.autograd.gradcheck(linear, args)


def test_linear_shape_errors_name_shapes():
    with pytest.raises(ValueError, match=r"input has 5 features .* weight expects 7"):
        linear(torch.randn(3, 5), torch.randn(4, 7))
    with pytest.raises(ValueError, match=r"bias must have shape \[4\]"):
        linear(torch.randn(3, 7), torch.randn(4, 7), torch.randn(3))
    with pytest.raises(ValueError, match=r"grad_out has shape \[3, 5\], expected \[3, 4\]"):
        linear_backward(torch.randn(3, 7), torch.randn(4, 7), torch.randn(3, 5))


@pytest.mark.parametrize("scheme,expected", [("naive", lambda fi, fo: 0.5), ("xavier", lambda fi, fo:
                         math.sqrt(2 / (fi + fo))), ("kaiming", lambda fi, fo: math.sqrt(2 / fi))])
def test_init_std(scheme, expected):
    w = init_weight_(torch.empty(300, 200), scheme, std=0.5, generator=torch.Generator().manual_seed(0))
    assert abs(float(w.std()) / expected(200, 300) - 1) < 0.02
    assert abs(float(w.mean())) < 0.01
    with pytest.raises(ValueError, match="unknown init scheme"):
        init_weight_(torch.empty(2, 2), "lecun-ish")


def test_kaiming_keeps_relu_scale_naive_explodes():
    kaiming = activation_stds("kaiming", "relu", depth=20, width=128, n=256)
    naive = activation_stds("naive", "relu", depth=20, width=128, n=256, std=1.0)
    small = activation_stds("naive", "relu", depth=20, width=128, n=256, std=0.01)
    assert 0.3 < kaiming[-1] < 3.0, kaiming
    assert naive[-1] > 1e10 and small[-1] < 1e-10
    xavier = activation_stds("xavier", "tanh", depth=20, width=128, n=256)
    assert 0.1 < xavier[-1] < 1.0, xavier


def test_activations_equal_torch():
    x = torch.linspace(-100, 100, 2001, dtype=torch.float64)
    torch.testing.assert_close(relu(x), torch.relu(x))
    torch.testing.assert_close(sigmoid(x), torch.sigmoid(x))
    torch.testing.assert_close(tanh(x), torch.tanh(x))
    torch.testing.assert_close(gelu(x), F.gelu(x))
    assert torch.isfinite(sigmoid(torch.tensor([-1000.0, 1000.0]))).all()
    assert set(ACTIVATIONS) >= {"relu", "tanh", "sigmoid", "gelu"}


def test_linear_module_and_mlp_learn():
    torch.manual_seed(0)
    layer = Linear(4, 3, init="xavier")
    assert layer.weight.shape == (3, 4) and layer.bias.shape == (3,) and "in_features=4" in repr(layer)
    x = torch.randn(256, 2)
    y = ((x[:, 0] * x[:, 1]) > 0).long()  # XOR-like: not linearly separable
    mlp = MLP([2, 32, 2])
    opt = torch.optim.Adam(mlp.parameters(), lr=0.02)
    for _ in range(200):
        opt.zero_grad()
        loss = F.cross_entropy(mlp(x), y)
        loss.backward()
        opt.step()
    assert (mlp(x).argmax(1) == y).float().mean() > 0.95
    with pytest.raises(ValueError, match="unknown activation"):
        MLP([2, 2], activation="swishy")
