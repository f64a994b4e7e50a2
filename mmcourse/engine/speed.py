"""The engine's speed switches: mixed precision, channels_last memory format and torch.compile.

Chapter 13 turns them on one at a time and measures each. All of them are no-ops or safe on a CPU.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from mmcourse.runtime import amp_dtype as default_amp_dtype

AMP_CHOICES = ("auto", "bf16", "fp16", "off")


def resolve_amp(amp: str | bool | None, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """Return ``(autocast dtype or None, use a GradScaler)`` for ``amp`` in auto|bf16|fp16|off (or a bool).

    ``auto`` means bf16 on GPUs that have it, fp16 (with loss scaling) on older GPUs such as Colab's T4, and
    fp32 on CPU/MPS. ``fp16`` always comes with a GradScaler: fp16 gradients underflow without loss scaling
    (on a CPU, autocast runs fp16 kernels and ``torch.amp.GradScaler("cpu")`` scales; the tests use it).
    """
    if amp is None or amp is False:
        amp = "off"
    if amp is True:
        amp = "auto"
    if amp not in AMP_CHOICES:
        raise ValueError(f"amp={amp!r}; use one of {AMP_CHOICES}")
    if amp == "off":
        return None, False
    if amp == "auto":
        dtype = default_amp_dtype(device)
        return dtype, dtype == torch.float16
    if amp == "fp16":
        return torch.float16, True
    return torch.bfloat16, False


def autocast_context(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``dtype`` on ``device``, or a null context when ``dtype`` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def resolve_channels_last(flag: bool | str, device: torch.device) -> bool:
    """``auto`` turns channels_last on for CUDA only (where cuDNN's NHWC kernels make convolutions faster)."""
    if flag == "auto":
        return device.type == "cuda"
    if not isinstance(flag, bool):
        raise ValueError(f"channels_last={flag!r}; use True, False or 'auto'")
    return flag


def model_to_channels_last(model: nn.Module) -> nn.Module:
    """Store 4-D conv weights as channels_last and 5-D ones as channels_last_3d (in place)."""
    for p in model.parameters():
        if p.dim() == 4:
            p.data = p.data.contiguous(memory_format=torch.channels_last)
        elif p.dim() == 5:
            p.data = p.data.contiguous(memory_format=torch.channels_last_3d)
    return model


def to_channels_last_inputs(inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Float image-like inputs ``[B,C,H,W]`` → channels_last, video ``[B,C,T,H,W]`` → channels_last_3d."""
    out = {}
    for k, x in inputs.items():
        if x.is_floating_point() and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        elif x.is_floating_point() and x.dim() == 5:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        out[k] = x
    return out


def maybe_compile(model: nn.Module, compile: bool | str | Mapping[str, Any]) -> nn.Module:
    """``torch.compile`` the model: ``True`` (default backend), a backend name (``"aot_eager"`` for cheap CPU
    tests) or a dict of ``torch.compile`` keyword arguments. ``False`` returns the model unchanged."""
    if compile is False or compile is None:
        return model
    if compile is True:
        kwargs: dict[str, Any] = {}
    elif isinstance(compile, str):
        kwargs = {"backend": compile}
    elif isinstance(compile, Mapping):
        kwargs = dict(compile)
    else:
        raise ValueError(f"compile={compile!r}; use False, True, a backend name or a dict of torch.compile args")
    return torch.compile(model, **kwargs)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module under torch.compile and DistributedDataParallel wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model
