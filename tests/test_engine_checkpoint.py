"""Checkpoints: exact resume on CPU, atomic writes, clear errors, and a training process killed mid-epoch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_engine_fit import ToyData, toy_model  # noqa: E402

from mmcourse.engine import (  # noqa: E402
    Callback,
    CheckpointError,
    EarlyStopping,
    fit,
    load_checkpoint,
    save_checkpoint,
)
from mmcourse.engine.checkpoint import read_checkpoint  # noqa: E402

TESTS = Path(__file__).resolve().parent


class StopAfter(Callback):
    def __init__(self, epochs: int):
        self.epochs = epochs

    def on_epoch_end(self, state, row):
        if state.epoch >= self.epochs:
            state.stop = True


def _assert_same_params(a, b):
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q), f"parameter {name} differs after resume (max diff {(p - q).abs().max():.3g})"


KW = dict(epochs=4, lr=5e-3, batch_size=48, weight_decay=0.01, warmup=0.25, clip_grad=1.0, modality_dropout=0.2,
          progress=False, seed=7)


@pytest.mark.parametrize("stop_at", [1, 3])
def test_train_save_resume_equals_straight_through(tmp_path, stop_at):
    train, val = ToyData(200), ToyData(60, 1)
    straight = toy_model(dropout=0.3)
    h_straight = fit(straight, train, val, **KW)

    path = tmp_path / "run.pt"
    first = toy_model(dropout=0.3)
    fit(first, train, val, checkpoint=path, callbacks=[StopAfter(stop_at)], **KW)
    assert read_checkpoint(path)["epoch"] == stop_at
    torch.manual_seed(123)  # disturb the global RNG: resume must restore it
    resumed = toy_model(seed=99, dropout=0.3)  # different initial weights: they come from the checkpoint
    h_resumed = fit(resumed, train, val, resume=path, **KW)
    _assert_same_params(straight, resumed)
    assert [r["train_loss"] for r in h_resumed.rows] == [r["train_loss"] for r in h_straight.rows]
    assert len(h_resumed) == 4


def test_early_stopping_state_survives_a_resume(tmp_path):
    # min_delta so large that only epoch 1 counts as an improvement: a straight run stops after 1 + patience epochs
    kw = dict(KW, epochs=8)
    stopper = lambda: EarlyStopping("val_loss", patience=3, min_delta=1e3)  # noqa: E731
    train, val = ToyData(200), ToyData(60, 1)
    straight = toy_model(dropout=0.3)
    h_straight = fit(straight, train, val, callbacks=[stopper()], **kw)
    assert len(h_straight) == 4

    path = tmp_path / "run.pt"
    fit(toy_model(dropout=0.3), train, val, checkpoint=path, callbacks=[stopper(), StopAfter(2)], **kw)
    resumed_stopper = stopper()  # a fresh object: its patience count and best weights come from the checkpoint
    resumed = toy_model(seed=99, dropout=0.3)
    h_resumed = fit(resumed, train, val, resume=path, callbacks=[resumed_stopper, StopAfter(99)], **kw)
    assert len(h_resumed) == 4, "early stopping forgot its patience count across the resume"
    assert resumed_stopper.best_epoch == 1
    _assert_same_params(straight, resumed)  # both restored the weights of epoch 1


def test_resume_warns_when_a_stateful_callback_has_no_saved_state(tmp_path):
    path = tmp_path / "run.pt"
    fit(toy_model(), ToyData(64), epochs=1, checkpoint=path, progress=False)
    with pytest.warns(UserWarning, match="holds no state for callback EarlyStopping"):
        fit(toy_model(), ToyData(64), ToyData(32, 1), epochs=1, resume=path, progress=False,
            callbacks=[EarlyStopping()])


def test_checkpoint_holds_everything_and_loads_weights_only(tmp_path):
    path = tmp_path / "c.pt"
    model = toy_model()
    fit(model, ToyData(100), epochs=2, checkpoint=path, progress=False)
    ckpt = torch.load(path, weights_only=True)
    for key in ("model", "optimizer", "scheduler", "rng", "epoch", "step", "config", "history"):
        assert key in ckpt, key
    assert ckpt["epoch"] == 2 and ckpt["step"] == 2 and ckpt["config"]["batch_size"] == 128
    assert set(ckpt["rng"][0]) >= {"python", "numpy", "torch"}
    other = toy_model(seed=5)
    load_checkpoint(path, other)
    for p, q in zip(model.parameters(), other.parameters()):
        assert torch.equal(p, q)
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"], "no temporary files are left behind"


def test_save_and_load_round_trip_with_optimizer(tmp_path):
    model = toy_model()
    opt = torch.optim.AdamW(model.parameters())
    model(ToyData(4).inputs)["shape"].sum().backward()
    opt.step()
    save_checkpoint(tmp_path / "x.pt", model, opt, epoch=3, step=10, config={"note": "hi"})
    opt2 = torch.optim.AdamW(toy_model().parameters())
    ckpt = load_checkpoint(tmp_path / "x.pt", toy_model(seed=3), opt2)
    assert ckpt["config"] == {"note": "hi"} and ckpt["step"] == 10
    assert opt2.state_dict()["state"][0]["step"] == 1


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, toy_model())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"c\.pt.*truncated"):
        load_checkpoint(path, toy_model())
    with pytest.raises(CheckpointError, match=r"c\.pt"):
        fit(toy_model(), ToyData(32), epochs=1, resume=path, progress=False)


@pytest.mark.parametrize("content", ["state_dict", "garbage", "empty", "missing"])
def test_foreign_or_missing_file_is_a_clear_error(tmp_path, content):
    path = tmp_path / "foreign.pt"
    if content == "state_dict":
        torch.save(toy_model().state_dict(), path)
        match = "not an mmcourse checkpoint"
    elif content == "garbage":
        path.write_bytes(b"this is not a checkpoint at all" * 10)
        match = "cannot be read"
    elif content == "empty":
        path.write_bytes(b"")
        match = "cannot be read"
    else:
        match = "does not exist"
    with pytest.raises(CheckpointError, match=match) as info:
        load_checkpoint(path, toy_model())
    assert "foreign.pt" in str(info.value)


def test_checkpoint_for_another_model_is_a_clear_error(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, torch.nn.Linear(3, 2))
    with pytest.raises(CheckpointError, match="does not fit MultimodalModel"):
        load_checkpoint(path, toy_model())


KILL_SCRIPT = """
import os, signal, sys
sys.path.insert(0, {tests!r})
from test_engine_fit import ToyData, toy_model
from mmcourse.engine import Callback, fit

