"""mmcourse.fusion.dropout and .shared: modality dropout inside the model; weight sharing across branches."""

import pytest
import torch
from torch import nn

from mmcourse.fusion import ConcatFusion, CrossAttentionFusion, ModalityDropout, keep_mask, shared_encoders
from mmcourse.models import MultimodalModel


def test_keep_mask_keeps_at_least_one():
    g = torch.Generator().manual_seed(0)
    keep = keep_mask(2000, 3, 0.6, generator=g)
    assert keep.any(1).all()
    rate = 1 - keep.float().mean().item()
    assert 0.45 < rate < 0.6  # a bit under p: rows with everything dropped get one modality back
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        keep_mask(4, 2, 1.0)


class Record(nn.Module):
    """A fusion that remembers the present mask it was given."""

    out_dim = 2

    def forward(self, feats, present=None):
        self.seen = present
        return torch.cat([feats[m] for m in sorted(feats)], -1)


def test_modality_dropout_only_in_training():
    inner = Record()
    f = ModalityDropout(inner, p=0.5)
    feats = {"a": torch.ones(500, 1), "b": torch.ones(500, 1)}
    f.train()
    f(feats, {"a": torch.zeros(500, dtype=torch.bool)})
    assert not inner.seen["a"].any(), "an already-missing modality stays missing"
    assert inner.seen["b"].all(), "b must be rescued wherever a is missing"
    f(feats, None)
    kept = torch.stack([inner.seen["a"], inner.seen["b"]], 1)
    assert kept.any(1).all() and not kept.all()
    f.eval()
    f(feats, None)
    assert inner.seen is None
    assert ModalityDropout(CrossAttentionFusion({"a": 2, "b": 2}, dim=4, heads=2)).uses_tokens


def test_shared_encoder_weights_are_shared():
    torch.manual_seed(0)
    enc = nn.Linear(3, 4)
    enc.out_dim = 4
    encoders = shared_encoders(enc, ["image_left", "image_right"])
    model = MultimodalModel(encoders, ConcatFusion({"image_left": 4, "image_right": 4}), {"same": nn.Linear(8, 2)})
    assert sum(p.numel() for p in model.parameters()) == 3 * 4 + 4 + 8 * 2 + 2  # the encoder counted once
    x = {"image_left": torch.randn(5, 3), "image_right": torch.randn(5, 3)}
    model(x)["same"].sum().backward()
    grad_both = enc.weight.grad.clone()
    enc.weight.grad = None
    off = {"image_right": torch.zeros(5, dtype=torch.bool)}
    model({"image_left": x["image_left"], "image_right": torch.zeros(5, 3)}, off)["same"].sum().backward()
    assert not torch.allclose(grad_both, enc.weight.grad), "both branches add to the shared gradient"
    assert "weights shared" in repr(model)
    with pytest.raises(ValueError, match="distinct"):
        shared_encoders(enc, ["a", "a"])
    with pytest.raises(AttributeError, match="no tokens"):
        encoders["image_left"].tokens(x["image_left"])
