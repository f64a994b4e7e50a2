"""Robustness diagnostics for multimodal models (chapter 9): missing modalities, noise sweeps, importance.

- ``missing_modality_eval``: accuracy with each modality, and each pair, dropped at test time (zeroed and
  marked absent in ``present`` — what ``fit(..., modality_dropout=p)`` trains for).
- ``noise_sweep``: accuracy as Gaussian noise of growing std is added to one modality (inputs are normalised
  to unit variance, so std 1 is noise as strong as the signal); for token ids, the fraction of real tokens
  replaced by random ones.
- ``permutation_importance``: how much accuracy drops when one modality's inputs are shuffled across samples
  (breaking its link to the label while keeping its distribution) — a model-agnostic importance score.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from mmcourse.batch import Batch
from mmcourse.engine import evaluate


def _view(data: Any, inputs: Mapping[str, Tensor]) -> Batch:
    """The same targets with replaced ``inputs`` (evaluate accepts any object with inputs/targets)."""
    return Batch(dict(inputs), dict(data.targets))


def _score(model: nn.Module, data: Any, metric: str, batch_size: int, **kw: Any) -> float:
    res = evaluate(model, data, batch_size=batch_size, **kw)
    if metric not in res:
        raise KeyError(f"metric {metric!r} not among the evaluation results {sorted(res)}")
    return float(res[metric])


def missing_modality_eval(model: nn.Module, data: Any, *, max_missing: int = 2, metric: str = "acc",
                          batch_size: int = 512) -> dict[tuple[str, ...], float]:
    """``{dropped modalities: metric}`` for dropping nothing, each modality, each pair, … up to ``max_missing``.

    Subsets that would drop every modality are skipped. Keys are sorted tuples (``()`` = nothing dropped).
    """
    names = sorted(data.inputs)
    out: dict[tuple[str, ...], float] = {}
    for k in range(0, min(max_missing, len(names) - 1) + 1):
        for dropped in itertools.combinations(names, k):
            present = {m: False for m in dropped} or None
            out[dropped] = _score(model, data, metric, batch_size, present=present)
    return out


def corrupt(x: Tensor, level: float, generator: torch.Generator, vocab_size: int | None = None) -> Tensor:
    """Float input: ``x + level * N(0, 1)``. Integer ids: each non-padding id replaced with probability
    ``level`` by a random id in ``[1, vocab_size)``."""
    if level < 0:
        raise ValueError(f"noise level must be >= 0, got {level}")
    if x.is_floating_point():
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return x + level * noise
    if not 0 <= level <= 1:
        raise ValueError(f"for token ids the noise level is a replacement probability in [0, 1], got {level}")
    vocab = vocab_size or int(x.max()) + 1
    hit = (torch.rand(x.shape, generator=generator, device=x.device) < level) & (x != 0)
    rand = torch.randint(1, max(vocab, 2), x.shape, generator=generator, device=x.device)
    return torch.where(hit, rand, x)


def noise_sweep(model: nn.Module, data: Any, modality: str, levels: Sequence[float], *, metric: str = "acc",
                seed: int = 0, batch_size: int = 512, vocab_size: int | None = None) -> list[float]:
    """The metric at each noise level applied to ``modality`` only (see :func:`corrupt`)."""
    if modality not in data.inputs:
        raise KeyError(f"no modality {modality!r} in the data; have {sorted(data.inputs)}")
    results = []
    for level in levels:
        g = torch.Generator(device=data.inputs[modality].device).manual_seed(seed)
        noisy = dict(data.inputs, **{modality: corrupt(data.inputs[modality], float(level), g, vocab_size)})
        results.append(_score(model, _view(data, noisy), metric, batch_size))
    return results


def permutation_importance(model: nn.Module, data: Any, *, metric: str = "acc", repeats: int = 1, seed: int = 0,
                           batch_size: int = 512) -> dict[str, float]:
    """``{modality: metric(original) - metric(modality shuffled across samples)}``, averaged over repeats."""
    base = _score(model, data, metric, batch_size)
    out = {}
    for m in sorted(data.inputs):
        drops = []
        for r in range(repeats):
            g = torch.Generator().manual_seed(seed + r)
            perm = torch.randperm(len(data.inputs[m]), generator=g).to(data.inputs[m].device)
            shuffled = dict(data.inputs, **{m: data.inputs[m][perm]})
            drops.append(base - _score(model, _view(data, shuffled), metric, batch_size))
        out[m] = sum(drops) / len(drops)
    return out


def plot_missing(results: Mapping[str, Mapping[tuple[str, ...], float]], ax: Any = None) -> Any:
    """Grouped bars: one group per dropped set, one bar per model (``{model name: missing_modality_eval}``)."""
    from mmcourse.analysis.plots import PALETTE, subplots

    keys = list(next(iter(results.values())))
    if ax is None:
        _, ax = subplots(size=(max(4.0, 0.8 * len(keys)), 3.2))
    width = 0.8 / len(results)
    for i, (name, res) in enumerate(results.items()):
        xs = [j + (i - (len(results) - 1) / 2) * width for j in range(len(keys))]
        ax.bar(xs, [res[k] for k in keys], width, label=name, color=PALETTE[i % len(PALETTE)],
               hatch="//" if i % 2 else None)
    ax.set_xticks(range(len(keys)), ["none" if not k else "−" + "−".join(k) for k in keys], rotation=30,
                  ha="right")
    ax.set(ylabel="test accuracy", xlabel="modalities dropped at test time", ylim=(0, 1))
    ax.legend()
    return ax