class KillMidEpoch(Callback):
    def on_step_end(self, state):
        if state.epoch == {kill_epoch} and state.step == {kill_step}:
            os.kill(os.getpid(), signal.SIGKILL)

resume = sys.argv[2] if len(sys.argv) > 2 else None
fit(toy_model(), ToyData(200), epochs=4, batch_size=40, checkpoint=sys.argv[1], resume=resume, seed=3,
    progress=False, callbacks=[] if resume else [KillMidEpoch()])
"""


def test_killed_mid_epoch_leaves_a_loadable_checkpoint_and_resume_continues(tmp_path):
    # 200 samples / 40 = 5 steps per epoch; the process kills itself in epoch 3, step 12 (mid-epoch)
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(KILL_SCRIPT.format(tests=str(TESTS), kill_epoch=3, kill_step=12)))
    ckpt = tmp_path / "ckpt.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(script), str(ckpt)], env=env, capture_output=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    state = read_checkpoint(ckpt)
    assert state["epoch"] == 2 and state["step"] == 10, "the last complete epoch's checkpoint survives"
    proc = subprocess.run([sys.executable, str(script), str(ckpt), str(ckpt)], env=env, capture_output=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    state = read_checkpoint(ckpt)
    assert state["epoch"] == 4 and state["step"] == 20 and len(state["history"]) == 4
    straight = toy_model()
    fit(straight, ToyData(200), epochs=4, batch_size=40, seed=3, progress=False)
    resumed = toy_model(seed=1)
    load_checkpoint(ckpt, resumed)
    for p, q in zip(straight.parameters(), resumed.parameters()):
        assert torch.equal(p, q)


def test_keyboard_interrupt_mid_epoch_or_mid_save_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"

    class Interrupt(Callback):
        def on_step_end(self, state):
            if state.epoch == 2 and state.step == 7:  # 5 steps per epoch: mid-epoch 2
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(toy_model(), ToyData(200), epochs=3, batch_size=40, checkpoint=path, callbacks=[Interrupt()],
            progress=False)
    assert read_checkpoint(path)["epoch"] == 1
    good = path.read_bytes()

    def interrupted_save(obj, f, *a, **k):  # Ctrl-C while the new checkpoint is half written
        f.write(b"PK\x03\x04 half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        fit(toy_model(), ToyData(200), epochs=3, batch_size=40, checkpoint=path, resume=path, progress=False)
    monkeypatch.undo()
    assert path.read_bytes() == good, "the previous checkpoint is untouched"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"], "the half-written temp file is removed"
    hist = fit(toy_model(), ToyData(200), epochs=3, batch_size=40, checkpoint=path, resume=path, progress=False)
    assert [r["epoch"] for r in hist.rows] == [1, 2, 3] and read_checkpoint(path)["epoch"] == 3


def test_rng_states_round_trip_through_a_weights_only_file(tmp_path):
    import random

    import numpy as np

    from mmcourse.engine.checkpoint import set_rng_state

    save_checkpoint(tmp_path / "r.pt", toy_model())
    draw = lambda: (random.random(), float(np.random.rand()), torch.rand(3).tolist())  # noqa: E731
    first = draw()
    set_rng_state(read_checkpoint(tmp_path / "r.pt")["rng"][0])
    assert draw() == first
