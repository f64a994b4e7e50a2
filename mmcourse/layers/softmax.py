"""Softmax, log-softmax and cross-entropy from scratch, numerically stable through the log-sum-exp trick.

Chapter 2 (``book/02_softmax.ipynb``) shows the naive softmax overflow, derives log-sum-exp, and checks
:func:`cross_entropy` against ``F.cross_entropy`` (class weights, ``ignore_index``, label smoothing, soft
targets, every reduction). Temperature scaling divides logits by ``temperature`` before the softmax.
"""

from __future__ import annotations

import torch
from torch import Tensor

REDUCTIONS = ("mean", "sum", "none")


def softmax_naive(x: Tensor, dim: int = -1) -> Tensor:
    """``exp(x) / sum(exp(x))`` as written in textbooks: overflows to ``nan`` once a logit passes ~88 (float32)."""
    e = torch.exp(x)
    return e / e.sum(dim, keepdim=True)


def logsumexp(x: Tensor, dim: int = -1, keepdim: bool = False) -> Tensor:
    """``log(sum(exp(x)))`` computed as ``m + log(sum(exp(x - m)))`` with ``m = max(x)``, so nothing overflows."""
    m = _safe_max(x, dim)  # all -inf row: shift by 0 and keep -inf (avoids inf - inf = nan)
    out = m + torch.log(torch.exp(x - m).sum(dim, keepdim=True))
    return out if keepdim else out.squeeze(dim)


def log_softmax(x: Tensor, dim: int = -1, temperature: float = 1.0) -> Tensor:
    """``z - logsumexp(z)`` with ``z = x / T``: the log-probabilities, stable for any logit size.

    Written as ``(z - m) - log(sum(exp(z - m)))`` so that large logits do not lose digits to rounding.
    """
    _check_temperature(temperature)
    z = x / temperature
    shifted = z - _safe_max(z, dim)
    return shifted - torch.log(torch.exp(shifted).sum(dim, keepdim=True))


def softmax(x: Tensor, dim: int = -1, temperature: float = 1.0) -> Tensor:
    """Stable softmax of ``x / temperature``. ``T > 1`` flattens the distribution, ``T < 1`` sharpens it."""
    _check_temperature(temperature)
    z = x / temperature
    e = torch.exp(z - _safe_max(z, dim))  # the largest entry becomes exp(0) = 1: no overflow
    return e / e.sum(dim, keepdim=True)


def _safe_max(z: Tensor, dim: int) -> Tensor:
    m = z.amax(dim, keepdim=True).detach()  # a constant shift: the result does not depend on it
    return torch.where(torch.isfinite(m), m, torch.zeros_like(m))


def _check_temperature(t: float) -> None:
    if not t > 0:
        raise ValueError(f"temperature must be > 0, got {t}")


def cross_entropy(logits: Tensor, target: Tensor, *, weight: Tensor | None = None, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy between ``logits [N, C, *]`` and ``target``, the same maths as ``F.cross_entropy``.

    Args:
        logits: unnormalised scores ``[N, C]`` or ``[N, C, d1, ...]`` (classes in dim 1).
        target: class indices ``[N]`` / ``[N, d1, ...]`` (int64), or class probabilities shaped like ``logits``.
        weight: optional per-class weight ``[C]``.
        ignore_index: targets equal to it contribute nothing (index targets only).
        reduction: ``"mean"`` (weighted mean over non-ignored targets), ``"sum"`` or ``"none"``.
        label_smoothing: ``eps`` in ``[0, 1]``; the target becomes ``(1 - eps) one_hot + eps / C``.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    if logits.dim() < 2:
        raise ValueError(f"cross_entropy: logits must be [N, C] or [N, C, ...], got shape {list(logits.shape)}")
    n_classes = logits.shape[1]
    if weight is not None and tuple(weight.shape) != (n_classes,):
        raise ValueError(f"cross_entropy: weight must have shape [{n_classes}] (one per class), "
                         f"got {list(weight.shape)}")
    logp = log_softmax(logits.movedim(1, -1), dim=-1)  # [N, *, C]
    w = weight if weight is not None else torch.ones(n_classes, dtype=logp.dtype, device=logp.device)

    if target.is_floating_point():  # soft targets: probabilities per class
        if target.shape != logits.shape:
            raise ValueError(f"cross_entropy: probability targets must have the logits' shape "
                             f"{list(logits.shape)}, got {list(target.shape)}")
        t = target.movedim(1, -1) * (1 - label_smoothing) + label_smoothing / n_classes
        loss = -(t * logp * w).sum(-1)  # [N, *]
        if reduction == "mean":
            return loss.mean()  # over samples (and positions); class weights do not renormalise here
        return loss.sum() if reduction == "sum" else loss

    expected = (logits.shape[0], *logits.shape[2:])
    if tuple(target.shape) != expected:
        raise ValueError(f"cross_entropy: class-index target must have shape {list(expected)} for logits "
                         f"{list(logits.shape)}, got {list(target.shape)}")
    keep = target != ignore_index  # [N, *]
    safe = torch.where(keep, target, torch.zeros_like(target))
    if bool(((safe < 0) | (safe >= n_classes)).any()):
        raise ValueError(f"cross_entropy: target holds class indices outside [0, {n_classes - 1}] "
                         f"(and not ignore_index={ignore_index})")
    picked = logp.gather(-1, safe.unsqueeze(-1)).squeeze(-1)  # log p of the true class, [N, *]
    w_t = w[safe] * keep  # weight of each target, 0 when ignored
    nll = -picked * w_t
    smooth = -(logp * w).sum(-1) * keep  # uniform-target part
    loss = (1 - label_smoothing) * nll + (label_smoothing / n_classes) * smooth
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / w_t.sum()  # nan when every target is ignored, as in torch
