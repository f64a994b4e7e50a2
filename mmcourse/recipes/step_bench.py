"""What the benchmarks time besides the ladder: the world model the ladder trains, the training step of the
course's ResNet-18 on 32×32 inputs (throughput, FLOPs and MFU), and the GPU's measured matmul ceiling.

Chapter 13 quotes them; ``mmcourse bench`` and ``make gpu-check`` (``mmcourse.gpu_check``) run them.
"""

from __future__ import annotations

import statistics

import torch
from torch import nn

from mmcourse.engine.bench import Timer
from mmcourse.engine.flops import mfu, peak_flops, train_step_flops
from mmcourse.engine.minimal import plain_step
from mmcourse.engine.speed import autocast_context, maybe_compile, model_to_channels_last


def world_model(splits, width: int, dim: int = 128) -> nn.Module:
    """The ladder's model: an encoder per modality the splits have (a 2-layer Transformer for text), concatenation
    fusion and one linear head per task, built by :func:`mmcourse.models.build_model`."""
    from mmcourse.models import ModelSpec, build_model

    spec = ModelSpec.for_data(splits.train, dim=dim, width=width, video_width=max(width // 2, 4),
                              text_encoder="transformer", text_depth=2, text_heads=4)
    return build_model(spec)


def image_encoder_mfu(device: torch.device, *, batch: int, steps: int = 20, warmup: int = 5, repeats: int = 3,
                      width: int = 64, compile: bool | str = True, amp: torch.dtype | None | str = "auto",
                      channels_last: bool | None = None) -> dict[str, object]:
    """Training-step throughput and MFU of ResNet-18 (32×32 inputs) on random data.

    Defaults: on a GPU bf16 autocast, channels_last and ``compile``; elsewhere fp32 eager (``amp="auto"``,
    ``channels_last=None``); ``compile`` is honoured on any device when a backend name is given.
    """
    from mmcourse.encoders.resnet import resnet18_cifar

    gpu = device.type == "cuda"
    dtype = (torch.bfloat16 if gpu else None) if amp == "auto" else amp
    cl = gpu if channels_last is None else channels_last
    comp = compile if (gpu or isinstance(compile, str)) else False
    torch.manual_seed(0)
    model = nn.Sequential(resnet18_cifar(width=width), nn.LazyLinear(10)).to(device)
    x = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    model(x[:2])  # materialise the lazy head
    flops = train_step_flops(model, x, lambda out: nn.functional.cross_entropy(out, y))
    if cl:
        model_to_channels_last(model)
        x = x.contiguous(memory_format=torch.channels_last)
    net = maybe_compile(model, comp)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, **({"fused": True} if gpu else {}))

    def step() -> None:
        with autocast_context(device, dtype):
            loss = nn.functional.cross_entropy(net(x), y)
        plain_step(opt, loss)

    rates = []
    for _ in range(repeats):
        for _ in range(warmup):
            step()
        timer = Timer(device)
        timer.start()
        for _ in range(steps):
            step()
        timer.stop()
        rates.append(steps / timer.seconds()[0])
    peak, name = peak_flops(device)
    mean = statistics.fmean(rates)
    return {"device": name, "batch": batch, "width": width, "steps_per_s": rates, "samples_per_s": mean * batch,
            "gflop_per_step": flops / 1e9, "tflops": flops * mean / 1e12, "mfu": mfu(flops, mean, peak),
            "peak_tflops": None if peak is None else peak / 1e12, "dtype": str(dtype or torch.float32)[6:],
            "bf16": dtype == torch.bfloat16,
            "channels_last": cl, "compiled": bool(comp), "steps": steps, "warmup": warmup, "repeats": repeats}


def resnet18_flops_per_sample(width: int = 64) -> float:
    """Training FLOPs per 32×32 sample of the ResNet-18 above (counted on the CPU at batch 4; linear in batch)."""
    from mmcourse.encoders.resnet import resnet18_cifar

    model = nn.Sequential(resnet18_cifar(width=width), nn.LazyLinear(10))
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    model(x[:2])
    return train_step_flops(model, x, lambda out: nn.functional.cross_entropy(out, y)) / 4


def matmul_tflops(device: torch.device, *, n: int = 8192, dtype: torch.dtype = torch.bfloat16, reps: int = 10,
                  warmup: int = 3) -> dict[str, object]:
    """The measured ceiling: an ``n×n×n`` matrix product on random data (never zeros: they run faster),
    ``2·n³`` FLOPs each, timed with :class:`Timer` after ``warmup`` products."""
    g = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=dtype, generator=g)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=g)
    for _ in range(warmup):
        a @ b
    timer = Timer(device)
    timer.start()
    for _ in range(reps):
        a @ b
    timer.stop()
    secs = timer.seconds()[0]
    return {"n": n, "dtype": str(dtype).removeprefix("torch."), "reps": reps, "seconds": secs,
            "tflops": 2 * n**3 * reps / secs / 1e12}
