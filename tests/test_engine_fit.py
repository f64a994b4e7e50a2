"""Tests for mmcourse.engine.fit / evaluate (and the toy data the other engine tests import)."""

from __future__ import annotations

import matplotlib
import pytest
import torch
from torch import nn

from mmcourse.engine import Callback, EarlyStopping, History, evaluate, fit, mask_modalities, modality_dropout
from mmcourse.engine.optim import make_optimizer, make_schedule
from mmcourse.fusion.basic import ConcatFusion
from mmcourse.models import Batch, MultimodalModel

matplotlib.use("Agg")


class ToyData:
    """A stand-in for ``MultimodalDataset``: image + text inputs, two learnable tasks."""

    def __init__(self, n: int, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        image = torch.randn(n, 3, 8, 8, generator=g)
        text = torch.randint(1, 20, (n, 6), generator=g)
        self.inputs = {"image": image, "text": text}
        self.targets = {"shape": (image[:, 0].mean((1, 2)) > 0).long(), "color": text[:, 0] % 3}

    def __len__(self) -> int:
        return len(self.targets["shape"])

    def batches(self, batch_size, *, shuffle=False, seed=None, drop_last=False):
        n = len(self)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed or 0)) if shuffle else torch.arange(n)
        for s in range(0, n, batch_size):
            idx = order[s:s + batch_size]
            if drop_last and len(idx) < batch_size:
                return
            yield Batch({k: v[idx] for k, v in self.inputs.items()}, {k: v[idx] for k, v in self.targets.items()})


class OnlyBatches:
    """Data that offers nothing but ``.batches`` (no tensors to index)."""

    def __init__(self, data: ToyData):
        self._data = data

    def __len__(self) -> int:
        return len(self._data)

    def batches(self, *a, **k):
        return self._data.batches(*a, **k)


class ImageEnc(nn.Module):
    def __init__(self, dim: int = 16, dropout: float = 0.0):
        super().__init__()
        self.conv, self.drop, self.fc = nn.Conv2d(3, 8, 3, padding=1), nn.Dropout(dropout), nn.Linear(8, dim)

    def forward(self, x):
        return self.fc(self.drop(self.conv(x).relu().mean((2, 3))))  # [B, dim]


class TextEnc(nn.Module):
    def __init__(self, dim: int = 16):
        super().__init__()
        self.emb = nn.Embedding(20, dim)

    def forward(self, x):
        return self.emb(x[:, 0])  # [B, dim]


def toy_model(seed: int = 0, dropout: float = 0.0) -> MultimodalModel:
    torch.manual_seed(seed)
    return MultimodalModel({"image": ImageEnc(dropout=dropout), "text": TextEnc()},
                           ConcatFusion({"image": 16, "text": 16}),
                           {"shape": nn.Linear(32, 2), "color": nn.Linear(32, 3)})


def test_fit_learns_and_history_has_rows():
    model, train, val = toy_model(), ToyData(600), ToyData(300, seed=1)
    before = evaluate(model, val)
    hist = fit(model, train, val, epochs=4, lr=1e-2, batch_size=64, progress=False, device="cpu")
    assert isinstance(hist, History) and len(hist) == 4
    for key in ("epoch", "train_loss", "val_loss", "val_acc/shape", "val_acc/color", "val_acc", "lr"):
        assert key in hist.last, f"missing {key} in {sorted(hist.last)}"
    assert hist.last["val_acc"] > before["acc"] + 0.15, (before, hist.last)
    assert hist["train_loss"][-1] < hist["train_loss"][0]
    assert hist.best("val_acc")["val_acc"] >= hist.last["val_acc"]


def test_evaluate_keys_and_values_match_a_manual_computation():
    model, val = toy_model(), ToyData(130, seed=1)
    res = evaluate(model, val, batch_size=32)
    assert set(res) == {"loss", "acc", "acc/shape", "acc/color", "loss/shape", "loss/color"}
    with torch.no_grad():
        out = model(val.inputs)
    ce = sum(nn.functional.cross_entropy(out[t], val.targets[t]) for t in ("shape", "color"))
    accs = [(out[t].argmax(-1) == val.targets[t]).float().mean().item() for t in ("color", "shape")]
    assert res["loss"] == pytest.approx(ce.item(), rel=1e-5)
    assert res["acc/color"] == pytest.approx(accs[0]) and res["acc/shape"] == pytest.approx(accs[1])
    assert res["acc"] == pytest.approx(sum(accs) / 2)
    assert res["loss/shape"] + res["loss/color"] == pytest.approx(res["loss"], rel=1e-5)


