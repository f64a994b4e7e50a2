"""The simplest fusions and the helpers every fusion shares (chapter 9; chapters 0 and 5–8 use ``IdentityFusion``).

- ``IdentityFusion``: a unimodal model's "fusion" — pass the one modality's features through.
- ``ConcatFusion``: early/intermediate fusion by concatenation in sorted modality order (the source posts'
  "拼接融合").
- ``presence``: the ``[B, M]`` availability mask a fusion reads from absent keys and ``present``.

The fusion contract: ``fusion(feats, present) -> [B, out_dim]`` where ``feats`` maps modality names to
``[B, D_m]`` features (or ``[B, L, D_m]`` tokens for fusions with ``uses_tokens = True``), ``present`` maps
modality names to bool ``[B]`` (True = available) or is ``None``, and an absent key means the modality is
missing for the whole batch. Keys are always visited in sorted order, so dict insertion order never matters.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from mmcourse.batch import UnknownNameError, check_present


def sorted_dims(dims: Mapping[str, int], who: str) -> dict[str, int]:
    """``dims`` sorted by modality name, checked: at least one modality, positive int widths."""
    if not dims:
        raise ValueError(f"{who} needs dims={{modality: width}} for at least one modality, got {dict(dims)}")
    for m, d in dims.items():
        if not isinstance(d, int) or isinstance(d, bool) or d < 1:
            raise ValueError(f"{who}: width of {m!r} must be a positive int, got {d!r}")
    return dict(sorted(dims.items()))


def check_feats(feats: Mapping[str, Tensor], dims: Mapping[str, int], who: str, tokens: bool = False) -> Tensor:
    """Check modality names and widths; return one of the given tensors (for batch size/device/dtype)."""
    unknown = sorted(set(feats) - set(dims))
    if unknown:
        raise UnknownNameError(f"{who} got modalities {unknown} it was not built for; known: {list(dims)}")
    if not feats:
        raise ValueError(f"{who} got no modality at all; it expects some of {list(dims)}")
    sizes = {}
    for m in sorted(feats):
        x, d = feats[m], dims[m]
        if not isinstance(x, Tensor):
            raise TypeError(f"{who}: features of {m!r} must be a tensor, got {type(x).__name__}")
        sizes[m] = int(x.shape[0]) if x.dim() else 0
        ok_rank = x.dim() in ((2, 3) if tokens else (2,))
        if not ok_rank or x.shape[-1] != d:
            want = f"[B, {d}] or [B, L, {d}]" if tokens else f"[B, {d}]"
            raise ValueError(f"{who} expected {m} features of shape {want}, got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise TypeError(f"{who}: {m} features must be floating point, got {x.dtype}")
    if len(set(sizes.values())) > 1:
        raise ValueError(f"{who}: modalities have different batch sizes {sizes}; every modality needs the same "
                         "samples in the same order")
    if len({x.device for x in feats.values()}) > 1:
        raise ValueError(f"{who}: features live on different devices "
                         f"{ {m: str(x.device) for m, x in feats.items()} }")
    return feats[sorted(feats)[0]]


def presence(feats: Mapping[str, Tensor], present: Mapping[str, Tensor] | None, names: list[str]) -> Tensor:
    """Float ``[B, M]`` mask over ``names`` (sorted): 0 where a key is absent or ``present[m]`` is False."""
    ref = feats[sorted(feats)[0]]
    b = ref.shape[0]
    if present is not None:  # bool [B] masks of known modalities, on the features' device
        check_present(present, names, batch=b, device=ref.device)
    cols = []
    for m in names:
        if m not in feats:
            cols.append(ref.new_zeros(b))
        elif present is not None and m in present:
            cols.append(present[m].to(dtype=ref.dtype))
        else:
            cols.append(ref.new_ones(b))
    return torch.stack(cols, dim=1)  # [B, M]


def filled(feats: Mapping[str, Tensor], mask: Tensor, names: list[str], dims: Mapping[str, int]) -> list[Tensor]:
    """Per-modality ``[B, D_m]`` features with missing samples (mask 0) and absent modalities set to zero."""
    ref = feats[sorted(feats)[0]]
    out = []
    for j, m in enumerate(names):
        if m in feats:
            out.append(feats[m] * mask[:, j:j + 1])
        else:
            out.append(ref.new_zeros(ref.shape[0], dims[m]))
    return out


class IdentityFusion(nn.Module):
    """Pass through the features of the single modality a unimodal model has.

    Args:
        dim: optional feature width, exposed as ``out_dim`` (``None`` when unknown).
    """

    def __init__(self, dim: int | None = None):
        super().__init__()
        self.out_dim = dim

    def forward(self, feats: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None) -> Tensor:
        if len(feats) != 1:
            raise ValueError(f"IdentityFusion takes exactly one modality, got {sorted(feats)}; "
                             "use a real fusion (e.g. ConcatFusion) for several")
        x = next(iter(feats.values()))
        if present is not None:
            check_present(present, feats, batch=int(x.shape[0]), device=x.device)
        return x


class ConcatFusion(nn.Module):
    """Concatenate per-modality features in sorted modality order: ``[B, sum(D_m)]``.

    A missing modality (absent key, or ``present[m]`` False) is replaced by zeros of its width, so the
    model still runs; ``dims`` gives those widths.
    """

    def __init__(self, dims: Mapping[str, int]):
        super().__init__()
        self.dims = sorted_dims(dims, "ConcatFusion")
        self.out_dim = sum(self.dims.values())

    def forward(self, feats: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None) -> Tensor:
        check_feats(feats, self.dims, "ConcatFusion")
        names = list(self.dims)
        mask = presence(feats, present, names)  # [B, M]
        return torch.cat(filled(feats, mask, names, self.dims), dim=-1)  # [B, sum(D_m)]
