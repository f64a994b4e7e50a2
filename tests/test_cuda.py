"""The engine's GPU claims (chapter 13, design "Scale"): no host sync inside the training step, bf16 autocast,
fp16 with a GradScaler, channels_last, torch.compile, the GPU-resident batch iterator, DDP with NCCL.

Marked ``cuda``: ``pytest -m cuda`` (and ``make gpu-check``) runs them on a GPU; without one they are skipped.
``MMCOURSE_GPU_CHECK_DRY=1`` (the dry run of ``make gpu-check``) runs them on the CPU at toy sizes instead, with
CPU stand-ins where CUDA has something the CPU lacks (a dispatch-level detector of scalar reads instead of
``torch.cuda.set_sync_debug_mode``, gloo instead of NCCL, the ``eager`` compile backend); fp16 is GPU-only.
"""

from __future__ import annotations

import os
import socket
import sys

import pytest
import torch
import torch.distributed as td
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from mmcourse.engine import evaluate, fit
from mmcourse.engine.batches import BatchSource
from mmcourse.engine.machine import half_precision
from mmcourse.engine.speed import resolve_amp

CUDA = torch.cuda.is_available()
DRY = os.environ.get("MMCOURSE_GPU_CHECK_DRY") == "1"
pytestmark = [pytest.mark.cuda, pytest.mark.skipif(
    not (CUDA or DRY), reason="needs a CUDA GPU: run `pytest -m cuda` or `make gpu-check` on a GPU machine "
    "(MMCOURSE_GPU_CHECK_DRY=1 runs these on the CPU at toy sizes)")]
DEVICE = torch.device("cuda" if CUDA else "cpu")
BACKEND = "inductor" if CUDA else "eager"
N_TRAIN, N_VAL, BATCH = (2048, 512, 128) if CUDA else (128, 64, 32)


@pytest.fixture(scope="module")
def splits():
    from mmcourse.data.world import world_splits

    return world_splits(N_TRAIN, N_VAL, 8, seed=0, modalities=("image", "text"), device=DEVICE)


def learned(hist, before: float) -> bool:
    """On a GPU: validation accuracy rose by 5 points; at the dry run's toy sizes: the training loss fell."""
    if CUDA:
        return hist.last["val_acc"] > before + 0.05
    return hist["train_loss"][-1] < hist["train_loss"][0]


def make_model(splits, seed: int = 0) -> nn.Module:
    from mmcourse.recipes.step_bench import world_model

    torch.manual_seed(seed)
    return world_model(splits, width=8, dim=32)


class _ScalarReads(TorchDispatchMode):
    """CPU stand-in for CUDA's sync debug mode: raise on every op that reads a tensor's value into Python or
    has a data-dependent shape (``.item()``, ``bool(t)``, ``nonzero``, boolean masks), outside ``torch.optim``
    (its CPU step counters are host numbers; on a GPU the fused optimiser keeps them on the device)."""

    OPS = ("aten._local_scalar_dense", "aten.nonzero", "aten.masked_select", "aten.unique")
    CPU_ONLY = ("check_token_ids",)  # input validation that runs on CPU tensors only (skipped on a GPU)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func.overloadpacket) if hasattr(func, "overloadpacket") else str(func)
        if name.startswith(self.OPS):
            frame, where = sys._getframe(1), []
            while frame is not None:
                path = frame.f_code.co_filename.replace("\\", "/")
                if "/torch/optim/" in path or frame.f_code.co_name in self.CPU_ONLY:
                    break
                if "/mmcourse/" in path:
                    where.append(f"{path.split('/mmcourse/')[-1]}:{frame.f_lineno}")
                frame = frame.f_back
            else:
                raise RuntimeError(f"host sync inside the training step: {name} at {where or 'unknown'}")
        return func(*args, **(kwargs or {}))


class NoSyncInSteps:
    """A ``fit`` callback: every training step from epoch ``first_epoch`` on (after warm-up and compilation)
    runs with host synchronisation turned into an error; the epoch's one read after its last step is allowed."""

    def __init__(self, steps_per_epoch: int, first_epoch: int = 2):
        self.steps_per_epoch, self.first_epoch = steps_per_epoch, first_epoch
        self.guarded_steps, self._mode = 0, None

    def _enter(self) -> None:
        if CUDA:
            torch.cuda.set_sync_debug_mode("error")
            self._mode = True
        else:
            self._mode = _ScalarReads()
            self._mode.__enter__()

    def close(self) -> None:
        if CUDA and self._mode:
            torch.cuda.set_sync_debug_mode("default")
        elif self._mode is not None:
            self._mode.__exit__(None, None, None)
        self._mode = None

    def on_epoch_begin(self, state) -> None:
        if state.epoch >= self.first_epoch:
            self._enter()

    def on_step_end(self, state) -> None:
        if self._mode is not None:
            self.guarded_steps += 1
            if state.step % self.steps_per_epoch == 0:
                self.close()


def test_bf16_autocast_runs_matmuls_in_bf16_and_learns(splits):
    if CUDA and half_precision(DEVICE) != "bf16":
        pytest.skip("this GPU has no native bf16")
    model = make_model(splits)
    before = evaluate(model, splits.val, device=DEVICE)["acc"]
    seen: list[torch.dtype] = []
    head = next(iter(model.heads.values()))
    handle = head.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    hist = fit(model, splits.train, splits.val, epochs=3, batch_size=BATCH, lr=3e-3, amp="bf16", device=DEVICE,
               progress=False)
    handle.remove()
    assert seen and seen[0] == torch.bfloat16, f"the head's output was {seen[:1]}, not bfloat16, under autocast"
    assert learned(hist, before), f"bf16 training did not learn: {before:.3f} → {hist.rows}"


