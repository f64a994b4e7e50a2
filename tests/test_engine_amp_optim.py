"""fit with mixed precision on a CPU (bf16 autocast; fp16 autocast with a GradScaler), and the three ways to
give it an optimiser (a name, an instance over param groups, a factory over fit's groups)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_engine_fit import ToyData, toy_model  # noqa: E402

from mmcourse.engine import fit  # noqa: E402
from mmcourse.engine.checkpoint import read_checkpoint  # noqa: E402
from mmcourse.engine.speed import resolve_amp  # noqa: E402

CPU = torch.device("cpu")


class DtypeSpy:
    """Records the dtype of the shape head's output during training steps (a forward hook)."""

    def __init__(self, model):
        self.dtypes = set()
        model.heads["shape"].register_forward_hook(lambda m, i, o: self.dtypes.add(o.dtype))


@pytest.mark.parametrize("amp, dtype, scaler", [("bf16", torch.bfloat16, False), ("fp16", torch.float16, True),
                                               ("off", torch.float32, False)])
def test_mixed_precision_on_the_cpu(tmp_path, amp, dtype, scaler):
    assert resolve_amp(amp, CPU) == ((None if amp == "off" else dtype), scaler)
    model = toy_model()
    spy = DtypeSpy(model)
    hist = fit(model, ToyData(256), ToyData(64, 1), epochs=2, lr=1e-2, batch_size=64, amp=amp, device="cpu",
               progress=False, checkpoint=tmp_path / "c.pt")
    assert dtype in spy.dtypes, spy.dtypes
    assert hist.last["train_loss"] < hist.rows[0]["train_loss"] + 0.05 and all(
        torch.isfinite(p).all() and p.dtype == torch.float32 for p in model.parameters())
    state = read_checkpoint(tmp_path / "c.pt")["scaler"]
    assert (state is not None) == scaler, "fp16 must come with a GradScaler (and only fp16)"


def test_the_grad_scaler_skips_overflowing_fp16_steps_and_backs_off():
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**40)
    model = toy_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    data = ToyData(32)
    with torch.autocast("cpu", dtype=torch.float16):
        out = model(data.inputs)
        loss = sum(nn.functional.cross_entropy(out[t].float(), data.targets[t]) for t in out)
    before = [p.detach().clone() for p in model.parameters()]
    scaler.scale(loss * 1e6).backward()  # the scaled fp16 activations' gradients overflow
    scaler.step(opt)
    scaler.update()
    assert scaler.get_scale() < 2.0**40, "the scale backs off after an overflow"
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before)), "the overflowing step was skipped"


def test_auto_amp_is_off_on_a_cpu():
    assert resolve_amp("auto", CPU) == (None, False)


def test_an_optimizer_instance_over_discriminative_groups_keeps_its_rates():
    model = toy_model()
    groups = [{"params": model.encoders.parameters(), "lr": 1e-3}, {"params": model.heads.parameters(), "lr": 1e-2},
              {"params": model.fusion.parameters(), "lr": 1e-2}]
    opt = torch.optim.AdamW(groups, lr=1e-2)
    seen = []
    fit(model, ToyData(128), epochs=1, optimizer=opt, schedule="constant", batch_size=64, progress=False,
        callbacks=[type("Spy", (), {"on_epoch_end": lambda self, s, r: seen.append(
            [g["lr"] for g in s.optimizer.param_groups])})()])
    assert seen == [[1e-3, 1e-2, 1e-2]]


def test_a_factory_gets_fits_named_groups_and_a_losss_parameters_join_them():
    got = {}

    class ScaledLoss(nn.Module):  # a loss with a parameter: fit must optimise it with the model
        def __init__(self):
            super().__init__()
            self.log_scale = nn.Parameter(torch.zeros(()))

        def forward(self, outputs, batch):
            ce = nn.functional.cross_entropy(outputs["shape"], batch.targets["shape"])
            return ce * self.log_scale.exp() - self.log_scale

    def factory(groups):
        got["names"] = [g["name"] for g in groups]
        return torch.optim.SGD(groups, lr=0.05)

    loss = ScaledLoss()
    fit(toy_model(), ToyData(128), loss=loss, optimizer=factory, epochs=1, batch_size=32, progress=False)
    assert got["names"] == ["decay", "no_decay", "loss"]
    assert loss.log_scale.item() != 0.0
    with pytest.raises(TypeError, match="must return a torch.optim.Optimizer"):
        fit(toy_model(), ToyData(64), optimizer=lambda groups: groups, epochs=1, progress=False)
    with pytest.raises(TypeError, match="optimizer must be"):
        fit(toy_model(), ToyData(64), optimizer=3, epochs=1, progress=False)
    inst = torch.optim.SGD(toy_model().parameters(), lr=0.1)
    loss2 = ScaledLoss()
    model = toy_model()
    inst = torch.optim.SGD(model.parameters(), lr=0.1)
    fit(model, ToyData(64), loss=loss2, optimizer=inst, epochs=1, progress=False)
    assert inst.param_groups[-1]["name"] == "loss" and loss2.log_scale.item() != 0.0


def test_frozen_parameters_join_the_default_groups_and_train_once_unfrozen():
    model = toy_model()
    model.encoders.requires_grad_(False)
    frozen = model.encoders.image.conv.weight.detach().clone()

    class Thaw:
        def on_epoch_end(self, state, row):
            state.model.encoders.requires_grad_(True)

    fit(model, ToyData(128), epochs=1, batch_size=64, progress=False)
    assert torch.equal(model.encoders.image.conv.weight, frozen), "a frozen encoder trained"
    fit(model, ToyData(128), epochs=2, batch_size=64, progress=False, callbacks=[Thaw()])
    assert not torch.equal(model.encoders.image.conv.weight, frozen), "the unfrozen encoder never trained"


def test_compile_trains_a_loss_that_is_not_cross_entropy():
    model = toy_model()
    mse = lambda out, batch: out["shape"].float().pow(2).mean()  # noqa: E731
    hist = fit(model, ToyData(128), loss=mse, epochs=2, batch_size=32, compile="aot_eager", progress=False)
    assert hist.last["train_loss"] < hist.rows[0]["train_loss"]
