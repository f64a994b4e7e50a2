"""mmcourse.transfer.freeze and finetune: selecting, freezing, discriminative LRs, gradual unfreezing."""

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from mmcourse.transfer.finetune import GradualUnfreezing, discriminative_param_groups
from mmcourse.transfer.freeze import (
    count_parameters,
    freeze,
    select_parameters,
    set_batchnorm_eval,
    trainable_names,
    unfreeze,
)


def _net():
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 8), nn.Linear(8, 3))


def test_freeze_by_prefix_glob_and_module():
    net = _net()
    assert freeze(net, "0") == ["0.weight", "0.bias"]
    assert freeze(net, "*.bias") == ["0.bias", "1.bias", "2.bias", "3.bias"]
    assert not net[0].weight.requires_grad and not net[3].bias.requires_grad and net[3].weight.requires_grad
    unfreeze(net)
    assert trainable_names(net) == [n for n, _ in net.named_parameters()]
    freeze(net, net[2])
    assert trainable_names(net) == ["0.weight", "0.bias", "1.weight", "1.bias", "3.weight", "3.bias"]
    assert count_parameters(net, trainable_only=True) == count_parameters(net) - 72
    freeze(net)
    assert trainable_names(net) == []


def test_prefix_does_not_match_longer_names():
    net = nn.Sequential(*[nn.Linear(2, 2) for _ in range(12)])
    assert select_parameters(net, "1") == ["1.weight", "1.bias"]  # not 10.* or 11.*


def test_freeze_name_that_matches_nothing_is_a_clear_error():
    net = _net()
    with pytest.raises(ValueError, match=r"'encoder' matches no parameter.*start with"):
        freeze(net, "encoder")
    with pytest.raises(ValueError, match="part of the model"):
        freeze(net, nn.Linear(2, 2))
    with pytest.raises(TypeError, match="name pattern"):
        freeze(net, [3])
    assert all(p.requires_grad for p in net.parameters())  # nothing was frozen by the failed calls


def test_set_batchnorm_eval():
    net = _net().train()
    assert set_batchnorm_eval(net) == 1
    assert not net[1].training and net[0].training


def test_discriminative_param_groups():
    net = _net()
    groups = discriminative_param_groups(net, ["0", ["1", "2"]], lr=1.0, decay=0.5)
    assert [g["name"] for g in groups] == ["layer0", "layer1", "top"]
    assert [g["lr"] for g in groups] == [0.25, 0.5, 1.0]
    assert groups[2]["params"] == [net[3].weight, net[3].bias]
    assert sum(len(g["params"]) for g in groups) == len(list(net.parameters()))
    opt = torch.optim.AdamW(groups)
    assert [g["lr"] for g in opt.param_groups] == [0.25, 0.5, 1.0]
    with pytest.raises(ValueError, match="must not overlap"):
        discriminative_param_groups(net, ["0", "0.weight"], lr=1.0)
    with pytest.raises(ValueError, match="decay"):
        discriminative_param_groups(net, ["0"], lr=1.0, decay=0.0)
    with pytest.raises(ValueError, match="matches no parameter"):
        discriminative_param_groups(net, ["body"], lr=1.0)


def test_gradual_unfreezing_top_first():
    net = _net()
    thaw = GradualUnfreezing(net, ["2", "1", "0"], every=1)
    assert trainable_names(net) == ["3.weight", "3.bias"]
    thaw.on_epoch_end(SimpleNamespace(epoch=1), {})
    assert trainable_names(net) == ["2.weight", "2.bias", "3.weight", "3.bias"]
    thaw.on_epoch_end(SimpleNamespace(epoch=3), {})
    assert len(trainable_names(net)) == 8 and thaw.unfrozen == 3
    thaw.on_epoch_end(SimpleNamespace(epoch=4), {})  # nothing left: no error
    resumed = GradualUnfreezing(_net(), ["2", "1", "0"])
    resumed.load_state_dict(thaw.state_dict())
    assert len(trainable_names(resumed.model)) == 8
