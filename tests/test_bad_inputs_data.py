"""Bad values entering through datasets (mmcourse/data): refused at construction, in words, naming the culprit.

Values (label ranges, finiteness, token ids) are read once here, where data enters, so that no check has to
read them inside a training step.
"""

import pytest
import torch

from mmcourse.batch import IGNORE_INDEX, UnknownNameError
from mmcourse.data import MultimodalDataset
from mmcourse.data.dataset import TensorDictDataset, collate_batches, concat_datasets
from mmcourse.data.text import Vocab
from mmcourse.data.world import make_world, world_splits

N = 6
CLASSES = {"shape": ["a", "b", "c"]}


def _inputs(n=N):
    return {"image": torch.randn(n, 3, 8, 8), "audio": torch.randn(n, 1, 4, 4)}


def _labels(n=N):
    return {"shape": torch.arange(n) % 3}


def _ds(**kw):
    return MultimodalDataset(kw.get("inputs", _inputs()), kw.get("targets", _labels()), kw.get("classes", CLASSES),
                             vocab=kw.get("vocab"))


def test_good_dataset_is_accepted_with_unlabelled_samples():
    y = _labels()["shape"].clone()
    y[0] = IGNORE_INDEX
    ds = _ds(targets={"shape": y})
    assert len(ds) == N and int(ds.targets["shape"][0]) == IGNORE_INDEX


def test_uint8_images_are_refused_with_the_conversion():
    with pytest.raises(TypeError, match=r"inputs\['image'\].*uint8.*x.float\(\) / 255 and normalise"):
        _ds(inputs={"image": torch.zeros(N, 3, 8, 8, dtype=torch.uint8)})


def test_float64_images_are_accepted_by_the_dataset_but_int64_are_not():
    _ds(inputs={"image": torch.zeros(N, 3, 8, 8, dtype=torch.float64)})
    with pytest.raises(TypeError, match=r"inputs\['image'\].*int64"):
        _ds(inputs={"image": torch.zeros(N, 3, 8, 8, dtype=torch.int64)})


@pytest.mark.parametrize("dtype", [torch.float32, torch.int32])
def test_labels_of_wrong_dtype_name_the_task(dtype):
    with pytest.raises(TypeError, match=r"targets\['shape'\] must be int64.*y.long\(\)"):
        _ds(targets={"shape": torch.zeros(N, dtype=dtype)})


def test_labels_n_by_1_are_refused():
    with pytest.raises(ValueError, match=r"targets\['shape'\].*squeeze\(1\)"):
        _ds(targets={"shape": torch.zeros(N, 1, dtype=torch.long)})


def test_label_out_of_range_names_task_and_number_of_classes():
    with pytest.raises(ValueError, match="task 'shape' has label 7 but only 3 classes"):
        _ds(targets={"shape": torch.tensor([0, 1, 2, 7, 0, 1])})


def test_negative_label_other_than_minus_100_is_refused():
    with pytest.raises(ValueError, match=r"task 'shape' has label -1.*-100 \(IGNORE_INDEX\)"):
        _ds(targets={"shape": torch.tensor([0, 1, -1, 2, 0, 1])})


def test_nan_pixel_is_refused_at_construction():
    x = torch.randn(N, 3, 8, 8)
    x[2, 1, 3, 3] = float("nan")
    with pytest.raises(ValueError, match=r"inputs\['image'\] holds 1 non-finite"):
        _ds(inputs={"image": x})


def test_inf_audio_is_refused_at_construction():
    a = torch.randn(N, 1, 4, 4)
    a[0, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match=r"inputs\['audio'\] holds 1 non-finite"):
        _ds(inputs={"image": torch.randn(N, 3, 8, 8), "audio": a})


def test_modalities_of_different_lengths_are_named():
    with pytest.raises(ValueError, match="same length.*image: 6, audio: 5"):
        _ds(inputs={"image": torch.randn(6, 3, 8, 8), "audio": torch.randn(5, 1, 4, 4)})


def test_token_id_outside_the_vocabulary_is_refused():
    vocab = Vocab(["red", "blue"])
    text = torch.full((N, 4), len(vocab) + 3, dtype=torch.long)
    with pytest.raises(ValueError, match=rf"inputs\['text'\] holds token id {len(vocab) + 3}, outside the vocab"):
        _ds(inputs={"text": text}, vocab=vocab)


def test_class_names_given_as_a_string_are_refused():
    with pytest.raises(ValueError, match=r"classes\['shape'\] must be a list of class names, got 'abc'"):
        _ds(classes={"shape": "abc"})


def test_missing_class_names_name_the_task():
    with pytest.raises(ValueError, match=r"class names missing for task\(s\) \['shape'\]"):
        _ds(classes={"color": ["x"]})


@pytest.mark.parametrize("bad", [0, -2, True, 2.5])
def test_batches_refuse_a_bad_batch_size(bad):
    with pytest.raises(ValueError, match=rf"batch_size must be a positive int, got {bad!r}"):
        next(_ds().batches(bad))


def test_num_batches_refuses_zero_instead_of_dividing_by_it():
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        _ds().num_batches(0)


def test_select_unknown_modality_lists_the_valid_ones():
    with pytest.raises(KeyError, match=r"unknown modality \['imgae'\]"):
        _ds().select(modalities=["imgae"])


def test_world_refuses_a_string_of_modalities():
    with pytest.raises(TypeError, match=r"string 'image'.*5 one-letter names"):
        make_world(8, modalities="image")
    with pytest.raises(TypeError, match=r"string 'audio'"):
        world_splits(4, 2, 2, modalities="audio")


def test_world_unknown_modality_lists_the_valid_ones():
    with pytest.raises(UnknownNameError, match=r"\['smell'\].*valid names"):
        make_world(8, modalities=["image", "smell"])


def test_collate_float_labels_are_refused_naming_the_task():
    items = [({"image": torch.randn(3, 8, 8)}, {"shape": 1.0}), ({"image": torch.randn(3, 8, 8)}, {"shape": 0.0})]
    with pytest.raises(TypeError, match=r"targets\['shape'\] must be int64"):
        collate_batches(items)


def test_tensor_dict_dataset_refuses_different_lengths():
    with pytest.raises(ValueError, match="same length"):
        TensorDictDataset({"image": torch.randn(4, 3, 8, 8)}, {"shape": torch.zeros(5, dtype=torch.long)})


def test_concat_refuses_datasets_with_other_classes():
    other = MultimodalDataset(_inputs(), _labels(), {"shape": ["x", "y", "z"]})
    with pytest.raises(ValueError, match="same modalities, tasks and classes"):
        concat_datasets([_ds(), other])