def test_evaluate_present_drops_a_modality_like_zeroed_inputs():
    model, val = toy_model(), ToyData(100, seed=2)
    res = evaluate(model, val, present={"image": False})
    zeroed = Batch({"image": torch.zeros_like(val.inputs["image"]), "text": val.inputs["text"]}, val.targets,
                   {"image": torch.zeros(100, dtype=torch.bool)})
    assert res == pytest.approx(evaluate(model, [zeroed]))
    assert res != pytest.approx(evaluate(model, val))


@pytest.mark.parametrize("wrap", ["batches", "list"])
def test_fit_accepts_batches_objects_and_iterables(wrap):
    train = ToyData(300)
    data = OnlyBatches(train) if wrap == "batches" else list(train.batches(50, shuffle=True, seed=3))
    model = toy_model()
    hist = fit(model, data, data, epochs=3, lr=1e-2, batch_size=50, progress=False)
    assert len(hist) == 3 and hist.last["train_loss"] < hist.rows[0]["train_loss"]


def test_a_zero_task_weight_leaves_that_head_untouched():
    model = toy_model()
    head = model.heads["color"].weight.detach().clone()
    fit(model, ToyData(200), epochs=1, batch_size=50, task_weights={"color": 0.0}, progress=False)
    assert torch.equal(model.heads["color"].weight, head)
    assert not torch.equal(model.heads["shape"].weight, toy_model().heads["shape"].weight)


def test_compile_with_aot_eager_matches_eager():
    a, b = toy_model(), toy_model()
    kw = dict(epochs=2, batch_size=64, progress=False, seed=1)
    fit(a, ToyData(256), **kw)
    fit(b, ToyData(256), compile="aot_eager", **kw)
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=lambda m, name=name: f"{name}: {m}")


def test_sgd_onecycle_clip_and_channels_last_run_on_cpu():
    model = toy_model()
    hist = fit(model, ToyData(256), ToyData(64, 1), epochs=2, optimizer="sgd", schedule="onecycle", lr=0.05,
               clip_grad=1.0, channels_last=True, weight_decay=1e-4, warmup=0.2, progress=True)
    assert len(hist) == 2 and all(torch.isfinite(p).all() for p in model.parameters())


def test_warmup_then_cosine_schedule():
    model = toy_model()
    opt = make_optimizer(model, "adamw", 1.0, 0.0, torch.device("cpu"))
    sched = make_schedule(opt, "cosine", total_steps=10, warmup=0.2, lr=1.0)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] < lrs[1] < lrs[2] == pytest.approx(1.0)
    assert all(x >= y for x, y in zip(lrs[2:], lrs[3:])) and lrs[-1] < 0.05


def test_weight_decay_skips_biases():
    opt = make_optimizer(toy_model(), "adamw", 1e-3, 0.1, torch.device("cpu"))
    decays = {g["weight_decay"]: sum(p.numel() for p in g["params"]) for g in opt.param_groups}
    assert set(decays) == {0.1, 0.0}


def test_early_stopping_stops_and_restores_best():
    class Worse(Callback):  # pretend validation gets worse every epoch after the first
        def on_epoch_end(self, state, row):
            row["val_loss"] = float(row["epoch"])

    stopper = EarlyStopping(monitor="val_loss", patience=2)
    model = toy_model()
    hist = fit(model, ToyData(200), ToyData(50, 1), epochs=10, callbacks=[Worse(), stopper], progress=False)
    assert len(hist) == 3 and stopper.best_epoch == 1


def test_step_callback_sees_every_step():
    seen = []

    class Count(Callback):
        def on_step_end(self, state):
            seen.append((state.epoch, state.step))

    fit(toy_model(), ToyData(100), epochs=2, batch_size=32, callbacks=[Count()], progress=False)
    assert seen == [(e, s) for e, s in zip([1] * 4 + [2] * 4, range(1, 9))]


def test_modality_dropout_keeps_one_modality_and_zeroes_dropped_inputs():
    data = ToyData(2000)
    batch = Batch(data.inputs, data.targets)
    torch.manual_seed(0)
    out = modality_dropout(batch, 0.5)
    img, txt = out.present["image"], out.present["text"]
    assert (img | txt).all(), "every sample keeps at least one modality"
    assert 0.3 < (~img).float().mean() < 0.45
    assert (out.inputs["image"][~img] == 0).all() and (out.inputs["text"][~txt] == 0).all()
    assert torch.equal(out.inputs["image"][img], data.inputs["image"][img])
    with pytest.raises(ValueError, match="probability"):
        modality_dropout(batch, 1.0)
    hist = fit(toy_model(), data, epochs=1, modality_dropout=0.3, progress=False)
    assert hist.last["train_loss"] > 0


