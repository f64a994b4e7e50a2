"""Data-parallel training with torch.distributed: detect a ``torchrun`` launch, pick the rank's device, wrap
the model in DDP and all-reduce metric sums.

Chapter 13: ``torchrun --nproc_per_node 8 train.py`` runs the same ``fit`` on 8 GPUs (NCCL); on a CPU the gloo
backend runs it with processes, which is how the tests check it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as td
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``rank`` of ``world`` processes (``world == 1``: not distributed)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def current() -> DistInfo:
    """The running process group, if any (else a single process)."""
    if td.is_available() and td.is_initialized():
        return DistInfo(td.get_rank(), td.get_world_size(), int(os.environ.get("LOCAL_RANK", td.get_rank())))
    return DistInfo()


def setup(device: torch.device | str | None) -> tuple[DistInfo, torch.device | None]:
    """Join the process group ``torchrun`` describes in ``RANK``/``WORLD_SIZE`` (once per process).

    Returns the rank's info and its device (``cuda:LOCAL_RANK`` with CUDA, else the requested one or CPU);
    the device is None when the process is not distributed.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    joined = td.is_available() and td.is_initialized()
    if world <= 1 and not joined:
        return DistInfo(), None
    local_rank = int(os.environ.get("LOCAL_RANK", os.environ.get("RANK", "0")))
    want_cuda = torch.cuda.is_available() and (device is None or torch.device(device).type == "cuda")
    if want_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if not joined:
        td.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return current(), dev


def wrap(model: nn.Module, info: DistInfo, device: torch.device, find_unused: bool = True) -> nn.Module:
    """DDP-wrap ``model`` when distributed (it broadcasts rank 0's weights so every rank starts equal).

    ``find_unused``: some parameters may get no gradient (a head whose task has no targets, an encoder whose
    modality is absent); DDP must then look for them every step.
    """
    if info.world <= 1:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=find_unused)


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum ``t`` over all ranks, in place."""
    if td.is_available() and td.is_initialized() and td.get_world_size() > 1:
        td.all_reduce(t, op=td.ReduceOp.SUM)
    return t


def gather_objects(obj: object, info: DistInfo) -> list:
    """Every rank's ``obj`` (a list of length ``world``); ``[obj]`` when not distributed."""
    if info.world <= 1:
        return [obj]
    out: list = [None] * info.world
    td.all_gather_object(out, obj)
    return out


def barrier(info: DistInfo) -> None:
    if info.world > 1:
        td.barrier()


def cleanup() -> None:
    """Leave the process group (call at the end of a torchrun script)."""
    if td.is_available() and td.is_initialized():
        td.destroy_process_group()
