"""The checks every encoder runs on its input before any layer sees it (chapters 5–8).

Rank and channels, dtype (with the conversion to write), device and dtype of the weights, and the smallest
input the encoder's convolutions and pools can take — worked out from its layers, so the message states the
minimum size and stays right when the layers change. Only shapes, dtypes and devices are read (no values,
no host synchronisation), so the checks are free inside a training step.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mmcourse.batch import conversion_hint

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_POOL = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
_NORM = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_SHRINK = _CONV + _POOL


def _at(v: int | Sequence[int], i: int) -> int:
    return int(v[i]) if isinstance(v, (tuple, list)) else int(v)


def _out_size(attrs: dict, size: int, i: int) -> int:
    """Output length along spatial axis ``i`` of a conv or pooling layer (its ``vars()``), as torch computes it."""
    k = _at(attrs["kernel_size"], i)
    s = _at(attrs.get("stride") or attrs["kernel_size"], i)
    p = attrs.get("padding", 0)
    if isinstance(p, str):  # "same" keeps the size, "valid" is padding 0
        if p == "same":
            return size
        p = 0
    p, d = _at(p, i), _at(attrs.get("dilation", 1), i)
    span = size + 2 * p - d * (k - 1) - 1
    if attrs.get("ceil_mode", False):
        out = -(-span // s) + 1
        return out - 1 if (out - 1) * s >= size + p else out  # the last window must start inside the input
    return span // s + 1


def _walk(layers: nn.Module, batch: int, sizes: tuple[int, ...], training: bool
          ) -> tuple[str | None, tuple[int, ...]]:
    """Follow ``sizes`` through ``layers`` in order (nested Sequentials included; other modules keep the size).

    Returns the first problem (``"too small"``, ``"batchnorm"`` or None) and the sizes at the end. Pure
    arithmetic on the layers' settings (their ``vars()``), so it costs microseconds.
    """
    children = layers._modules.values() if isinstance(layers, nn.Sequential) else (layers,)
    for layer in children:
        if isinstance(layer, nn.Sequential):
            problem, sizes = _walk(layer, batch, sizes, training)
            if problem:
                return problem, sizes
        elif isinstance(layer, _SHRINK):
            attrs = vars(layer)
            sizes = tuple(_out_size(attrs, n, i) for i, n in enumerate(sizes))
            if min(sizes) < 1:
                return "too small", sizes
        elif training and isinstance(layer, _NORM) and layer.training:
            count = batch
            for n in sizes:
                count *= n
            if count == 1:  # torch refuses exactly one value per channel (zero is an empty batch, fine)
                return "batchnorm", sizes
    return None, sizes


def _autocast_on(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except RuntimeError:  # a device type autocast does not know (e.g. meta)
        return False


def min_input_size(layers: nn.Module, ndim: int, limit: int = 4096) -> tuple[int, ...]:
    """The smallest input length along each of ``ndim`` spatial axes that ``layers`` accept."""
    out = []
    for axis in range(ndim):
        n = 1
        while n < limit:
            sizes = tuple(n if i == axis else limit for i in range(ndim))
            if _walk(layers, 2, sizes, False)[0] is None:
                break
            n += 1
        out.append(n)
    return tuple(out)


def check_encoder_input(x: Tensor, pattern: Sequence[int | str], who: str, *, module: nn.Module | None = None,
                        layers: nn.Module | None = None) -> None:
    """Refuse an input ``x`` the encoder cannot take, with a message that names the fix.

    Args:
        x: the input batch.
        pattern: the expected shape; ints must match, names are free (``("B", 3, "H", "W")``).
        who: the encoder, for the message.
        module: the encoder; its first parameter gives the device and dtype the input must have (under
            autocast any float dtype but float64 is fine). The encoder remembers the input signatures (shape,
            dtype, device, mode) it has accepted, so a training loop pays for the checks once; under
            ``torch.compile`` they are skipped (compiled code guards shapes and dtypes itself).
        layers: the encoder's convolutions and pools (an ``nn.Sequential``): the input must be large enough for
            them, and big enough for batch norm in training mode (more than one value per channel).

    Raises:
        TypeError: not a tensor, or not floating point (e.g. uint8 pixels), or float64 for float32 weights.
        ValueError: wrong rank or channels, another device, too small for the layers.
    """
    if torch.compiler.is_compiling():  # torch.compile guards shapes and dtypes itself
        return
    if not isinstance(x, Tensor):
        raise TypeError(f"{who} expects a tensor, got {type(x).__name__}")
    training = module is None or module.training
    autocast = _autocast_on(x.device.type)
    key = (x.shape, x.dtype, x.device, training, autocast)
    seen = module.__dict__.setdefault("_checked_inputs", set()) if module is not None else set()
    if key in seen:  # this encoder already accepted an input of this shape, dtype and device
        return
    want = ", ".join(str(p) for p in pattern)
    if x.dim() != len(pattern) or any(isinstance(p, int) and x.shape[i] != p for i, p in enumerate(pattern)):
        raise ValueError(f"{who} expects [{want}], got {list(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{who} expects a float tensor: " + conversion_hint("the input", x))
    p = next(module.parameters(), None) if module is not None else None
    if p is not None:
        if x.device != p.device:
            raise ValueError(f"{who}: the input is on {x.device} but the encoder's weights are on {p.device}; "
                             f"move one of them (x.to({str(p.device)!r}) or model.to(device))")
        if x.dtype != p.dtype and (not autocast or x.dtype == torch.float64):  # autocast never casts float64
            raise TypeError(f"{who}: the input is {x.dtype} but the weights are {p.dtype}; convert with "
                            f"x.to({p.dtype})" + ("" if autocast else " (or run under autocast)"))
    if layers is not None:
        _check_size(x, pattern, who, layers, training)
    if len(seen) > 64:  # inputs of many sizes (e.g. a sweep): forget the old ones
        seen.clear()
    seen.add(key)


def _check_size(x: Tensor, pattern: Sequence[int | str], who: str, layers: nn.Module, training: bool) -> None:
    spatial = tuple(int(n) for n in x.shape[2:])
    problem, _ = _walk(layers, int(x.shape[0]), spatial, training)
    if problem == "too small":
        least = min_input_size(layers, len(spatial))
        names = [str(p) for p in pattern[2:]]
        raise ValueError(f"{who} needs inputs of at least {' x '.join(map(str, least))} "
                         f"({' x '.join(names)}; its convolutions and pools shrink the input), got "
                         f"{list(x.shape)}")
    if problem == "batchnorm":
        raise ValueError(f"{who}: batch norm in training mode needs more than one value per channel, but a batch "
                         f"of {x.shape[0]} input(s) {list(x.shape[1:])} leaves one; use at least 2 samples or "
                         "larger inputs, or call model.eval()")
