"""Hidden tests of chapter 13's exercises (``solutions/13_full_system.ipynb``): FLOPs of a training step, MFU,
the per-rank shard of data-parallel training, gradient accumulation (find the bug) and what a checkpoint must
hold for a bit-identical resume (experiment)."""

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


# --- 13.accumulate_gradients: gradient accumulation that adds up the micro-batch losses (find the bug) -------

# (micro-batch sizes): equal sizes, then a smaller last micro-batch, then one micro-batch (no accumulation)
ACCUM_CASES = ((8, 8, 8, 8), (16, 16, 5), (12,), (3, 9))


def _accum_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 4)).double()


def _micro_batches(sizes: tuple[int, ...], seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(n, 6, generator=g, dtype=torch.double), torch.randint(0, 4, (n,), generator=g))
            for n in sizes]


def probe_accumulate(fn, sizes: tuple[int, ...], seed: int, lr: float) -> dict:
    """Run the learner's step with plain SGD (so a gradient's size shows in the step) on a model whose gradients
    hold stale values from an earlier backward; report the parameters after, the optimiser steps taken and the
    largest number of samples the model was run on at once."""
    model = _accum_model(seed)
    for p in model.parameters():  # left over from the previous step (nobody called zero_grad since)
        p.grad = torch.full_like(p, 0.5)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    steps, rows = [], []
    opt.register_step_post_hook(lambda *_: steps.append(1))
    model[0].register_forward_pre_hook(lambda _m, args: rows.append(int(args[0].shape[0])))
    fn(model, opt, _micro_batches(sizes, seed))
    return {"params": [p.detach().clone() for p in model.parameters()], "steps": len(steps),
            "largest": max(rows, default=0)}


def _accum_reference(sizes: tuple[int, ...], seed: int, lr: float, scale: str = "mean") -> list[torch.Tensor]:
    """The parameters after one SGD step on all micro-batches at once (``scale`` gives the wrong variants)."""
    model = _accum_model(seed)
    mbs = _micro_batches(sizes, seed)
    if scale == "mean":
        x, y = torch.cat([b[0] for b in mbs]), torch.cat([b[1] for b in mbs])
        loss = nn.functional.cross_entropy(model(x), y)
    else:  # "sum": the micro-batch means added up
        loss = sum(nn.functional.cross_entropy(model(xb), yb) for xb, yb in mbs)
    loss.backward()
    with torch.no_grad():
        return [p - lr * p.grad for p in model.parameters()]


def _close(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(x.shape == y.shape and torch.allclose(x, y, atol=1e-10) for x, y in zip(a, b))


@register("13.accumulate_gradients", points=2, timeout=30, kind="find-the-bug",
          hint="zero the gradients once, then for each micro-batch backward(loss_i * n_i / N) with N the samples of "
               "all micro-batches; one optimizer.step() at the end")
def _accumulate_gradients(fn):
    lr = 0.5
    for k, sizes in enumerate(ACCUM_CASES):
        seen = fn.probe(probe_accumulate, sizes, k, lr)
        what = f"accumulated_step with micro-batches of sizes {list(sizes)}"
        assert seen["steps"] == 1, (f"{what} took {seen['steps']} optimiser steps; accumulation takes exactly one, "
                                    "after the last micro-batch")
        assert seen["largest"] <= max(sizes), (
            f"{what} ran the model on {seen['largest']} samples at once; accumulation exists because the whole "
            "batch does not fit in memory: run the model on one micro-batch at a time")
        got, want = seen["params"], _accum_reference(sizes, k, lr)
        if _close(got, want):
            continue
        if len(sizes) > 1 and _close(got, _accum_reference(sizes, k, lr, "sum")):
            raise AssertionError(f"{what}: the step is {len(sizes)} times too large — backward() adds the gradients "
                                 "of the micro-batch means, so scale each loss by its share of the samples")
        if _close(got, [w - lr * 0.5 for w in want]):  # the stale gradient (0.5 everywhere) was stepped too
            raise AssertionError(f"{what}: the step includes gradients left over from before the call — zero the "
                                 "gradients once, before the first micro-batch")
        equal = len(set(sizes)) == 1
        raise AssertionError(f"{what}: the step differs from one step on all {sum(sizes)} samples at once"
                             + ("" if equal else " — with micro-batches of unequal sizes, dividing each loss by "
                                "the number of micro-batches is not enough: weigh it by its number of samples")
                             + " (and keep every micro-batch's gradient: zero the gradients only before the first)")


# --- 13.resume_state: what a checkpoint must hold for a bit-identical resume (experiment) -------------------

RESUME_PIECES = ("weights", "optimizer", "rng", "grads")
RESUME_ANSWER = {"weights", "optimizer", "rng"}
RESUME_WHY = {"weights": "the restarted script's weights are its fresh initialisation",
              "optimizer": "Adam's step count and moment estimates steer every later step",
              "rng": "the random state draws the next epoch's shuffle and dropout masks (a script seeded at its "
                     "start replays the first epoch's)"}


@register("13.resume_state", points=2, timeout=10, kind="experiment",
          hint="a piece is needed when leaving it out of the restore changes the resumed run; the table shows "
               "the largest weight difference from the uninterrupted run for each restore")
def _resume_state(fn):
    got = fn()
    assert type(got) in (list, tuple), f"resume_needs() should return a list of names, got {type(got).__name__}"
    assert all(type(p) is str for p in got), f"resume_needs() should return a list of strings, got {got!r}"
    got = set(got)
    unknown = sorted(got - set(RESUME_PIECES))
    assert not unknown, f"unknown pieces {unknown}: choose from {list(RESUME_PIECES)}"
    missing = sorted(RESUME_ANSWER - got)
    assert not missing, (f"the run did not resume bit-identically without {missing}: "
                         + "; ".join(RESUME_WHY[m] for m in missing))
    extra = sorted(got - RESUME_ANSWER)
    assert not extra, (f"{extra}: the run resumed bit-identically without them — every step starts with "
                       "zero_grad(), so the gradients of the last step are never used again")
