"""Cross-modal transfer (chapter 10): a classifier trained on one modality's embeddings, used on another's.

In a shared space a caption of a circle and an image of a circle land near each other, so a linear
classifier fitted only on *text* embeddings (with the text's labels) can classify *image* embeddings it has
never seen, unchanged. The classifier sees unit-length embeddings, so the two modalities' scales match.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmcourse.probe import linear_probe


class EmbeddingClassifier(nn.Module):
    """``logits = W · normalize(z) + b``: a linear classifier on the unit sphere of the shared space."""

    def __init__(self, dim: int, n_classes: int):
        super().__init__()
        self.dim = dim
        self.linear = nn.Linear(dim, n_classes)

    def forward(self, z: Tensor) -> Tensor:
        if z.dim() != 2 or z.shape[1] != self.dim:
            raise ValueError(f"EmbeddingClassifier expects [B, {self.dim}] embeddings, got {list(z.shape)}")
        return self.linear(F.normalize(z, dim=-1))


def _check_xy(z: Tensor, y: Tensor, who: str) -> None:
    if z.dim() != 2:
        raise ValueError(f"{who} embeddings must be [N, D], got {list(z.shape)}")
    if y.shape != (z.shape[0],):
        raise ValueError(f"{who} labels must be [{z.shape[0]}] to match the embeddings, got {list(y.shape)}")


def fit_embedding_classifier(z: Tensor, y: Tensor, n_classes: int, *, steps: int = 200, lr: float = 0.05,
                             weight_decay: float = 1e-4) -> EmbeddingClassifier:
    """Fit an :class:`EmbeddingClassifier` on ``z [N, D]``, ``y [N]``: the course's linear probe
    (:func:`mmcourse.probe.linear_probe`) on the unit-length embeddings, without standardisation (so the
    other modality's embeddings, on the same sphere, meet the same classifier)."""
    _check_xy(z, y, "training")
    if n_classes < 2:
        raise ValueError(f"n_classes must be >= 2, got {n_classes}")
    probe = linear_probe(F.normalize(z.detach().float(), dim=-1), y, num_classes=n_classes, steps=steps, lr=lr,
                         weight_decay=weight_decay, standardize=False)
    clf = EmbeddingClassifier(z.shape[1], n_classes).to(z.device)
    clf.linear = probe.to_linear()
    return clf.eval()


@torch.no_grad()
def accuracy(clf: nn.Module, z: Tensor, y: Tensor) -> float:
    """Fraction of rows of ``z`` that ``clf`` labels as ``y``."""
    _check_xy(z, y, "evaluation")
    return float((clf(z.float()).argmax(-1) == y.to(z.device)).float().mean())


def cross_modal_transfer(source_train: Tensor, y_train: Tensor, source_test: Tensor, target_test: Tensor,
                         y_test: Tensor, n_classes: int, *, names: tuple[str, str] = ("text", "image"),
                         steps: int = 200, lr: float = 0.05) -> dict[str, float]:
    """Train on ``source_train`` embeddings; report accuracy on held-out source and target embeddings.

    Returns ``{"text→text": acc, "text→image": acc}`` (with the given ``names``): the first is the usual
    within-modality accuracy, the second the transfer to a modality the classifier never saw.
    """
    if source_test.shape[1:] != target_test.shape[1:] or source_train.shape[1:] != target_test.shape[1:]:
        raise ValueError(f"source and target embeddings must share the space: got dims "
                         f"{source_train.shape[1:]}, {source_test.shape[1:]}, {target_test.shape[1:]}")
    clf = fit_embedding_classifier(source_train, y_train, n_classes, steps=steps, lr=lr)
    src, tgt = names
    return {f"{src}→{src}": accuracy(clf, source_test, y_test), f"{src}→{tgt}": accuracy(clf, target_test, y_test)}