@pytest.mark.skipif(not CUDA, reason="fp16 autocast with loss scaling needs a GPU")
def test_fp16_uses_a_grad_scaler_and_learns(splits):
    assert resolve_amp("fp16", DEVICE) == (torch.float16, True)
    model = make_model(splits)
    before = evaluate(model, splits.val, device=DEVICE)["acc"]
    hist = fit(model, splits.train, splits.val, epochs=3, batch_size=BATCH, lr=3e-3, amp="fp16", device=DEVICE,
               progress=False)
    assert all(torch.isfinite(p).all() for p in model.parameters()), "fp16 training produced inf/NaN weights"
    assert learned(hist, before), f"fp16 training did not learn: {before:.3f} → {hist.rows}"


def test_channels_last_stores_conv_weights_and_images_nhwc_and_learns(splits):
    model = make_model(splits)
    hist = fit(model, splits.train, splits.val, epochs=2, batch_size=BATCH, lr=3e-3, channels_last=True,
               device=DEVICE, progress=False)
    convs = [p for p in model.parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    src = BatchSource(splits.train, DEVICE, channels_last=True)
    assert src.inputs["image"].is_contiguous(memory_format=torch.channels_last)
    batch, _ = next(iter(src.epoch(BATCH, shuffle=True, seed=0)))
    assert batch.inputs["image"].is_contiguous(memory_format=torch.channels_last), "a shuffled batch lost NHWC"
    assert hist["train_loss"][-1] < hist["train_loss"][0]


def test_gpu_resident_batch_iterator(splits):
    src = BatchSource(splits.train, DEVICE)
    assert all(v.device.type == DEVICE.type for v in src.inputs.values())
    batch, n = next(iter(src.epoch(BATCH)))
    for k, v in batch.inputs.items():  # in order: views of the resident tensors, no copy
        assert v.device.type == DEVICE.type and v.untyped_storage().data_ptr() == \
            src.inputs[k].untyped_storage().data_ptr(), f"{k}: the batch is a copy, not a view"
    guard = NoSyncInSteps(1, first_epoch=0)
    guard._enter()
    try:
        shuffled = [b for b, _ in src.epoch(BATCH, shuffle=True, seed=1)]
    finally:
        guard.close()
    assert n == BATCH and sum(len(b) for b in shuffled) == len(splits.train)
    assert all(b.inputs["image"].device.type == DEVICE.type for b in shuffled)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_in_a_one_process_group_matches_plain_gradients(splits):
    backend = "nccl" if CUDA else "gloo"
    if not td.is_available() or (CUDA and not td.is_nccl_available()):
        pytest.fail(f"torch.distributed with {backend} is not available in this build of torch")
    td.init_process_group(backend, init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1)
    try:
        model, twin = make_model(splits).to(DEVICE), make_model(splits).to(DEVICE)
        ddp = nn.parallel.DistributedDataParallel(model, device_ids=[DEVICE.index or 0] if CUDA else None)
        batch, _ = next(iter(BatchSource(splits.train, DEVICE).epoch(BATCH)))
        for net in (ddp, twin):
            out = net(batch.inputs, batch.present)
            sum(nn.functional.cross_entropy(out[t], batch.targets[t]) for t in out).backward()
        for (name, p), q in zip(model.named_parameters(), twin.parameters()):
            torch.testing.assert_close(p.grad, q.grad, msg=lambda m, name=name: f"{name}: {m}")
        hist = fit(make_model(splits), splits.train, epochs=1, batch_size=BATCH, device=DEVICE, progress=False)
        assert len(hist) == 1 and hist.last["train_loss"] > 0  # fit runs inside the joined group
    finally:
        td.destroy_process_group()


# The compiling tests come last: if the run's budget stops pytest, the cheap results are already in.
@pytest.mark.parametrize("variant", ["bf16", "fp16", "compile"])
def test_no_host_sync_inside_the_training_step(splits, variant):
    if variant == "fp16" and not CUDA:
        pytest.skip("fp16 autocast with loss scaling needs a GPU")
    if variant != "fp16" and CUDA and half_precision(DEVICE) != "bf16":
        pytest.skip("this GPU has no native bf16 (the fp16 variant covers it)")
    kw = {"bf16": dict(amp="bf16"), "fp16": dict(amp="fp16"), "compile": dict(amp="bf16", compile=BACKEND)}[variant]
    guard = NoSyncInSteps(len(splits.train) // BATCH)
    try:
        fit(make_model(splits), splits.train, epochs=2, batch_size=BATCH, lr=2e-3, device=DEVICE, progress=False,
            channels_last=CUDA, callbacks=[guard], **kw)
    finally:
        guard.close()
    assert guard.guarded_steps == len(splits.train) // BATCH, "the guard did not cover every step of epoch 2"


def test_compile_trains_like_eager(splits):
    kw = dict(epochs=2, batch_size=BATCH, lr=2e-3, amp="off", channels_last=False, device=DEVICE, progress=False)
    eager = fit(make_model(splits), splits.train, **kw)
    compiled = fit(make_model(splits), splits.train, compile=BACKEND, **kw)
    # same seed, same data order; compile drops the last partial batch, so compare the losses loosely
    for a, b in zip(eager["train_loss"], compiled["train_loss"]):
        assert b == pytest.approx(a, rel=0.05), f"compiled loss {b:.4f} vs eager {a:.4f}"
