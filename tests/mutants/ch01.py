"""Wrong answers for chapter 01's checks (linear forward, backward by hand, Kaiming initialisation)."""

import math

import torch
import torch.nn.functional as F

from . import Mutant


def forward_no_bias(x, W, b):
    return x @ W.T


def forward_untransposed(x, W, b):
    return x @ W.reshape(W.shape[1], W.shape[0]) + b


def forward_with_F_linear(x, W, b):
    return F.linear(x, W, b)


def backward_mean_bias(x, W, grad_out):
    return grad_out @ W, grad_out.T @ x, grad_out.mean(0)


def backward_transposed_weight(x, W, grad_out):
    return grad_out @ W, (grad_out.T @ x).T.reshape(W.shape), grad_out.sum(0)


def backward_with_autograd(x, W, grad_out):
    x, W = x.clone().requires_grad_(), W.clone().requires_grad_()
    b = torch.zeros(W.shape[0], dtype=W.dtype, requires_grad=True)
    (x @ W.T + b).backward(grad_out)
    return x.grad, W.grad, b.grad


def kaiming_uniform(fan_in, fan_out, generator):
    bound = math.sqrt(3) * math.sqrt(2 / fan_in)  # the same standard deviation, the wrong distribution
    return (torch.rand(fan_out, fan_in, generator=generator) * 2 - 1) * bound


def kaiming_xavier_std(fan_in, fan_out, generator):
    return torch.randn(fan_out, fan_in, generator=generator) * math.sqrt(1 / fan_in)


def kaiming_ignores_generator(fan_in, fan_out, generator):
    return torch.randn(fan_out, fan_in) * math.sqrt(2 / fan_in)


def kaiming_fan_out(fan_in, fan_out, generator):
    return torch.randn(fan_out, fan_in, generator=generator) * math.sqrt(2 / fan_out)


MUTANTS = {
    "01.linear_forward": {"no bias": forward_no_bias, "W not transposed": forward_untransposed,
                          "calls F.linear": Mutant(forward_with_F_linear, "calls linear")},
    "01.linear_backward": {"mean instead of sum for db": Mutant(backward_mean_bias, "grad_b"),
                           "dW transposed": Mutant(backward_transposed_weight, "grad_w"),
                           "autograd": Mutant(backward_with_autograd, "not allow")},
    "01.kaiming_init": {"uniform": Mutant(kaiming_uniform, "normally distributed"),
                        "std sqrt(1/fan_in)": Mutant(kaiming_xavier_std, "std"),
                        "global RNG": Mutant(kaiming_ignores_generator, "generator"),
                        "fan_out": kaiming_fan_out},
}
