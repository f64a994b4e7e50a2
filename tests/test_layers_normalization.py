"""Tests for mmcourse/layers/normalization.py: BatchNorm and LayerNorm equal torch's (outputs, running
statistics, gradients, state dicts) in training and evaluation."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmcourse.layers.normalization import BatchNorm, LayerNorm, batch_norm, layer_norm


def _pair(shape, momentum, affine=True, track=True, seed=0):
    torch.manual_seed(seed)
    c = shape[1]
    ref = (nn.BatchNorm1d if len(shape) < 4 else nn.BatchNorm2d)(c, momentum=momentum, affine=affine,
                                                                  track_running_stats=track).double()
    ours = BatchNorm(c, momentum=momentum, affine=affine, track_running_stats=track).double()
    if affine:
        with torch.no_grad():
            ref.weight.uniform_(0.5, 1.5)
            ref.bias.uniform_(-0.5, 0.5)
            ours.weight.copy_(ref.weight)
            ours.bias.copy_(ref.bias)
    return ours, ref


@pytest.mark.parametrize("shape", [(8, 5), (6, 4, 7), (4, 3, 5, 6)])
@pytest.mark.parametrize("momentum", [0.1, 0.5, None])
def test_batchnorm_equals_torch_over_training_steps_then_eval(shape, momentum):
    ours, ref = _pair(shape, momentum)
    g = torch.Generator().manual_seed(1)
    for _ in range(4):  # training: batch statistics; running statistics move
        x = (torch.randn(*shape, generator=g, dtype=torch.float64) * 3 + 2).requires_grad_()
        x2 = x.detach().clone().requires_grad_()
        out, want = ours(x), ref(x2)
        torch.testing.assert_close(out, want)
        w = torch.randn(*shape, generator=g, dtype=torch.float64)
        (out * w).sum().backward()
        (want * w).sum().backward()
        torch.testing.assert_close(x.grad, x2.grad)
        torch.testing.assert_close(ours.weight.grad, ref.weight.grad)
        torch.testing.assert_close(ours.bias.grad, ref.bias.grad)
        ours.zero_grad()
        ref.zero_grad()
    torch.testing.assert_close(ours.running_mean, ref.running_mean)
    torch.testing.assert_close(ours.running_var, ref.running_var)
    assert int(ours.num_batches_tracked) == int(ref.num_batches_tracked) == 4
    ours.eval()
    ref.eval()
    x = torch.randn(*shape, generator=g, dtype=torch.float64)
    torch.testing.assert_close(ours(x), ref(x))
    # evaluation: each sample alone gives the same output as inside the batch
    torch.testing.assert_close(ours(x[:1]), ours(x)[:1])
    assert int(ours.num_batches_tracked) == 4, "evaluation must not touch the running statistics"


def test_batchnorm_state_dict_loads_into_torch_and_back():
    ours, ref = _pair((4, 3, 5, 5), 0.1)
    ours.train()
    ours(torch.randn(4, 3, 5, 5, dtype=torch.float64))
    assert set(ours.state_dict()) == set(ref.state_dict())
    ref.load_state_dict(ours.state_dict())
    ref.eval()
    ours.eval()
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    torch.testing.assert_close(ours(x), ref(x))


def test_batchnorm_without_affine_or_running_stats():
    ours, ref = _pair((10, 3), 0.1, affine=False, track=False)
    x = torch.randn(10, 3, dtype=torch.float64)
    ours.eval()
    ref.eval()  # no running statistics: batch statistics even in evaluation
    torch.testing.assert_close(ours(x), ref(x))
    assert ours.weight is None and ours.running_mean is None


def test_batch_norm_gradcheck_train_and_eval():
    x = torch.randn(6, 3, 4, dtype=torch.float64, requires_grad=True)
    w = torch.rand(3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, c, d: batch_norm(a, None, None, c, d, training=True), (x, w, b))
    rm, rv = torch.randn(3, dtype=torch.float64), torch.rand(3, dtype=torch.float64) + 0.5
    assert torch.autograd.gradcheck(lambda a, c, d: batch_norm(a, rm, rv, c, d, training=False), (x, w, b))
    torch.testing.assert_close(batch_norm(x, rm, rv, w, b, training=False),
                               F.batch_norm(x, rm, rv, w, b, training=False))


def test_batchnorm_errors_name_the_culprit():
    bn = BatchNorm(4)
    with pytest.raises(ValueError, match=r"expected \[N, 4, \.\.\.\]"):
        bn(torch.randn(2, 3))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bn(torch.randn(1, 4))
    with pytest.raises(ValueError, match="running_mean has shape"):
        batch_norm(torch.randn(5, 4), torch.zeros(3), torch.ones(4))


@pytest.mark.parametrize("shape,norm", [((4, 10), (10,)), ((2, 5, 8), (8,)), ((3, 2, 4, 5), (4, 5))])
def test_layernorm_equals_torch_with_gradients(shape, norm):
    torch.manual_seed(0)
    ref = nn.LayerNorm(norm).double()
    ours = LayerNorm(norm).double()
    with torch.no_grad():
        ref.weight.uniform_(0.5, 1.5)
        ref.bias.uniform_(-1, 1)
    ours.load_state_dict(ref.state_dict())
    x = (torch.randn(*shape, dtype=torch.float64) * 4 - 1).requires_grad_()
    torch.testing.assert_close(ours(x), ref(x))
    ours.eval()
    torch.testing.assert_close(ours(x), ref(x))  # the same in both modes
    assert torch.autograd.gradcheck(lambda a, w, b: layer_norm(a, norm, w, b),
                                    (x.detach()[:2].requires_grad_(), ours.weight.detach().clone().requires_grad_(),
                                     ours.bias.detach().clone().requires_grad_()))
    with pytest.raises(ValueError, match="does not end in normalized_shape"):
        layer_norm(x, (7,))


def test_layernorm_is_per_sample_batchnorm_is_not():
    x = torch.randn(8, 6)
    ln, bn = LayerNorm(6), BatchNorm(6)
    torch.testing.assert_close(ln(x)[:2], ln(x[:2]))
    assert not torch.allclose(bn(x)[:2], bn(x[:2])), "in training, batch norm depends on the batch"
