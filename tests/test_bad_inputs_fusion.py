"""Bad masks and features entering a fusion, ``LateFusionModel`` or ``evaluate(present=...)`` are refused in words.

``present`` masks must be bool ``[B]`` per modality, on the features' device, and name modalities the model
has: a typo, a float 0.5 (which would scale features), an int mask {2, 0, -1} (which would multiply them) and
a mask longer than the batch (which would be truncated) all used to pass silently.
"""

import pytest
import torch
from torch import nn

from mmcourse.batch import UnknownNameError
from mmcourse.data import MultimodalDataset
from mmcourse.engine import evaluate
from mmcourse.fusion import ConcatFusion, GatedFusion, IdentityFusion, ModalityDropout, build_fusion
from mmcourse.models import LateFusionModel, MultimodalModel

DIMS = {"image": 4, "audio": 3}
B = 5


def _feats(b=B):
    g = torch.Generator().manual_seed(0)
    return {m: torch.randn(b, d, generator=g) for m, d in DIMS.items()}


def _fusion(name):
    kw = {"tensor": {"out_dim": 6}, "low_rank_tensor": {"out_dim": 6, "rank": 2}, "weighted": {"dim": 6},
          "gated": {"dim": 6}, "transformer": {"dim": 8, "heads": 2}}.get(name, {})
    return build_fusion(name, DIMS, **kw)


NAMES = ["concat", "weighted", "gated", "tensor", "low_rank_tensor", "transformer"]


@pytest.mark.parametrize("name", NAMES)
def test_present_typo_lists_the_valid_names(name):
    with pytest.raises(UnknownNameError, match=r"\['imgae'\].*valid names: \['audio', 'image'\]"):
        _fusion(name)(_feats(), {"imgae": torch.zeros(B, dtype=torch.bool)})


def test_float_mask_of_one_half_would_scale_features_and_is_refused():
    with pytest.raises(TypeError, match=r"present\['image'\] must be bool.*float32.*scale features"):
        _fusion("concat")(_feats(), {"image": torch.full((B,), 0.5)})


def test_int_mask_would_multiply_weighted_fusion_and_is_refused():
    with pytest.raises(TypeError, match=r"present\['image'\] must be bool.*int64"):
        _fusion("weighted")(_feats(), {"image": torch.tensor([2, 0, -1, 1, 1])})


def test_mask_longer_than_the_batch_is_refused_not_truncated():
    with pytest.raises(ValueError, match=r"present\['audio'\] must have shape \[B\] = \[5\], got \[8\]"):
        _fusion("gated")(_feats(), {"audio": torch.ones(8, dtype=torch.bool)})


def test_b_by_1_mask_in_a_fusion_suggests_squeeze():
    with pytest.raises(ValueError, match=r"present\['audio'\].*\[5, 1\].*squeeze\(1\)"):
        _fusion("tensor")(_feats(), {"audio": torch.ones(B, 1, dtype=torch.bool)})


def test_mask_on_another_device_is_refused():
    with pytest.raises(ValueError, match=r"present\['image'\] is on meta but the inputs are on cpu"):
        _fusion("concat")(_feats(), {"image": torch.ones(B, dtype=torch.bool, device="meta")})


def test_features_with_different_batch_sizes_are_named():
    feats = {"image": torch.randn(5, 4), "audio": torch.randn(4, 3)}
    with pytest.raises(ValueError, match=r"ConcatFusion: modalities have different batch sizes.*'audio': 4"):
        ConcatFusion(DIMS)(feats)


def test_integer_features_are_refused():
    feats = {"image": torch.ones(B, 4, dtype=torch.long), "audio": torch.randn(B, 3)}
    with pytest.raises(TypeError, match="GatedFusion: image features must be floating point, got torch.int64"):
        GatedFusion(DIMS, dim=6)(feats)


def test_identity_fusion_refuses_a_present_typo():
    with pytest.raises(UnknownNameError, match=r"\['imgae'\].*valid names: \['image'\]"):
        IdentityFusion()({"image": torch.randn(B, 4)}, {"imgae": torch.zeros(B, dtype=torch.bool)})


def test_modality_dropout_refuses_a_float_mask():
    fusion = ModalityDropout(ConcatFusion(DIMS), p=0.5).train()
    with pytest.raises(TypeError, match=r"present\['image'\] must be bool"):
        fusion(_feats(), {"image": torch.full((B,), 0.5)})


def _late():
    torch.manual_seed(0)
    encoders = {"image": nn.Sequential(nn.Flatten(), nn.Linear(12, 4)),
                "audio": nn.Sequential(nn.Flatten(), nn.Linear(6, 3))}
    heads = {"image": {"shape": nn.Linear(4, 3)}, "audio": {"shape": nn.Linear(3, 3)}}
    return LateFusionModel(encoders, heads)


def _late_inputs(b=B):
    return {"image": torch.randn(b, 3, 2, 2), "audio": torch.randn(b, 1, 2, 3)}


def test_late_fusion_present_typo_lists_the_valid_names():
    with pytest.raises(UnknownNameError, match=r"\['imgae'\].*valid names: \['audio', 'image'\]"):
        _late()(_late_inputs(), {"imgae": torch.zeros(B, dtype=torch.bool)})


def test_late_fusion_b_by_1_mask_suggests_squeeze():
    with pytest.raises(ValueError, match=r"present\['image'\].*\[5, 1\].*squeeze\(1\)"):
        _late()(_late_inputs(), {"image": torch.ones(B, 1, dtype=torch.bool)})


def test_late_fusion_float_mask_is_refused():
    with pytest.raises(TypeError, match=r"present\['audio'\] must be bool"):
        _late()(_late_inputs(), {"audio": torch.full((B,), 0.5)})


def test_late_fusion_mask_longer_than_the_batch_is_refused():
    with pytest.raises(ValueError, match=r"present\['audio'\] must have shape \[B\] = \[5\], got \[7\]"):
        _late()(_late_inputs(), {"audio": torch.ones(7, dtype=torch.bool)})


def test_late_fusion_modalities_of_different_lengths_are_named():
    inputs = {"image": torch.randn(5, 3, 2, 2), "audio": torch.randn(4, 1, 2, 3)}
    with pytest.raises(ValueError, match="same length.*image: 5, audio: 4"):
        _late()(inputs)


def test_late_fusion_good_mask_still_leaves_missing_modalities_out():
    model = _late()
    x = _late_inputs()
    only_image = model({"image": x["image"]})["shape"]
    masked = model(x, {"audio": torch.zeros(B, dtype=torch.bool)})["shape"]
    torch.testing.assert_close(masked, only_image)


def _model():
    torch.manual_seed(0)
    encoders = {"image": nn.Sequential(nn.Flatten(), nn.Linear(12, 4)),
                "audio": nn.Sequential(nn.Flatten(), nn.Linear(6, 3))}
    return MultimodalModel(encoders, ConcatFusion(DIMS), {"shape": nn.Linear(7, 3)})


def test_multimodal_model_present_typo_is_caught_by_its_fusion():
    with pytest.raises(UnknownNameError, match="imgae"):
        _model()(_late_inputs(), {"imgae": torch.zeros(B, dtype=torch.bool)})


def test_evaluate_present_typo_lists_the_valid_names():
    data = MultimodalDataset(_late_inputs(8), {"shape": torch.arange(8) % 3}, {"shape": ["a", "b", "c"]})
    with pytest.raises(UnknownNameError, match=r"\['imgae'\].*valid names: \['audio', 'image'\]"):
        evaluate(_model(), data, present={"imgae": False})
