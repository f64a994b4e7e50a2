"""Bad values entering through ``Batch`` and the contract's helpers (mmcourse/batch.py) are refused in words.

Each case asserts the error type and that the message names the culprit (the modality, the task, the mask)
and, where there is one, the fix to write.
"""

import pytest
import torch

from mmcourse.batch import (
    IGNORE_INDEX,
    Batch,
    UnknownNameError,
    check_finite,
    check_label_values,
    check_present,
    mask_modalities,
    modality_names,
    present_matrix,
)

B = 4


def _inputs(b=B):
    return {"image": torch.randn(b, 3, 8, 8), "text": torch.ones(b, 5, dtype=torch.long)}


def _targets(b=B):
    return {"shape": torch.zeros(b, dtype=torch.long)}


def _ok_present(b=B):
    return {"image": torch.ones(b, dtype=torch.bool)}


def test_a_good_batch_passes():
    b = Batch(_inputs(), _targets(), _ok_present())
    assert len(b) == B and len(b.to("cpu")) == B


@pytest.mark.parametrize("dtype, fix", [(torch.uint8, r"x.float\(\) / 255"), (torch.int64, r"x.float\(\)"),
                                        (torch.bool, r"x.float\(\)")])
def test_image_of_wrong_dtype_names_the_conversion(dtype, fix):
    inputs = {**_inputs(), "image": torch.zeros(B, 3, 8, 8, dtype=dtype)}
    with pytest.raises(TypeError, match=rf"inputs\['image'\].*{fix}"):
        Batch(inputs, _targets())


def test_audio_int_is_refused():
    with pytest.raises(TypeError, match=r"inputs\['audio'\] must be a float"):
        Batch({"audio": torch.zeros(B, 1, 4, 4, dtype=torch.int16)}, _targets())


def test_float_text_is_refused_with_the_fix():
    with pytest.raises(TypeError, match=r"inputs\['text'\] must hold int64 token ids.*x.long\(\)"):
        Batch({"text": torch.ones(B, 5)}, _targets())


@pytest.mark.parametrize("dtype, fix", [(torch.float32, r"y.argmax\(1\).*y.long\(\)"), (torch.int32, r"y.long\(\)"),
                                        (torch.uint8, r"y.long\(\)")])
def test_labels_of_wrong_dtype_name_the_task_and_conversion(dtype, fix):
    with pytest.raises(TypeError, match=rf"targets\['shape'\] must be int64.*{fix}"):
        Batch(_inputs(), {"shape": torch.zeros(B, dtype=dtype)})


def test_labels_of_shape_n_by_1_suggest_squeeze():
    with pytest.raises(ValueError, match=r"targets\['shape'\] has shape \[4, 1\].*squeeze\(1\)"):
        Batch(_inputs(), {"shape": torch.zeros(B, 1, dtype=torch.long)})


def test_one_hot_labels_suggest_argmax():
    with pytest.raises(ValueError, match=r"targets\['shape'\].*\[4, 10\].*argmax"):
        Batch(_inputs(), {"shape": torch.zeros(B, 10, dtype=torch.long)})


def test_modalities_of_different_lengths_are_named():
    inputs = {"image": torch.randn(4, 3, 8, 8), "text": torch.ones(3, 5, dtype=torch.long)}
    with pytest.raises(ValueError, match="same length.*image: 4, text: 3"):
        Batch(inputs, _targets())


def test_targets_of_another_length_name_the_task():
    with pytest.raises(ValueError, match="same length.*task 'shape': 5"):
        Batch(_inputs(), _targets(5))


def test_inputs_not_a_dict():
    with pytest.raises(TypeError, match="inputs must be a dict"):
        Batch(torch.randn(B, 3, 8, 8), _targets())


def test_input_not_a_tensor_is_named():
    with pytest.raises(TypeError, match=r"inputs\['image'\] must be a torch.Tensor, got ndarray"):
        Batch({"image": torch.randn(B, 3).numpy()}, _targets())


def test_scalar_input_is_refused():
    with pytest.raises(ValueError, match=r"inputs\['image'\] is a scalar"):
        Batch({"image": torch.tensor(1.0)}, {})


def test_present_key_typo_lists_the_valid_names():
    with pytest.raises(UnknownNameError, match=r"\['imgae'\].*valid names: \['image', 'text'\]"):
        Batch(_inputs(), _targets(), {"imgae": torch.zeros(B, dtype=torch.bool)})


def test_unknown_name_error_is_a_key_and_value_error_without_quotes():
    err = UnknownNameError("unknown modality ['x']")
    assert isinstance(err, KeyError) and isinstance(err, ValueError) and str(err) == "unknown modality ['x']"


def test_float_present_mask_is_refused():
    with pytest.raises(TypeError, match=r"present\['image'\] must be bool.*float32.*mask > 0.5"):
        Batch(_inputs(), _targets(), {"image": torch.full((B,), 0.5)})


def test_int_present_mask_is_refused():
    with pytest.raises(TypeError, match=r"present\['image'\] must be bool.*int64"):
        Batch(_inputs(), _targets(), {"image": torch.tensor([2, 0, -1, 1])})


def test_present_mask_longer_than_the_batch_is_refused():
    with pytest.raises(ValueError, match=r"present\['image'\] must have shape \[B\] = \[4\], got \[6\]"):
        Batch(_inputs(), _targets(), {"image": torch.ones(6, dtype=torch.bool)})


def test_present_mask_b_by_1_suggests_squeeze():
    with pytest.raises(ValueError, match=r"present\['image'\].*\[4, 1\].*squeeze\(1\)"):
        Batch(_inputs(), _targets(), {"image": torch.ones(B, 1, dtype=torch.bool)})


