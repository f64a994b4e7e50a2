"""mmcourse.runtime: device choice, seeding, profiles."""

import pytest
import torch

from mmcourse.runtime import FULL, QUICK, amp_dtype, pick_device, profile, seed_everything


def test_pick_device_defaults_to_cpu_without_accelerators(monkeypatch):
    monkeypatch.delenv("MMCOURSE_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert pick_device() == torch.device("cpu")


def test_pick_device_prefers_cuda(monkeypatch):
    monkeypatch.delenv("MMCOURSE_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device().type == "cuda"


def test_pick_device_override_and_bad_values(monkeypatch):
    monkeypatch.setenv("MMCOURSE_DEVICE", "cpu")
    assert pick_device() == torch.device("cpu")
    monkeypatch.setenv("MMCOURSE_DEVICE", "tpu")
    with pytest.raises(ValueError, match="cpu, cuda, cuda:N, mps"):
        pick_device()
    monkeypatch.setenv("MMCOURSE_DEVICE", "cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        pick_device()


def test_profile_from_env_and_errors(monkeypatch):
    monkeypatch.setenv("MMCOURSE_PROFILE", "full")
    assert profile() is FULL
    monkeypatch.setenv("MMCOURSE_PROFILE", "quick")
    assert profile() is QUICK
    monkeypatch.setenv("MMCOURSE_PROFILE", "fast")
    with pytest.raises(ValueError, match="quick, full"):
        profile()


def test_profile_default_follows_cuda(monkeypatch):
    monkeypatch.delenv("MMCOURSE_PROFILE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert profile().name == "quick"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert profile().name == "full"


def test_profile_pick_and_replace():
    assert QUICK.pick(quick=1, full=2) == 1 and FULL.pick(quick=1, full=2) == 2
    assert QUICK.replace(epochs=9).epochs == 9 and QUICK.epochs != 9
    with pytest.raises(ValueError, match="unknown Profile field"):
        QUICK.replace(epoch=3)


def test_seed_everything_reproduces_and_validates():
    seed_everything(3)
    a = torch.randn(5)
    seed_everything(3)
    assert torch.equal(a, torch.randn(5))
    with pytest.raises(ValueError, match="non-negative int"):
        seed_everything(-1)


def test_amp_dtype_cpu_is_none():
    assert amp_dtype(torch.device("cpu")) is None
