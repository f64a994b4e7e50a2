"""Tests for mmcourse/layers/conv.py and pooling.py: naive and im2col conv2d equal F.conv2d, shapes, pooling."""

import random

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmcourse.layers.conv import (
    Conv2d,
    conv2d_im2col,
    conv2d_naive,
    conv_output_shape,
    empirical_receptive_field,
    im2col,
    receptive_field,
)
from mmcourse.layers.pooling import avg_pool2d, max_pool2d


def _random_config(rng: random.Random):
    groups = rng.choice([1, 1, 2, 3])
    c_in, c_out = groups * rng.randint(1, 3), groups * rng.randint(1, 3)
    k = (rng.randint(1, 4), rng.randint(1, 4))
    stride, padding, dilation = (rng.randint(1, 3), rng.randint(1, 2)), (rng.randint(0, 2), rng.randint(0, 2)), \
        (rng.randint(1, 2), rng.randint(1, 2))
    h, w = rng.randint(7, 11), rng.randint(7, 11)
    return dict(n=rng.randint(1, 3), c_in=c_in, c_out=c_out, k=k, stride=stride, padding=padding,
                dilation=dilation, groups=groups, hw=(h, w), bias=rng.random() < 0.5)


@pytest.mark.parametrize("seed", range(12))
def test_conv2d_equals_torch_on_random_configs(seed):
    cfg = _random_config(random.Random(seed))
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(cfg["n"], cfg["c_in"], *cfg["hw"], generator=g)
    w = torch.randn(cfg["c_out"], cfg["c_in"] // cfg["groups"], *cfg["k"], generator=g)
    b = torch.randn(cfg["c_out"], generator=g) if cfg["bias"] else None
    kw = dict(stride=cfg["stride"], padding=cfg["padding"], dilation=cfg["dilation"], groups=cfg["groups"])
    ref = F.conv2d(x, w, b, **kw)
    torch.testing.assert_close(conv2d_im2col(x, w, b, **kw), ref, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(conv2d_naive(x, w, b, **kw), ref, atol=1e-4, rtol=1e-4)
    assert ref.shape[2:] == conv_output_shape(cfg["hw"], cfg["k"], cfg["stride"], cfg["padding"], cfg["dilation"])


def test_im2col_equals_unfold():
    x = torch.randn(2, 3, 9, 8)
    torch.testing.assert_close(im2col(x, (3, 2), (2, 1), (1, 0), (1, 2)),
                               F.unfold(x, (3, 2), dilation=(1, 2), padding=(1, 0), stride=(2, 1)))


def test_conv2d_gradcheck_float64():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 6, 5, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 2, 3, 2, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *a: conv2d_im2col(*a, stride=2, padding=1, dilation=1, groups=2),
                                    (x, w, b))


@pytest.mark.parametrize("size,k,s,p,d,expected", [(32, 3, 1, 1, 1, 32), (32, 3, 2, 1, 1, 16), (28, 5, 1, 0, 1, 24),
                                                   (8, 3, 1, 0, 2, 4), (7, 2, 2, 0, 1, 3)])
def test_conv_output_shape_formula(size, k, s, p, d, expected):
    assert conv_output_shape(size, k, s, p, d) == (expected, expected)
    assert F.conv2d(torch.zeros(1, 1, size, size), torch.zeros(1, 1, k, k), stride=s, padding=p,
                    dilation=d).shape[-1] == expected


def test_shape_errors_name_expected_and_received():
    with pytest.raises(ValueError, match=r"input has 6 channels but weight expects 3 \(weight shape \[8, 3, 3, 3\]"
                       r".*an RGB image has 3 channels"):
        conv2d_im2col(torch.randn(1, 6, 8, 8), torch.randn(8, 3, 3, 3))
    with pytest.raises(ValueError, match=r"input must be 4-D .* got shape \[3, 8, 8\].*unsqueeze"):
        conv2d_naive(torch.randn(3, 8, 8), torch.randn(8, 3, 3, 3))
    with pytest.raises(ValueError, match="groups=2 must divide"):
        conv2d_im2col(torch.randn(1, 3, 8, 8), torch.randn(4, 1, 3, 3), groups=2)
    with pytest.raises(ValueError, match="spans 5 pixels but the padded input has only 4"):
        conv_output_shape(4, 3, dilation=2)
    with pytest.raises(ValueError, match=r"bias must have shape \[8\]"):
        conv2d_im2col(torch.randn(1, 3, 8, 8), torch.randn(8, 3, 3, 3), torch.randn(3))


def test_conv_module_trains_and_matches_params():
    layer = Conv2d(3, 8, 3, padding=1)
    assert sum(p.numel() for p in layer.parameters()) == sum(p.numel() for p in nn.Conv2d(3, 8, 3).parameters())
    x = torch.randn(2, 3, 6, 6)
    torch.testing.assert_close(layer(x), F.conv2d(x, layer.weight, layer.bias, padding=1))
    layer(x).square().mean().backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0


def test_receptive_field_formula_and_measurement():
    assert receptive_field([(3, 1), (3, 1)]) == 5
    assert receptive_field([(3, 1), (2, 2), (3, 1)]) == 8
    assert receptive_field([(3, 1, 2)]) == 5
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Identity(), nn.AvgPool2d(2), nn.Conv2d(2, 2, 3, padding=1),
                        nn.Conv2d(2, 2, 3, dilation=2, padding=2))
    assert receptive_field(net) == 1 + 2 + 1 + 2 * 2 + 2 * 2 * 2
    assert empirical_receptive_field(net, 1, 33) == receptive_field(net)
    dead = nn.Sequential(nn.Conv2d(1, 1, 3), nn.ReLU())
    with torch.no_grad():
        dead[0].bias.fill_(-1e6)
    with pytest.raises(ValueError, match="no input pixel received a gradient"):
        empirical_receptive_field(dead, 1, 9)


@pytest.mark.parametrize("k,s,p", [(2, None, 0), (3, 1, 1), (3, 2, 1), ((2, 3), (1, 2), (1, 0))])
def test_pooling_equals_torch(k, s, p):
    x = torch.randn(2, 3, 9, 8, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(max_pool2d(x, k, s, p), F.max_pool2d(x, k, s, p))
    torch.testing.assert_close(avg_pool2d(x, k, s, p), F.avg_pool2d(x, k, s, p))
    g1, = torch.autograd.grad(max_pool2d(x, k, s, p).sum(), x)
    g2, = torch.autograd.grad(F.max_pool2d(x, k, s, p).sum(), x)
    torch.testing.assert_close(g1, g2)


def test_pooling_bad_input():
    with pytest.raises(ValueError, match=r"input must be 4-D .* \[3, 8\]"):
        max_pool2d(torch.randn(3, 8), 2)
    with pytest.raises(ValueError, match="padding"):
        avg_pool2d(torch.randn(1, 1, 8, 8), 2, padding=2)
