"""mmcourse.analysis.compare: compare_fusions trains every method and reports a sane table."""

import math

import pytest
import torch
from torch import nn

from mmcourse.analysis.compare import build_method as build_model
from mmcourse.analysis.compare import compare_fusions, training_memory_mib
from mmcourse.data.dataset import MultimodalDataset
from mmcourse.models import LateFusionModel, MultimodalModel, count_parameters


class Lin(nn.Module):
    def __init__(self, d_in, d):
        super().__init__()
        self.net, self.out_dim = nn.Linear(d_in, d), d

    def forward(self, x):
        return self.net(x)

    def tokens(self, x):
        return self.net(x).unsqueeze(1)


def _xor_data(n, seed):
    """label = xor of the signs of a[:, 0] and b[:, 0]: synergistic, no modality alone tells it."""
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randn(n, 3, generator=g), torch.randn(n, 3, generator=g)
    y = ((a[:, 0] > 0) ^ (b[:, 0] > 0)).long()
    return MultimodalDataset({"a": a, "b": b}, {"label": y}, {"label": ["same", "different"]})


def _encoders():
    return {"a": Lin(3, 8), "b": Lin(3, 8)}


def test_build_model_kinds():
    nc = {"label": 2}
    assert isinstance(build_model("late", _encoders(), nc), LateFusionModel)
    only = build_model("only:a", {"a": Lin(3, 8)}, nc)
    assert isinstance(only, MultimodalModel) and list(only.encoders) == ["a"]
    assert build_model("gated", _encoders(), nc).fusion.out_dim == 8
    with pytest.raises(ValueError, match="valid names"):
        build_model("nope", _encoders(), nc)
    with pytest.raises(ValueError, match="no encoder for 'c'"):
        build_model("only:c", _encoders(), nc)


def test_compare_fusions_table_and_synergy():
    train, test = _xor_data(1024, 0), _xor_data(512, 1)
    res = compare_fusions(["only:a", "late", "concat"], train, test, _encoders, seeds=(0, 1), epochs=25,
                          lr=1e-2, batch_size=128, head_hidden=32, method_lr={"late": 1e-2})
    assert [r["method"] for r in res.rows] == ["only:a", "late", "concat"]
    for r in res.rows:
        assert 0 <= r["acc_mean"] <= 1 and r["acc_std"] >= 0 and r["params"] > 0
        assert r["train_s"] > 0 and r["latency_ms"] > 0 and r["peak_mem_mib"] > 0
        assert len(res.accs[r["method"]]) == 2
    # xor needs the two modalities together: intermediate fusion learns it, late fusion and one modality cannot
    assert res.acc("concat") > 0.85, res.to_markdown()
    assert res.acc("late") < 0.7 and res.acc("only:a") < 0.7, res.to_markdown()
    assert res.best() == "concat"
    assert "| concat |" in res.to_markdown()
    assert set(res.models) == {"only:a", "late", "concat"}
    assert all(len(v) == 2 for v in res.models_per_seed.values())  # every seed's model is kept
    assert res.models_per_seed["concat"][-1] is res.models["concat"]
    assert not res.models["concat"].training and res.specs["late"].fusion == "late"
    curves = res.histories["concat"]  # every seed's learning curve, one row per epoch
    assert len(curves) == 2 and all(len(h["train_loss"]) == 25 for h in curves)
    assert curves[0]["train_loss"][-1] < 0.5 * curves[0]["train_loss"][0]  # concat learns xor
    ax = res.plot()
    assert len(ax.patches) == 3
    with pytest.raises(KeyError, match="no method"):
        res.row("tensor")


def test_compare_fusions_rejects_empty():
    d = _xor_data(8, 0)
    with pytest.raises(ValueError, match="at least one method"):
        compare_fusions([], d, d, _encoders)


def test_memory_and_params():
    model = build_model("concat", _encoders(), {"label": 2}, head_hidden=0)
    assert count_parameters(model) == 2 * (3 * 8 + 8) + 16 * 2 + 2
    d = _xor_data(16, 0)
    mib = training_memory_mib(model, d.inputs, d.targets)
    assert math.isfinite(mib) and mib >= 4 * count_parameters(model) * 4 / 2**20


class BNEnc(nn.Module):
    def __init__(self, d_in, out_dim=8):
        super().__init__()
        self.out_dim, self.lin, self.bn = out_dim, nn.Linear(d_in, out_dim), nn.BatchNorm1d(out_dim)

    def forward(self, x):
        return self.bn(self.lin(x))


def test_memory_measurement_leaves_the_model_and_its_batch_norm_untouched():
    model = build_model("concat", {"a": BNEnc(3), "b": BNEnc(3)}, {"label": 2}).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    d = _xor_data(16, 0)
    training_memory_mib(model, {k: v * 100 for k, v in d.inputs.items()}, d.targets)
    assert not model.training, "the model came back in train mode"
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), f"{k} changed: the measurement trained on its batch"


def test_compare_fusions_passes_the_fit_config_through():
    train, test = _xor_data(128, 0), _xor_data(64, 1)
    with pytest.raises(ValueError, match="clip_grad"):
        compare_fusions(["concat"], train, test, _encoders, seeds=(0,), epochs=1, clip_grad=0.0)
    with pytest.raises(ValueError, match="schedule"):
        compare_fusions(["concat"], train, test, _encoders, seeds=(0,), epochs=1, schedule="step")
    res = compare_fusions(["concat"], train, test, _encoders, seeds=(0,), epochs=1, optimizer="sgd", clip_grad=1.0)
    assert res.acc("concat") >= 0
