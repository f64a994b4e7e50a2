"""Counting work and comparing it with the hardware: FLOPs per training step and model FLOP utilisation.

Chapter 13 counts a step's FLOPs (``torch.utils.flop_counter`` for convolutions, matmuls and attention; an
analytic count for recurrent layers, which the counter does not see inside cuDNN kernels) and divides the
achieved FLOP/s by the GPU's dense bf16 peak from its spec sheet. ``MMCOURSE_PEAK_TFLOPS`` sets the peak for a
GPU the table does not know.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

# dense (no sparsity) tensor-core peaks in TFLOP/s from the vendors' spec sheets: bf16, or fp16 where the GPU
# has no bf16 (T4, V100). Matched against torch.cuda.get_device_name() in this order. The H200 SXM ('NVIDIA
# H200') has the H100 SXM's arithmetic (989 dense bf16) with more, faster memory; the NVL parts are slower.
# A measured 8192³ bf16 matmul reaches about 790 on an H200 (see ``matmul_tflops``): MFU is against the sheet.
PEAK_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H200 NVL", 835.0), ("H200", 989.0), ("H100 NVL", 835.0), ("H100 PCIe", 756.0), ("H100", 989.0),
    ("A100", 312.0), ("L40S", 362.0), ("L4", 121.0), ("A10G", 70.0), ("T4", 65.0), ("V100", 125.0),
)


def peak_for_name(name: str) -> float | None:
    """Dense bf16 peak in FLOP/s for a GPU name: ``MMCOURSE_PEAK_TFLOPS`` if set, else the table, else None."""
    override = os.environ.get("MMCOURSE_PEAK_TFLOPS", "").strip()
    if override:
        try:
            return float(override) * 1e12
        except ValueError:
            raise ValueError(f"MMCOURSE_PEAK_TFLOPS={override!r} is not a number of TFLOP/s, e.g. 989") from None
    for key, tflops in PEAK_TFLOPS:
        if key in name:
            return tflops * 1e12
    return None


def peak_flops(device: torch.device | str) -> tuple[float | None, str]:
    """``(dense bf16 peak in FLOP/s or None, device name)``; None for CPUs and GPUs not in the table."""
    device = torch.device(device)
    if device.type != "cuda":
        return None, "cpu"
    name = torch.cuda.get_device_name(device)
    return peak_for_name(name), name


def recurrent_flops(model: nn.Module, inputs: object, forward: Callable[[], object]) -> int:
    """Analytic forward FLOPs of every ``nn.RNN``/``nn.GRU``/``nn.LSTM`` in ``model`` for one call of ``forward``.

    Per time step and direction a layer does ``gates × (2·in·h + 2·h·h)`` multiply-adds counted as 2 FLOPs
    each (gates: RNN 1, GRU 3, LSTM 4); element-wise gate maths is ignored (it is small).
    """
    total = 0
    gates = {nn.RNN: 1, nn.GRU: 3, nn.LSTM: 4}

    def hook(mod: nn.Module, args: tuple, _out: object) -> None:
        nonlocal total
        x = args[0]
        if hasattr(x, "data") and not isinstance(x, Tensor):  # PackedSequence: data is [sum(lengths), in]
            steps_times_batch = x.data.shape[0]
        else:
            steps_times_batch = x.shape[0] * x.shape[1]
        g = next(v for k, v in gates.items() if isinstance(mod, k))
        dirs = 2 if mod.bidirectional else 1
        for layer in range(mod.num_layers):
            d_in = mod.input_size if layer == 0 else mod.hidden_size * dirs
            total += dirs * steps_times_batch * g * (2 * d_in * mod.hidden_size + 2 * mod.hidden_size ** 2)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.RNN, nn.GRU, nn.LSTM))]
    try:
        forward()
    finally:
        for h in handles:
            h.remove()
    return total


def train_step_flops(model: nn.Module, inputs: object, loss_fn: Callable[[object], Tensor]) -> int:
    """FLOPs of one training step (forward + backward; the optimiser's element-wise update is not counted).

    Matmuls, convolutions and attention are counted by ``FlopCounterMode``; recurrent layers analytically
    (forward × 3 for forward + backward).
    """
    was = model.training
    model.train()
    counter = FlopCounterMode(display=False)
    try:
        with counter:
            loss = loss_fn(model(inputs))
            loss.backward()
        with torch.no_grad():
            rnn = recurrent_flops(model, inputs, lambda: model(inputs))
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was)
    return int(counter.get_total_flops()) + 3 * rnn


def mfu(flops_per_step: float, steps_per_s: float, peak: float | None) -> float | None:
    """Model FLOP utilisation: achieved FLOP/s over the peak (None without a peak)."""
    if peak is None or peak <= 0:
        return None
    return flops_per_step * steps_per_s / peak
