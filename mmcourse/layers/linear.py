"""A fully connected layer from scratch: forward, a hand-written backward, initialisation schemes, activations.

Chapter 1 (``book/01_fully_connected.ipynb``) builds these in the open, checks ``linear_backward`` against
autograd, measures how the initialisation scheme changes activation scales through depth, and trains
:class:`MLP` on scikit-learn's digits. Everything here is tested against its torch twin.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

INIT_SCHEMES = ("naive", "xavier", "kaiming")


def _check_linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> None:
    if weight.dim() != 2:
        raise ValueError(f"linear: weight must be 2-D [out_features, in_features], got shape {list(weight.shape)}")
    if x.dim() < 1 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input has {x.shape[-1] if x.dim() else 0} features in its last dimension "
                         f"(shape {list(x.shape)}) but weight expects {weight.shape[1]} "
                         f"(weight shape {list(weight.shape)}); expected input [..., {weight.shape[1]}]")
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(f"linear: bias must have shape [{weight.shape[0]}] (one per output), "
                         f"got {list(bias.shape)}")


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``y = x W^T + b``, the same maths as ``torch.nn.functional.linear``.

    Args:
        x: input ``[..., in_features]``.
        weight: ``[out_features, in_features]`` (one row per output neuron).
        bias: ``[out_features]`` or None.

    Returns:
        ``[..., out_features]``.
    """
    _check_linear(x, weight, bias)
    y = x @ weight.T  # [..., out]
    return y + bias if bias is not None else y


def linear_backward(x: Tensor, weight: Tensor, grad_out: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients of ``y = x W^T + b`` given ``dL/dy``, written out by hand.

    With ``x`` flattened to ``[N, in]`` and ``grad_out`` to ``[N, out]``:
    ``dL/dx = grad_out W``, ``dL/dW = grad_out^T x``, ``dL/db = sum_n grad_out``.

    Returns:
        ``(grad_x [..., in], grad_weight [out, in], grad_bias [out])``.
    """
    _check_linear(x, weight, None)
    if grad_out.shape[:-1] != x.shape[:-1] or grad_out.shape[-1] != weight.shape[0]:
        raise ValueError(f"linear_backward: grad_out has shape {list(grad_out.shape)}, expected "
                         f"{[*x.shape[:-1], weight.shape[0]]} (the shape of the forward output)")
    x2 = x.reshape(-1, x.shape[-1])  # [N, in]
    g2 = grad_out.reshape(-1, grad_out.shape[-1])  # [N, out]
    grad_x = (g2 @ weight).reshape(x.shape)
    grad_w = g2.T @ x2  # [out, in]
    grad_b = g2.sum(0)  # [out]
    return grad_x, grad_w, grad_b


def init_weight_(weight: Tensor, scheme: str = "kaiming", *, std: float = 1.0,
                 generator: torch.Generator | None = None) -> Tensor:
    """Fill ``weight [out, in]`` in place from a zero-mean normal whose spread depends on ``scheme``.

    - ``"naive"``: std ``std`` whatever the layer size (the classic mistake).
    - ``"xavier"``: std ``sqrt(2 / (fan_in + fan_out))`` (Glorot & Bengio, 2010), keeps variance for tanh.
    - ``"kaiming"``: std ``sqrt(2 / fan_in)`` (He et al., 2015), keeps variance for ReLU.
    """
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"unknown init scheme {scheme!r}; use one of {INIT_SCHEMES}")
    fan_out, fan_in = weight.shape[0], math.prod(weight.shape[1:])
    if scheme == "xavier":
        std = math.sqrt(2.0 / (fan_in + fan_out))
    elif scheme == "kaiming":
        std = math.sqrt(2.0 / fan_in)
    with torch.no_grad():
        weight.copy_(torch.randn(weight.shape, generator=generator, dtype=weight.dtype) * std)
    return weight


class Linear(nn.Module):
    """A fully connected layer built on :func:`linear`, with a choice of initialisation scheme."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, init: str = "kaiming",
                 std: float = 1.0) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        init_weight_(self.weight, init, std=std)

    def forward(self, x: Tensor) -> Tensor:
        return linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


# Activations from scratch (each is tested against torch.relu / torch.sigmoid / torch.tanh / F.gelu).
def relu(x: Tensor) -> Tensor:
    """``max(x, 0)``."""
    return torch.where(x > 0, x, torch.zeros_like(x))


def sigmoid(x: Tensor) -> Tensor:
    """``1 / (1 + e^-x)``, written so that neither branch overflows."""
    e = torch.exp(-x.abs())  # in (0, 1]
    return torch.where(x >= 0, 1 / (1 + e), e / (1 + e))


def tanh(x: Tensor) -> Tensor:
    """``tanh(x) = 2 sigmoid(2x) - 1``."""
    return 2 * sigmoid(2 * x) - 1


def gelu(x: Tensor) -> Tensor:
    """``x Phi(x)`` with ``Phi`` the standard normal CDF (the exact GELU, as ``F.gelu``'s default)."""
    return x * 0.5 * (1 + torch.erf(x / math.sqrt(2.0)))


ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {"relu": relu, "tanh": tanh, "sigmoid": sigmoid,
                                                       "gelu": gelu, "identity": lambda x: x}


class MLP(nn.Module):
    """A stack of :class:`Linear` layers with an activation between them (none after the last)."""

    def __init__(self, sizes: Sequence[int], activation: str = "relu", init: str = "kaiming") -> None:
        super().__init__()
        if len(sizes) < 2:
            raise ValueError(f"MLP needs at least [in, out] sizes, got {list(sizes)}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; use one of {sorted(ACTIVATIONS)}")
        self.act = ACTIVATIONS[activation]
        self.layers = nn.ModuleList(Linear(a, b, init=init) for a, b in zip(sizes[:-1], sizes[1:]))

    def forward(self, x: Tensor) -> Tensor:
        x = x.flatten(1)  # [B, in]
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = self.act(x)
        return x


@torch.no_grad()
def activation_stds(scheme: str, activation: str = "relu", *, depth: int = 20, width: int = 256,
                    n: int = 512, std: float = 1.0, seed: int = 0) -> list[float]:
    """Push ``n`` standard-normal inputs through ``depth`` random layers; return the activations' std per layer.

    The measured version of "initialisation matters": with ``"naive"`` the scale explodes or vanishes
    geometrically with depth, with the right scheme for the activation it stays of order one.
    """
    g = torch.Generator().manual_seed(seed)
    act = ACTIVATIONS[activation]
    x = torch.randn(n, width, generator=g)
    out = []
    for _ in range(depth):
        w = init_weight_(torch.empty(width, width), scheme, std=std, generator=g)
        x = act(x @ w.T)
        out.append(float(x.std()))
    return out
