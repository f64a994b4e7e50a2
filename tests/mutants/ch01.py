"""Wrong answers for chapter 01's checks (linear forward, an MLP's backward by hand, Kaiming initialisation, and
a find-the-bug in a deep MLP's initialisation)."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import Mutant


def forward_no_bias(x, W, b):
    return x @ W.T


def forward_untransposed(x, W, b):
    return x @ W.reshape(W.shape[1], W.shape[0]) + b


def forward_with_F_linear(x, W, b):
    return F.linear(x, W, b)


def _mlp(x, W1, b1, W2, b2, target, *, mask=True, factor=2.0, mean_over="all"):
    z = x @ W1.T + b1
    h = z.clamp(min=0)
    y = h @ W2.T + b2
    diff = y - target
    count = diff.numel() if mean_over == "all" else diff.shape[0]
    loss = (diff**2).sum() / count
    dy = factor * diff / count
    dh = dy @ W2
    dz = dh * (z > 0) if mask else dh
    return loss, dz.T @ x, dz.sum(0), dy.T @ h, dy.sum(0)


def mlp_backward_no_relu_mask(x, W1, b1, W2, b2, target):
    return _mlp(x, W1, b1, W2, b2, target, mask=False)


def mlp_backward_no_factor_2(x, W1, b1, W2, b2, target):
    return _mlp(x, W1, b1, W2, b2, target, factor=1.0)


def mlp_backward_mean_over_batch(x, W1, b1, W2, b2, target):
    return _mlp(x, W1, b1, W2, b2, target, mean_over="batch")


def mlp_backward_sign_flipped(x, W1, b1, W2, b2, target):
    loss, dw1, db1, dw2, db2 = _mlp(x, W1, b1, W2, b2, target)
    return loss, -dw1, -db1, -dw2, -db2


def mlp_backward_mean_bias(x, W1, b1, W2, b2, target):
    loss, dw1, db1, dw2, db2 = _mlp(x, W1, b1, W2, b2, target)
    return loss, dw1, db1 / x.shape[0], dw2, db2 / x.shape[0]


def mlp_backward_transposed_weights(x, W1, b1, W2, b2, target):
    loss, dw1, db1, dw2, db2 = _mlp(x, W1, b1, W2, b2, target)
    return loss, dw1.T.reshape(W1.shape), db1, dw2.T.reshape(W2.shape), db2


def mlp_backward_with_autograd(x, W1, b1, W2, b2, target):
    params = [t.clone().requires_grad_() for t in (W1, b1, W2, b2)]
    with torch.enable_grad():
        y = torch.relu(x @ params[0].T + params[1]) @ params[2].T + params[3]
        loss = ((y - target) ** 2).mean()
        loss.backward()
    return (loss.detach(), *(p.grad for p in params))


class _DeepMLP(nn.Module):  # the task's network; `init(layer, fan_in, width)` fills a hidden layer
    init = staticmethod(lambda layer, fan_in, width: nn.init.normal_(layer.weight, std=1 / math.sqrt(width)))

    def __init__(self, n_in, width, depth, n_classes):
        super().__init__()
        sizes = [n_in] + [width] * depth
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.out = nn.Linear(width, n_classes)
        for layer in self.hidden:
            type(self).init(layer, layer.in_features, width)
            nn.init.zeros_(layer.bias)

    def forward(self, x):
        for layer in self.hidden:
            x = torch.relu(layer(x))
        return self.out(x)


class DeepMLPAsGiven(_DeepMLP):  # std 1/sqrt(width): no factor 2, and the width instead of fan_in
    pass


class DeepMLPNoFactor2(_DeepMLP):
    init = staticmethod(lambda layer, fan_in, width: nn.init.normal_(layer.weight, std=math.sqrt(1 / fan_in)))


class DeepMLPWidthNotFanIn(_DeepMLP):
    init = staticmethod(lambda layer, fan_in, width: nn.init.normal_(layer.weight, std=math.sqrt(2 / width)))


class DeepMLPXavier(_DeepMLP):
    init = staticmethod(lambda layer, fan_in, width: nn.init.xavier_normal_(layer.weight))


class DeepMLPDefaultInit(_DeepMLP):  # the init lines deleted: nn.Linear's own initialisation
    init = staticmethod(lambda layer, fan_in, width: layer.reset_parameters())


class DeepMLPLayerNorm(DeepMLPAsGiven):  # the scale restored by normalisation layers, not by the init
    def __init__(self, n_in, width, depth, n_classes):
        super().__init__(n_in, width, depth, n_classes)
        self.norms = nn.ModuleList(nn.LayerNorm(width) for _ in range(depth))

    def forward(self, x):
        for layer, norm in zip(self.hidden, self.norms):
            x = norm(torch.relu(layer(x)))
        return self.out(x)


class DeepMLPRescaledForward(DeepMLPAsGiven):  # the activations multiplied back up in forward
    def forward(self, x):
        for layer in self.hidden:
            x = torch.relu(layer(x)) * math.sqrt(2)
        return self.out(x)


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
    "01.mlp_backward": {"no ReLU mask": Mutant(mlp_backward_no_relu_mask, "relu"),
                        "dL/dy without the factor 2": Mutant(mlp_backward_no_factor_2, "factor 2"),
                        "mean over the batch only": Mutant(mlp_backward_mean_over_batch, "n·out"),
                        "target - y instead of y - target": Mutant(mlp_backward_sign_flipped, "not t - y"),
                        "mean instead of sum for the biases": Mutant(mlp_backward_mean_bias, "grad_b"),
                        "weight gradients transposed": Mutant(mlp_backward_transposed_weights, "grad_w"),
                        "autograd": Mutant(mlp_backward_with_autograd, "not allow")},
    "01.kaiming_init": {"uniform": Mutant(kaiming_uniform, "normally distributed"),
                        "std sqrt(1/fan_in)": Mutant(kaiming_xavier_std, "std"),
                        "global RNG": Mutant(kaiming_ignores_generator, "generator"),
                        "fan_out": kaiming_fan_out},
    "01.fix_init": {"as given (std 1/sqrt(width))": Mutant(DeepMLPAsGiven, "fan_in"),
                    "std sqrt(1/fan_in)": Mutant(DeepMLPNoFactor2, "factor 2"),
                    "std sqrt(2/width) in every layer": Mutant(DeepMLPWidthNotFanIn, "not from its width"),
                    "Xavier": Mutant(DeepMLPXavier, "xavier"),
                    "nn.Linear's default init": Mutant(DeepMLPDefaultInit, "default"),
                    "LayerNorm added": Mutant(DeepMLPLayerNorm, "keep the given layers"),
                    "activations rescaled in forward": Mutant(DeepMLPRescaledForward, "leave forward")},
}
