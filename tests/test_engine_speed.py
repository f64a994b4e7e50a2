"""The engine's speed switches: AMP choice, channels_last, compile arguments, unwrapping."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mmcourse.engine.speed import (
    maybe_compile,
    model_to_channels_last,
    resolve_amp,
    resolve_channels_last,
    to_channels_last_inputs,
    unwrap,
)

CPU = torch.device("cpu")


def test_amp_is_off_on_cpu_by_default_and_explicit_choices_work():
    assert resolve_amp("auto", CPU) == (None, False)
    assert resolve_amp(False, CPU) == (None, False) and resolve_amp("off", CPU) == (None, False)
    assert resolve_amp("bf16", CPU) == (torch.bfloat16, False)
    assert resolve_amp("fp16", CPU) == (torch.float16, True)  # fp16 always comes with a GradScaler
    with pytest.raises(ValueError, match="amp="):
        resolve_amp("int8", CPU)


def test_channels_last_auto_means_cuda_only():
    assert resolve_channels_last("auto", CPU) is False
    assert resolve_channels_last("auto", torch.device("cuda")) is True
    assert resolve_channels_last(True, CPU) is True


def test_channels_last_layouts_for_images_and_videos():
    conv2, conv3 = nn.Conv2d(3, 4, 3), nn.Conv3d(3, 4, 3)
    model_to_channels_last(nn.Sequential(conv2, conv3))
    assert conv2.weight.is_contiguous(memory_format=torch.channels_last)
    assert conv3.weight.is_contiguous(memory_format=torch.channels_last_3d)
    out = to_channels_last_inputs({"image": torch.randn(2, 3, 4, 4), "video": torch.randn(2, 3, 2, 4, 4),
                                   "text": torch.ones(2, 5, dtype=torch.long)})
    assert out["image"].is_contiguous(memory_format=torch.channels_last)
    assert out["video"].is_contiguous(memory_format=torch.channels_last_3d)
    assert out["text"].is_contiguous()


def test_compile_arguments_and_unwrap():
    lin = nn.Linear(2, 2)
    assert maybe_compile(lin, False) is lin
    compiled = maybe_compile(lin, {"backend": "aot_eager", "dynamic": False})
    assert unwrap(compiled) is lin
    torch.testing.assert_close(compiled(torch.ones(1, 2)), lin(torch.ones(1, 2)))
    with pytest.raises(ValueError, match="compile="):
        maybe_compile(lin, 3)
