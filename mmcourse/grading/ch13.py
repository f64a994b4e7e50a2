"""Hidden tests of chapter 13's exercises (``solutions/13_full_system.ipynb``): FLOPs of a training step, MFU,
and the per-rank shard of data-parallel training."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from mmcourse.engine.batches import BatchSource
from mmcourse.engine.flops import train_step_flops
from mmcourse.grading.registry import register
from mmcourse.models import Batch


@register("13.count_flops", points=2, hint="a Linear layer's forward costs 2·B·in·out FLOPs; the backward costs "
          "twice that (gradients of weights and of inputs), except the first layer: its input needs no gradient",
          timeout=60)
def _count_flops(fn: Any) -> None:
    for batch, sizes in [(4, [5, 7, 3]), (1, [10, 2]), (32, [64, 128, 128, 10]), (8, [3, 3, 3, 3, 3])]:
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        model = nn.Sequential(*layers[:-1])
        want = train_step_flops(model, torch.randn(batch, sizes[0]), lambda out: out.sum())
        got = fn(batch, sizes)
        assert isinstance(got, int), f"mlp_step_flops should return an int, got {type(got).__name__}"
        assert got == want, (f"mlp_step_flops({batch}, {sizes}) returned {got}; torch's FlopCounterMode counts "
                             f"{want} for forward + backward")


@register("13.mfu", points=1, hint="achieved FLOP/s = FLOPs per step / seconds per step; divide by the peak "
          "FLOP/s (TFLOP/s × 1e12); None when there is no peak", timeout=10)
def _mfu(fn: Any) -> None:
    cases = [(1e12, 0.01, 989.0, 1e14 / 989e12), (6e9, 0.5, 1.0, 1.2e10 / 1e12), (3.3e13, 0.1, 312.0, 3.3e14 / 312e12)]
    for flops, secs, peak, want in cases:
        got = fn(flops, secs, peak)
        assert isinstance(got, float) and math.isclose(got, want, rel_tol=1e-9), (
            f"mfu(flops_per_step={flops:g}, step_seconds={secs}, peak_tflops={peak}) returned {got!r}, expected "
            f"{want:.6f}")
    assert fn(1e12, 0.1, None) is None, "with peak_tflops=None (a CPU: no spec-sheet peak) return None"
    for bad in ((1e12, 0.0, 989.0), (1e12, -1.0, 989.0)):
        try:
            fn(*bad)
        except ValueError:
            continue
        raise AssertionError(f"mfu{bad} should raise ValueError: a step takes a positive time")


def _engine_shard(n: int, batch_size: int, rank: int, world: int) -> list[int]:
    idx = torch.arange(n)
    src = BatchSource(Batch({"x": idx}, {"y": idx}), torch.device("cpu"), rank=rank, world=world)
    return [i for b, _ in src.epoch(batch_size) for i in b.inputs["x"].tolist()]


@register("13.shard_indices", points=2, hint="walk over the global batches (start = 0, B, 2B, …); each rank takes "
          "the slice [start + rank·size//world, start + (rank+1)·size//world) of a batch of size `size`; skip a "
          "last batch smaller than world", timeout=20)
def _shard(fn: Any) -> None:
    for n, bs, world in [(10, 4, 2), (23, 8, 3), (7, 7, 1), (9, 4, 4), (100, 32, 8), (5, 2, 3)]:
        ranks = []
        for rank in range(world):
            got = fn(n, bs, rank, world)
            got = got.tolist() if isinstance(got, torch.Tensor) else list(got)
            want = _engine_shard(n, bs, rank, world)
            assert got == want, (f"shard_indices(n={n}, batch_size={bs}, rank={rank}, world={world}) returned "
                                 f"{got[:12]}{'…' if len(got) > 12 else ''}; the engine gives rank {rank} "
                                 f"{want[:12]}{'…' if len(want) > 12 else ''}")
            ranks.append(set(got))
        union = set().union(*ranks)
        assert sum(map(len, ranks)) == len(union), f"ranks overlap for n={n}, batch_size={bs}, world={world}"
