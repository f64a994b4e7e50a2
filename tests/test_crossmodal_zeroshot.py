"""mmcourse.crossmodal.zeroshot: prompts from templates, classification by prompt similarity, clear errors."""

import pytest
import torch

from mmcourse.crossmodal.zeroshot import ZeroShotClassifier, class_prompts, fill_template


def test_prompts_from_templates():
    assert class_prompts(["circle", "star"]) == ["a photo of a circle", "a photo of a star"]
    assert class_prompts(["red"], "a {color} thing") == ["a red thing"]
    assert fill_template("there is a {shape}", "ring") == "there is a ring"


def test_classifies_by_nearest_prompt_without_labels():
    g = torch.Generator().manual_seed(0)
    class_vecs = torch.randn(4, 8, generator=g)
    words = ["w0", "w1", "w2", "w3"]
    lookup = {f"a {w}": class_vecs[i] for i, w in enumerate(words)}
    lookup.update({f"the {w}": class_vecs[i] + 0.1 for i, w in enumerate(words)})
    calls = []

    def embed_text(prompts):
        calls.append(list(prompts))
        return torch.stack([lookup[p] for p in prompts])

    clf = ZeroShotClassifier.from_prompts(embed_text, words, templates=("a {}", "the {}"))
    assert calls == [["a w0", "a w1", "a w2", "a w3"], ["the w0", "the w1", "the w2", "the w3"]]
    y = torch.randint(0, 4, (64,), generator=g)
    z = class_vecs[y] * 3 + 0.2 * torch.randn(64, 8, generator=g)  # image embeddings near their class
    assert clf(z).shape == (64, 4) and clf.n_classes == 4
    assert clf.accuracy(z, y) > 0.95
    assert clf.accuracy(z, (y + 1) % 4) < 0.1


def test_bad_input():
    with pytest.raises(ValueError, match="empty list of class names"):
        class_prompts([])
    with pytest.raises(ValueError, match="at least one class prompt"):
        ZeroShotClassifier.from_prompts(lambda p: torch.randn(len(p), 4), [])
    with pytest.raises(ValueError, match="no prompt templates"):
        ZeroShotClassifier.from_prompts(lambda p: torch.randn(len(p), 4), ["a"], templates=())
    with pytest.raises(ValueError, match="exactly one placeholder"):
        class_prompts(["circle"], "a photo")
    with pytest.raises(ValueError, match=r"\[2, D\]"):
        ZeroShotClassifier.from_prompts(lambda p: torch.randn(3, 4), ["a", "b"])
    clf = ZeroShotClassifier(torch.randn(3, 4))
    with pytest.raises(ValueError, match=r"\[B, 4\]"):
        clf(torch.randn(2, 5))
    with pytest.raises(ValueError, match=r"C >= 1"):
        ZeroShotClassifier(torch.randn(0, 4))
