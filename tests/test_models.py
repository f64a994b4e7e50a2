"""mmcourse.models: Batch, MultimodalModel and LateFusionModel speak the contract."""

import pytest
import torch
from torch import nn

from mmcourse.fusion import ConcatFusion, IdentityFusion
from mmcourse.models import Batch, LateFusionModel, MultimodalModel


def _inputs(b=4):
    g = torch.Generator().manual_seed(0)
    return {"image": torch.randn(b, 3, 4, 4, generator=g), "audio": torch.randn(b, 1, 5, 6, generator=g)}


def _encoders():
    return {"image": nn.Sequential(nn.Flatten(), nn.Linear(48, 8)),
            "audio": nn.Sequential(nn.Flatten(), nn.Linear(30, 6))}


def test_batch_len_and_to():
    b = Batch(_inputs(), {"shape": torch.zeros(4, dtype=torch.long)}, {"image": torch.ones(4, dtype=torch.bool)})
    assert len(b) == 4
    moved = b.to("cpu")
    assert moved.inputs["image"].device.type == "cpu" and moved.present["image"].dtype == torch.bool


def test_multimodal_model_returns_logits_per_task_and_missing_modality():
    model = MultimodalModel(_encoders(), ConcatFusion({"image": 8, "audio": 6}),
                            {"shape": nn.Linear(14, 10), "color": nn.Linear(14, 3)})
    out = model(_inputs())
    assert out["shape"].shape == (4, 10) and out["color"].shape == (4, 3)
    only_image = model({"image": _inputs()["image"]})
    assert only_image["shape"].shape == (4, 10)
    present = {"image": torch.tensor([True, False, True, True]), "audio": torch.ones(4, dtype=torch.bool)}
    assert torch.isfinite(model(_inputs(), present)["shape"]).all()


def test_model_order_does_not_depend_on_dict_insertion():
    torch.manual_seed(0)
    model = MultimodalModel(_encoders(), ConcatFusion({"image": 8, "audio": 6}), {"shape": nn.Linear(14, 10)})
    x = _inputs()
    reordered = {"audio": x["audio"], "image": x["image"]}
    torch.testing.assert_close(model(x)["shape"], model(reordered)["shape"])


def test_bad_inputs_raise_clear_errors():
    model = MultimodalModel({"image": _encoders()["image"]}, IdentityFusion(), {"shape": nn.Linear(8, 10)})
    with pytest.raises(KeyError, match="has no encoder"):
        model({"text": torch.zeros(4, 5, dtype=torch.long)})
    with pytest.raises(ValueError, match="no input modality"):
        model({})
    with pytest.raises(ValueError, match="at least one encoder"):
        MultimodalModel({}, IdentityFusion(), {"shape": nn.Linear(8, 10)})
    with pytest.raises(ValueError, match="exactly one modality"):
        MultimodalModel(_encoders(), IdentityFusion(), {"s": nn.Linear(8, 2)})(_inputs())


def test_late_fusion_averages_and_skips_missing():
    enc = _encoders()
    heads = {"image": {"shape": nn.Linear(8, 10)}, "audio": {"shape": nn.Linear(6, 10)}}
    model = LateFusionModel(enc, heads)
    x = _inputs()
    per = model.per_modality(x)
    torch.testing.assert_close(model(x)["shape"], (per["image"]["shape"] + per["audio"]["shape"]) / 2)
    present = {"image": torch.ones(4, dtype=torch.bool), "audio": torch.zeros(4, dtype=torch.bool)}
    torch.testing.assert_close(model(x, present)["shape"], per["image"]["shape"])
    probs = LateFusionModel(enc, heads, combine="mean_probs")(x)["shape"]
    torch.testing.assert_close(probs.exp().sum(-1), torch.ones(4))
    with pytest.raises(ValueError, match="combine"):
        LateFusionModel(enc, heads, combine="max")
