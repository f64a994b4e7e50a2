"""Batch normalisation and layer normalisation from scratch, equal to ``nn.BatchNorm1d/2d`` and ``nn.LayerNorm``.

Chapter 04 builds both and shows why normalising activations lets a deep plain network train. Batch norm
normalises each channel over the batch (and the positions), so a sample's output depends on the other samples
of its batch in training and on running statistics in evaluation; layer norm normalises each sample over its
own features and behaves the same in both modes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


def _channel_dims(x: Tensor) -> tuple[int, ...]:
    """The dims batch norm averages over: all but the channel dim 1 (``[N, C]``, ``[N, C, L]``, ``[N, C, H, W]``)."""
    if x.dim() < 2:
        raise ValueError(f"batch_norm needs input [N, C, ...], got shape {list(x.shape)}")
    return (0, *range(2, x.dim()))


def _per_channel(t: Tensor, x: Tensor) -> Tensor:
    """View a ``[C]`` tensor so that it broadcasts against ``x [N, C, ...]``."""
    return t.view(1, -1, *([1] * (x.dim() - 2)))


def batch_norm(x: Tensor, running_mean: Tensor | None, running_var: Tensor | None, weight: Tensor | None = None,
               bias: Tensor | None = None, *, training: bool = True, momentum: float | None = 0.1,
               eps: float = 1e-5, num_batches_tracked: Tensor | None = None) -> Tensor:
    """Batch normalisation, the same function as ``F.batch_norm``.

    In training (or when there are no running statistics) each channel is normalised with the mean and the
    biased variance of the batch; the running statistics, when given, are updated in place as
    ``running = (1 - momentum) * running + momentum * batch`` with the *unbiased* batch variance (``momentum``
    None: a cumulative average over the ``num_batches_tracked`` batches seen). In evaluation the running
    statistics are used instead, so every sample's output is independent of the rest of the batch.

    Args:
        x: ``[N, C]``, ``[N, C, L]`` or ``[N, C, H, W]``.
        running_mean, running_var: ``[C]`` buffers (or None: always use the batch statistics).
        weight, bias: the learned scale γ and shift β, ``[C]`` (None: 1 and 0).
        num_batches_tracked: a 0-d int64 counter, incremented in training (needed when ``momentum`` is None).

    Returns:
        ``γ (x - μ) / sqrt(σ² + eps) + β``, the shape of ``x``.
    """
    dims = _channel_dims(x)
    c = x.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                    ("bias", bias)):
        if t is not None and t.shape != (c,):
            raise ValueError(f"batch_norm: {name} has shape {list(t.shape)}, expected [{c}] (the channels of x)")
    use_batch = training or running_mean is None or running_var is None
    if use_batch:
        n = x.numel() // c  # values per channel
        if n < 2:
            raise ValueError(f"batch_norm in training needs more than 1 value per channel, got input {list(x.shape)}")
        mean = x.mean(dims)  # [C]
        var = x.var(dims, unbiased=False)  # [C], biased: what normalises the batch
        if training and running_mean is not None and running_var is not None:
            with torch.no_grad():
                if num_batches_tracked is not None:
                    num_batches_tracked.add_(1)
                m = momentum if momentum is not None else 1.0 / float(_count(num_batches_tracked))
                running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                running_var.mul_(1 - m).add_(var.detach() * n / (n - 1), alpha=m)  # unbiased
    else:
        mean, var = running_mean, running_var
    out = (x - _per_channel(mean, x)) * _per_channel(torch.rsqrt(var + eps), x)
    if weight is not None:
        out = out * _per_channel(weight, x)
    if bias is not None:
        out = out + _per_channel(bias, x)
    return out


def _count(num_batches_tracked: Tensor | None) -> int:
    if num_batches_tracked is None:
        raise ValueError("batch_norm with momentum=None (a cumulative average) needs num_batches_tracked")
    return int(num_batches_tracked)


class BatchNorm(nn.Module):
    """Batch normalisation over channel dim 1 for ``[N, C]``, ``[N, C, L]`` and ``[N, C, H, W]`` inputs.

    Same parameters, buffers (``running_mean``, ``running_var``, ``num_batches_tracked``) and state-dict keys
    as ``nn.BatchNorm1d``/``nn.BatchNorm2d``, so weights load either way.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True):
        super().__init__()
        if num_features < 1:
            raise ValueError(f"num_features must be >= 1, got {num_features}")
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.weight = nn.Parameter(torch.ones(num_features)) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_features)) if affine else None
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features))
            self.register_buffer("running_var", torch.ones(num_features))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None

    def forward(self, x: Tensor) -> Tensor:  # [N, C, ...] -> [N, C, ...]
        if x.dim() < 2 or x.shape[1] != self.num_features:
            raise ValueError(f"BatchNorm({self.num_features}) got input {list(x.shape)}: expected "
                             f"[N, {self.num_features}, ...]")
        return batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, training=self.training,
                          momentum=self.momentum, eps=self.eps, num_batches_tracked=self.num_batches_tracked)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}"


def layer_norm(x: Tensor, normalized_shape: Sequence[int] | int, weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Layer normalisation, the same function as ``F.layer_norm``: each sample is normalised over its last
    ``len(normalized_shape)`` dims with its own mean and biased variance, then scaled and shifted.

    Args:
        x: ``[..., *normalized_shape]``, e.g. tokens ``[B, L, D]`` with ``normalized_shape = (D,)``.
        weight, bias: ``normalized_shape``-shaped γ and β (None: 1 and 0).
    """
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(shape)
    if k == 0 or tuple(x.shape[x.dim() - k:]) != shape:
        raise ValueError(f"layer_norm: input {list(x.shape)} does not end in normalized_shape {list(shape)}")
    dims = tuple(range(x.dim() - k, x.dim()))
    mean = x.mean(dims, keepdim=True)
    var = x.var(dims, unbiased=False, keepdim=True)
    out = (x - mean) * torch.rsqrt(var + eps)
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


class LayerNorm(nn.Module):
    """Layer normalisation over the last dims (``normalized_shape``); same parameters as ``nn.LayerNorm``."""

    def __init__(self, normalized_shape: Sequence[int] | int, eps: float = 1e-5, elementwise_affine: bool = True):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.normalized_shape, self.eps = shape, eps
        self.weight = nn.Parameter(torch.ones(shape)) if elementwise_affine else None
        self.bias = nn.Parameter(torch.zeros(shape)) if elementwise_affine else None

    def forward(self, x: Tensor) -> Tensor:  # [..., *normalized_shape]
        return layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}"
