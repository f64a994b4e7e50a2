"""What fit refuses before its first step, and how it stops on a NaN/inf loss or gradient (issue 18's fit items)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_engine_fit import ToyData, toy_model  # noqa: E402

from mmcourse.engine import EarlyStopping, FitConfig, NonFiniteError, evaluate, fit  # noqa: E402
from mmcourse.engine.checkpoint import read_checkpoint  # noqa: E402

KW = dict(epochs=1, progress=False, device="cpu")


@pytest.mark.parametrize("kw, error, culprit", [
    ({"clip_grad": 0.0}, ValueError, "clip_grad"),
    ({"clip_grad": -1.0}, ValueError, "clip_grad"),
    ({"lr": "1e-3"}, TypeError, "lr must be a number"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"batch_size": 2.5}, TypeError, "batch_size"),
    ({"task_weights": {"shape": -1.0}}, ValueError, "'shape'"),
    ({"epochs": 0}, ValueError, "epochs"),
    ({"nonfinite": "ignore"}, ValueError, "nonfinite"),
    ({"learning_rate": 1e-3}, TypeError, "learning_rate"),
])
def test_bad_settings_are_refused_naming_the_culprit(kw, error, culprit):
    with pytest.raises(error, match=culprit) as info:
        fit(toy_model(), ToyData(64), **{**KW, **kw})
    if "learning_rate" in kw:
        assert "valid FitConfig fields" in str(info.value) and "'lr'" in str(info.value)


def test_a_config_of_the_wrong_type_is_refused():
    with pytest.raises(TypeError, match="config must be a FitConfig, got dict"):
        fit(toy_model(), ToyData(64), config={"epochs": 1})
    cfg = FitConfig(epochs=1, progress=False)
    assert cfg.with_(lr=0.1).lr == 0.1 and cfg.lr == 1e-3  # frozen: a copy changes
    with pytest.raises(TypeError, match="unknown fit setting"):
        cfg.with_(lrr=0.1)


def test_unknown_task_weights_list_the_valid_names():
    with pytest.raises(KeyError, match=r"\['size'\].*valid task names: \['color', 'shape'\]"):
        fit(toy_model(), ToyData(64), task_weights={"size": 1.0}, **KW)


def test_a_val_monitor_without_val_data_is_refused():
    with pytest.raises(ValueError, match="EarlyStopping monitors 'val_acc'.*no validation data"):
        fit(toy_model(), ToyData(64), callbacks=[EarlyStopping("val_acc")], **KW)


def test_empty_splits_are_refused():
    empty = ToyData(0)
    with pytest.raises(ValueError, match="training data is empty"):
        fit(toy_model(), empty, **KW)
    with pytest.raises(ValueError, match="validation data is empty"):
        fit(toy_model(), ToyData(64), empty, **KW)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_an_unwritable_checkpoint_folder_is_refused_before_training(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    with pytest.raises(PermissionError, match="cannot write checkpoints to .*ro"):
        fit(toy_model(), ToyData(64), checkpoint=folder / "c.pt", **KW)


def test_a_checkpoint_path_under_a_file_is_refused_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    model = toy_model()
    before = [p.clone() for p in model.parameters()]
    with pytest.raises(OSError, match="cannot write checkpoints to"):
        fit(model, ToyData(64), checkpoint=blocker / "c.pt", **KW)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before)), "it trained before refusing"


def test_an_unavailable_device_is_refused():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(RuntimeError, match="device='cuda' but CUDA is not available"):
        fit(toy_model(), ToyData(64), **{**KW, "device": "cuda"})


def test_nan_in_an_input_stops_training_naming_the_epoch_step_and_input(tmp_path):
    data = ToyData(200)
    data.inputs["image"][150, 0, 0, 0] = float("nan")
    path = tmp_path / "c.pt"
    fit(toy_model(), ToyData(200), epochs=1, batch_size=40, checkpoint=path, progress=False, device="cpu")
    good = path.read_bytes()
    with pytest.raises(NonFiniteError, match=r"loss became NaN/inf in epoch 1, step \d.*input \['image'\]") as info:
        fit(toy_model(), data, epochs=2, batch_size=40, checkpoint=path, progress=False, device="cpu")
    assert str(path) in str(info.value) and path.read_bytes() == good, "the last good checkpoint was kept"
    assert read_checkpoint(path)["epoch"] == 1


def test_a_diverging_run_blames_the_learning_rate():
    with pytest.raises(NonFiniteError, match=r"epoch 1, step \d+.*learning rate \(lr=1e\+30\)"):
        fit(toy_model(), ToyData(200), epochs=1, lr=1e30, optimizer="sgd", batch_size=20, progress=False,
            device="cpu")


def test_nonfinite_skip_skips_the_bad_steps_and_counts_them():
    data = ToyData(200)
    data.inputs["image"][5, 0, 0, 0] = float("inf")
    model = toy_model()
    hist = fit(model, data, epochs=2, batch_size=40, nonfinite="skip", progress=False, device="cpu")
    assert hist.rows[0]["skipped_steps"] == 1 and hist.rows[1]["skipped_steps"] == 2
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_evaluate_refuses_nonfinite_inputs():
    data = ToyData(64)
    data.inputs["image"][3, 1] = float("nan")
    with pytest.raises(ValueError, match=r"input \['image'\] holds NaN or inf"):
        evaluate(toy_model(), data)
