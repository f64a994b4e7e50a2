"""mmcourse.transfer.checkpoints and kinds: loading into another architecture, the three kinds of transfer."""

import pytest
import torch
from torch import nn

from mmcourse.encoders.image import SmallCNN
from mmcourse.models import ModelSpec, build_model
from mmcourse.transfer.checkpoints import load_pretrained
from mmcourse.transfer.kinds import FrozenFeatures, feature_transfer, parameter_transfer, structure_transfer


def shared_trunk_model(encoders, num_classes):
    return build_model(ModelSpec(classes=num_classes), encoders)


def test_load_encoder_into_model_reports_missing_and_unexpected(tmp_path):
    torch.manual_seed(0)
    enc = SmallCNN(width=4, out_dim=8)
    state = {**enc.state_dict(), "old_head.weight": torch.zeros(3, 8)}
    model = shared_trunk_model({"image": SmallCNN(width=4, out_dim=8)}, {"shape": 10})
    path = tmp_path / "enc.pt"
    torch.save(state, path)
    report = load_pretrained(model, path, prefix="encoders.image.")
    assert report.unexpected == ["encoders.image.old_head.weight"]
    assert report.missing == ["heads.shape.weight", "heads.shape.bias"]
    torch.testing.assert_close(model.encoders.image.pool.proj.weight, enc.pool.proj.weight)
    assert "missing" in str(report) and "unexpected" in str(report) and not report.ok
    with pytest.raises(ValueError, match="strict loading"):
        load_pretrained(model, state, prefix="encoders.image.", strict=True)


def test_shape_mismatch_is_skipped_and_reported():
    model = shared_trunk_model({"image": SmallCNN(width=4, out_dim=8)}, {"shape": 10})
    other = shared_trunk_model({"image": SmallCNN(width=4, out_dim=8)}, {"shape": 5})
    before = model.heads.shape.weight.clone()
    report = load_pretrained(model, other)
    assert report.mismatched["heads.shape.weight"] == ((10, 8), (5, 8))
    assert "shape mismatch for heads.shape.weight: model [10, 8], checkpoint [5, 8]" in str(report)
    torch.testing.assert_close(model.heads.shape.weight, before)
    torch.testing.assert_close(model.encoders.image.pool.proj.weight, other.encoders.image.pool.proj.weight)


def test_checkpoint_of_a_different_architecture_is_a_clear_error(tmp_path):
    model = SmallCNN(width=4, out_dim=8)
    foreign = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 2))
    pattern = r"(?s)different architecture.*missing.*features.0.0.weight.*unexpected.*0.weight"
    with pytest.raises(ValueError, match=pattern):
        load_pretrained(model, foreign)
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable torch checkpoint"):
        load_pretrained(model, bad)
    with pytest.raises(FileNotFoundError):
        load_pretrained(model, tmp_path / "absent.pt")


def test_three_kinds_of_transfer():
    torch.manual_seed(0)
    src = SmallCNN(width=4, out_dim=8)
    dst = SmallCNN(width=4, out_dim=8)
    assert parameter_transfer(src, dst).ok
    torch.testing.assert_close(dst.pool.proj.weight, src.pool.proj.weight)
    fresh = structure_transfer(src, seed=1)
    assert type(fresh) is SmallCNN and fresh.out_dim == 8
    assert not torch.equal(fresh.pool.proj.weight, src.pool.proj.weight)
    frozen = feature_transfer(src)
    assert isinstance(frozen, FrozenFeatures) and frozen.out_dim == 8
    frozen.train()
    assert not frozen.encoder.training and not any(p.requires_grad for p in frozen.parameters())
    x = torch.randn(2, 3, 8, 8)
    src.eval()
    torch.testing.assert_close(frozen(x), src(x))
    assert frozen.tokens(x).shape == (2, 4, 8)
