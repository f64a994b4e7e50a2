"""mmcourse.crossmodal.transfer: a classifier fitted on one modality's embeddings works on the other's."""

import pytest
import torch

from mmcourse.crossmodal.transfer import accuracy, cross_modal_transfer, fit_embedding_classifier


def shared_space(n, seed):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(5, 16, generator=torch.Generator().manual_seed(99))
    y = torch.randint(0, 5, (n,), generator=g)
    text = centres[y] + 0.3 * torch.randn(n, 16, generator=g)
    image = 2.0 * centres[y] + 0.5 * torch.randn(n, 16, generator=g) + 0.3  # other scale, small offset
    return text, image, y


def test_text_trained_classifier_transfers_to_images():
    t_train, _, y_train = shared_space(300, 0)
    t_test, i_test, y_test = shared_space(200, 1)
    res = cross_modal_transfer(t_train, y_train, t_test, i_test, y_test, 5)
    assert set(res) == {"text→text", "text→image"}
    assert res["text→text"] > 0.9 and res["text→image"] > 0.8, res


def test_unrelated_target_space_is_at_chance():
    t_train, _, y_train = shared_space(300, 0)
    _, _, y_test = shared_space(400, 1)
    clf = fit_embedding_classifier(t_train, y_train, 5)
    noise = torch.randn(400, 16, generator=torch.Generator().manual_seed(5))
    assert accuracy(clf, noise, y_test) < 0.35


def test_bad_input():
    with pytest.raises(ValueError, match="labels must be"):
        fit_embedding_classifier(torch.randn(10, 4), torch.zeros(9, dtype=torch.long), 3)
    with pytest.raises(ValueError, match="share the space"):
        cross_modal_transfer(torch.randn(10, 4), torch.zeros(10, dtype=torch.long), torch.randn(5, 4),
                             torch.randn(5, 3), torch.zeros(5, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="n_classes"):
        fit_embedding_classifier(torch.randn(10, 4), torch.zeros(10, dtype=torch.long), 1)
