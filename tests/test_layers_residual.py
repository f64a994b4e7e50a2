"""Tests for mmcourse/layers/residual.py: basic and bottleneck blocks, projection shortcuts, plain switch."""

import pytest
import torch
from torch import nn

from mmcourse.layers.residual import BasicBlock, Bottleneck, grad_norms, projection_shortcut, zero_init_last_bn


def test_identity_shortcut_when_shape_kept():
    assert isinstance(projection_shortcut(8, 8, 1), nn.Identity)
    s = projection_shortcut(8, 16, 2)
    conv, bn = s[0], s[1]
    assert conv.kernel_size == (1, 1) and conv.stride == (2, 2) and isinstance(bn, nn.BatchNorm2d)


def test_basic_block_shapes_and_stride2_projection():
    torch.manual_seed(0)
    b = BasicBlock(8, 16, stride=2).eval()
    x = torch.randn(2, 8, 10, 10)
    y = b(x)
    assert y.shape == (2, 16, 5, 5)
    # the output is exactly relu(residual + projected shortcut)
    torch.testing.assert_close(y, torch.relu(b.residual(x) + b.shortcut(x)))
    assert b.shortcut[0].weight.shape == (16, 8, 1, 1)


def test_identity_block_is_identity_when_branch_is_zero():
    b = BasicBlock(4, 4).eval()
    zero_init_last_bn([b])
    x = torch.rand(3, 4, 6, 6)  # non-negative, so relu(x) == x
    torch.testing.assert_close(b(x), x)


def test_plain_block_has_no_shortcut():
    b = BasicBlock(4, 8, stride=2, plain=True).eval()
    assert b.shortcut is None
    x = torch.randn(2, 4, 8, 8)
    torch.testing.assert_close(b(x), torch.relu(b.residual(x)))
    assert sum(p.numel() for p in b.parameters()) < sum(p.numel() for p in BasicBlock(4, 8, 2).parameters())


def test_bottleneck_expands_and_projects():
    b = Bottleneck(16, 8, stride=2).eval()
    y = b(torch.randn(2, 16, 8, 8))
    assert y.shape == (2, 32, 4, 4) and b.out_ch == 32
    assert isinstance(Bottleneck(32, 8).shortcut, nn.Identity)


def test_wrong_channels_raise_clear_error():
    with pytest.raises(ValueError, match=r"expects \[B, 8, H, W\], got \[2, 3, 8, 8\]"):
        BasicBlock(8, 8)(torch.randn(2, 3, 8, 8))
    with pytest.raises(ValueError, match="expects"):
        Bottleneck(8, 4)(torch.randn(8, 8, 8))


def test_gradients_reach_input_and_grad_norms():
    blocks = nn.Sequential(BasicBlock(4, 4), BasicBlock(4, 8, stride=2))
    x = torch.randn(4, 4, 8, 8, requires_grad=True)
    blocks(x).square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    norms = grad_norms(blocks)
    assert len(norms) == 2 and all(n > 0 for n in norms)


def test_residual_stack_keeps_gradient_norms_even():
    """Through 12 plain BN blocks gradient norms spread over a wide range; identity shortcuts keep them close."""
    def spread(plain):
        torch.manual_seed(0)
        net = nn.Sequential(*[BasicBlock(8, 8, plain=plain) for _ in range(12)])
        x, y = torch.randn(32, 8, 8, 8), torch.randint(0, 8, (32,))
        nn.functional.cross_entropy(net(x).mean((2, 3)), y).backward()
        norms = grad_norms(net)
        return max(norms) / min(norms)
    assert spread(True) > 3 * spread(False)
