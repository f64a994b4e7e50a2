"""Wrong answers for chapter 13's checks (FLOPs of a training step, MFU, data-parallel shards, gradient
accumulation, what a checkpoint must hold)."""

import torch
import torch.nn.functional as F

from . import Mutant


def flops_three_times_forward(batch, sizes):
    return sum(3 * 2 * batch * a * b for a, b in zip(sizes[:-1], sizes[1:]))


def flops_with_biases(batch, sizes):
    total = 0
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        forward = 2 * batch * a * b + batch * b
        total += forward + (forward if i == 0 else 2 * forward)
    return total


def flops_float(batch, sizes):
    total = 0.0
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        total += 2.0 * batch * a * b * (2 if i == 0 else 3)
    return total


def mfu_no_tera(flops_per_step, step_seconds, peak_tflops):
    if step_seconds <= 0:
        raise ValueError("step_seconds must be > 0")
    return None if peak_tflops is None else float(flops_per_step / step_seconds / peak_tflops)


def mfu_accepts_zero_time(flops_per_step, step_seconds, peak_tflops):
    if peak_tflops is None:
        return None
    return float(flops_per_step / max(step_seconds, 1e-9) / (peak_tflops * 1e12))


def mfu_zero_without_peak(flops_per_step, step_seconds, peak_tflops):
    if step_seconds <= 0:
        raise ValueError("step_seconds must be > 0")
    return 0.0 if peak_tflops is None else float(flops_per_step / step_seconds / (peak_tflops * 1e12))


def shard_strided(n, batch_size, rank, world):
    return list(range(rank, n, world))


def shard_keeps_small_last_batch(n, batch_size, rank, world):
    out = []
    for start in range(0, n, batch_size):
        size = min(batch_size, n - start)
        out.extend(range(start + rank * size // world, start + (rank + 1) * size // world))
    return out


def shard_contiguous_chunk(n, batch_size, rank, world):
    return list(range(rank * n // world, (rank + 1) * n // world))


def accum_buggy(model, optimizer, micro_batches):  # the notebook's bug: the micro-batch means added up
    optimizer.zero_grad()
    for x, y in micro_batches:
        F.cross_entropy(model(x), y).backward()
    optimizer.step()


def accum_divide_by_count(model, optimizer, micro_batches):  # right for equal sizes only
    optimizer.zero_grad()
    for x, y in micro_batches:
        (F.cross_entropy(model(x), y) / len(micro_batches)).backward()
    optimizer.step()


def accum_no_zero_grad(model, optimizer, micro_batches):
    total = sum(len(y) for _, y in micro_batches)
    for x, y in micro_batches:
        (F.cross_entropy(model(x), y) * len(y) / total).backward()
    optimizer.step()


def accum_zero_grad_inside(model, optimizer, micro_batches):  # keeps only the last micro-batch
    total = sum(len(y) for _, y in micro_batches)
    for x, y in micro_batches:
        optimizer.zero_grad()
        (F.cross_entropy(model(x), y) * len(y) / total).backward()
    optimizer.step()


def accum_step_each(model, optimizer, micro_batches):  # a step per micro-batch: no accumulation at all
    for x, y in micro_batches:
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()


def accum_concatenated(model, optimizer, micro_batches):  # right numbers, but the whole batch in memory at once
    optimizer.zero_grad()
    x = torch.cat([x for x, _ in micro_batches])
    y = torch.cat([y for _, y in micro_batches])
    F.cross_entropy(model(x), y).backward()
    optimizer.step()


def needs_everything():
    return ["weights", "optimizer", "rng", "grads"]


def needs_weights_and_optimizer():
    return ["weights", "optimizer"]


def needs_weights():
    return ("weights",)


MUTANTS = {
    "13.count_flops": {"3× forward": Mutant(flops_three_times_forward, "flopcountermode"),
                       "counts biases": flops_with_biases, "returns a float": Mutant(flops_float, "int")},
    "13.mfu": {"no 1e12": mfu_no_tera, "no error for a zero step time": Mutant(mfu_accepts_zero_time, "valueerror"),
               "0.0 without a peak": Mutant(mfu_zero_without_peak, "none")},
    "13.shard_indices": {"strided": shard_strided, "keeps a small last batch": shard_keeps_small_last_batch,
                         "one chunk of the dataset": shard_contiguous_chunk},
    "13.accumulate_gradients": {"the bug itself": Mutant(accum_buggy, "times too large"),
                                "divided by the number of micro-batches": Mutant(accum_divide_by_count, "unequal"),
                                "no zero_grad": Mutant(accum_no_zero_grad, "left over"),
                                "zero_grad inside the loop": accum_zero_grad_inside,
                                "a step per micro-batch": Mutant(accum_step_each, "exactly one"),
                                "one batch, not accumulated": Mutant(accum_concatenated, "one micro-batch at a time")},
    "13.resume_state": {"everything": Mutant(needs_everything, "zero_grad"),
                        "no random state": Mutant(needs_weights_and_optimizer, "shuffle"),
                        "weights only": Mutant(needs_weights, "moment estimates")},
}