def test_present_mask_as_a_python_bool_is_refused():
    with pytest.raises(TypeError, match=r"present\['image'\] must be a bool tensor of shape \[B\], got bool"):
        Batch(_inputs(), _targets(), {"image": False})


def test_present_on_another_device_is_refused():
    mask = torch.ones(B, dtype=torch.bool, device="meta")
    with pytest.raises(ValueError, match=r"present\['image'\] is on meta but the inputs are on cpu"):
        check_present({"image": mask}, _inputs())


def test_inputs_on_different_devices_are_refused():
    inputs = {"image": torch.randn(B, 3, 8, 8), "text": torch.ones(B, 5, dtype=torch.long, device="meta")}
    with pytest.raises(ValueError, match="different devices.*image.*cpu.*text.*meta"):
        Batch(inputs, _targets())


def test_mask_modalities_refuses_a_typo_and_a_float_mask():
    with pytest.raises(UnknownNameError, match="imgae"):
        mask_modalities(_inputs(), {"imgae": torch.zeros(B, dtype=torch.bool)})
    with pytest.raises(TypeError, match="must be bool"):
        mask_modalities(_inputs(), {"image": torch.zeros(B)})


def test_present_matrix_refuses_a_float_mask_instead_of_rounding_it():
    with pytest.raises(TypeError, match=r"present\['image'\] must be bool"):
        present_matrix(["image", "text"], {"image": torch.full((B,), 0.5)}, B, torch.device("cpu"))


def test_modality_names_refuses_a_bare_string():
    with pytest.raises(TypeError, match=r"string 'image'.*5 one-letter names.*\['image'\]"):
        modality_names("image")


def test_modality_names_refuses_duplicates_and_non_strings():
    with pytest.raises(ValueError, match="twice"):
        modality_names(["image", "image"])
    with pytest.raises(TypeError, match="names"):
        modality_names(["image", 3])


def test_label_minus_100_means_unlabelled_and_is_accepted():
    check_label_values({"shape": torch.tensor([0, IGNORE_INDEX, 9])}, {"shape": 10})


def test_other_negative_label_is_refused_naming_the_task():
    with pytest.raises(ValueError, match=r"task 'shape' has label -1.*0..9.*-100"):
        check_label_values({"shape": torch.tensor([0, -1, 3])}, {"shape": 10})


def test_label_out_of_range_names_task_and_classes():
    with pytest.raises(ValueError, match="task 'shape' has label 14 but only 10 classes"):
        check_label_values({"shape": torch.tensor([0, 14, 3])}, {"shape": 10})


@pytest.mark.parametrize("bad, word", [(float("nan"), "1 NaN"), (float("inf"), "1 inf")])
def test_non_finite_input_is_named_and_counted(bad, word):
    x = torch.randn(B, 3, 8, 8)
    x[1, 0, 2, 2] = bad
    with pytest.raises(ValueError, match=rf"inputs\['image'\] holds 1 non-finite values.*{word}"):
        check_finite({"image": x, "text": torch.ones(B, 5, dtype=torch.long)})


def test_checks_on_the_training_path_read_no_values(monkeypatch):
    """Batch, encoder, fusion and late-fusion checks use shapes and dtypes only: no value reaches the host
    (on a GPU each read would be a synchronisation inside the training step)."""
    from torch import nn

    from mmcourse.encoders import AudioCNN, SmallCNN
    from mmcourse.fusion import GatedFusion
    from mmcourse.models import LateFusionModel, MultimodalModel

    torch.manual_seed(0)
    model = MultimodalModel({"image": SmallCNN(width=2, out_dim=4), "audio": AudioCNN(out_dim=3, width=2)},
                            GatedFusion({"image": 4, "audio": 3}, dim=4), {"shape": nn.Linear(4, 3)})
    late = LateFusionModel({"image": nn.Flatten(), "audio": nn.Flatten()},
                           {"image": {"shape": nn.Linear(192, 3)}, "audio": {"shape": nn.Linear(16, 3)}})
    inputs = {"image": torch.randn(B, 3, 8, 8), "audio": torch.randn(B, 1, 4, 4)}
    present = {"audio": torch.tensor([True, False, True, True])}

    def no_reads(*a, **k):
        raise AssertionError("a check read a tensor value (a host synchronisation on a GPU)")

    for name in ("item", "tolist", "__bool__", "__int__", "__float__", "__index__"):
        monkeypatch.setattr(torch.Tensor, name, no_reads)
    batch = Batch(inputs, _targets(), present)
    model(batch.inputs, batch.present)["shape"].sum().backward()
    late(batch.inputs, batch.present)


def test_evaluate_refuses_a_per_sample_mask_longer_than_the_data_or_not_bool():
    from mmcourse.data.dataset import MultimodalDataset
    from mmcourse.engine import evaluate
    from mmcourse.fusion.basic import ConcatFusion
    from mmcourse.models import MultimodalModel

    x = {"a": torch.randn(6, 3), "b": torch.randn(6, 2)}
    data = MultimodalDataset(x, {"label": torch.tensor([0, 1, 0, 1, 0, 1])}, {"label": ["n", "y"]})
    model = MultimodalModel({"a": torch.nn.Identity(), "b": torch.nn.Identity()}, ConcatFusion({"a": 3, "b": 2}),
                            {"label": torch.nn.Linear(5, 2)})
    with pytest.raises(ValueError, match=r"present\['a'\].*\[6\]"):
        evaluate(model, data, present={"a": torch.ones(9, dtype=torch.bool)})
    with pytest.raises(TypeError, match=r"present\['a'\].*bool"):
        evaluate(model, data, present={"a": torch.full((6,), 0.5)})
    assert evaluate(model, data, present={"a": torch.tensor([True, False] * 3)})["acc"] >= 0