def test_modality_dropout_never_keeps_only_a_modality_that_is_already_missing():
    data = ToyData(2000)
    no_image = torch.arange(2000) % 2 == 0  # half the samples came without an image
    batch = Batch(data.inputs, data.targets, {"image": ~no_image, "text": torch.ones(2000, dtype=torch.bool)})
    torch.manual_seed(0)
    out = modality_dropout(batch, 0.6)
    assert not out.present["image"][no_image].any(), "a missing modality came back"
    assert out.present["text"][no_image].all(), "a sample without an image lost its text too"
    assert (out.present["image"] | out.present["text"]).all()


def test_mask_modalities_zeroes_rows():
    x = {"image": torch.ones(3, 2), "text": torch.ones(3, 4, dtype=torch.long)}
    out = mask_modalities(x, {"image": torch.tensor([True, False, True])})
    assert out["image"][:, 0].tolist() == [1, 0, 1] and torch.equal(out["text"], x["text"])


def test_history_plot_makes_a_figure():
    hist = fit(toy_model(), ToyData(100), ToyData(40, 1), epochs=2, progress=False)
    fig = hist.plot()
    assert len(fig.axes) == 2 and fig.axes[0].get_xlabel() == "epoch"
    with pytest.raises(KeyError, match="has no"):
        hist["nope"]


@pytest.mark.parametrize("kw, match", [
    ({"optimizer": "adam"}, "optimizer="), ({"schedule": "step"}, "schedule="), ({"amp": "fp8"}, "amp="),
    ({"epochs": 0}, "epochs"), ({"channels_last": "yes"}, "channels_last"), ({"batch_size": 1000}, "no training"),
])
def test_bad_arguments_raise_clear_errors(kw, match):
    args = {"epochs": 1, "progress": False, **kw}
    with pytest.raises(ValueError, match=match):
        fit(toy_model(), ToyData(64), **args) if kw.get("batch_size") is None else \
            fit(toy_model(), ToyData(64), compile="aot_eager", **args)


def test_no_common_task_is_a_clear_error():
    data = ToyData(32)
    data.targets = {"label": data.targets["shape"]}
    with pytest.raises(ValueError, match="at least one task"):
        fit(toy_model(), data, epochs=1, progress=False)


def test_out_of_memory_suggests_a_smaller_batch():
    class Boom(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Linear(1, 1)

        def forward(self, inputs, present=None):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")

    with pytest.raises(torch.OutOfMemoryError, match=r"batch_size=32"):
        fit(Boom(), ToyData(64), epochs=1, batch_size=64, progress=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="host-sync detection needs CUDA")
def test_no_host_sync_inside_the_training_step_on_cuda():
    class NoSync(Callback):  # error on any synchronising CUDA call from an epoch's start to its last step
        def on_epoch_begin(self, state):
            torch.cuda.set_sync_debug_mode("error")

        def on_step_end(self, state):
            if state.step % 4 == 0:
                torch.cuda.set_sync_debug_mode("default")

    try:
        fit(toy_model(), ToyData(256), epochs=2, batch_size=64, device="cuda", modality_dropout=0.2, clip_grad=1.0,
            callbacks=[NoSync()], progress=False)
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_the_plain_loop_trains_tensors_and_datasets_with_or_without_a_dataloader():
    from mmcourse.engine.minimal import plain_loop, train_minibatch

    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 4, generator=g)
    y = (x[:, 0] > 0).long()
    net = nn.Linear(4, 2)
    accs = plain_loop(net, (x, y), (x, y), epochs=3, lr=0.05, batch_size=32)
    assert len(accs) == 3 and accs[-1] > 0.9 and not net.training
    torch.manual_seed(0)
    a, b = nn.Linear(4, 2), nn.Linear(4, 2)
    b.load_state_dict(a.state_dict())
    train_minibatch(a, x, y, epochs=2, lr=0.05, batch_size=32, seed=3)
    plain_loop(b, (x, y), epochs=2, lr=0.05, batch_size=32, seed=3)
    assert torch.equal(a.weight, b.weight), "train_minibatch is the plain loop"
    model, data = toy_model(), ToyData(256)
    losses = plain_loop(model, data, epochs=3, lr=1e-2, batch_size=64, optimizer="adamw", dataloader=True)
    assert losses[-1] < losses[0]
    assert plain_loop(toy_model(), data, ToyData(64, 1), epochs=1, batch_size=64, dataloader=True)[0] > 0
