"""``compare_fusions``: train every fusion method over several seeds and tabulate the results (chapter 8).

One call builds, for each method, a model from fresh encoders (``make_encoders()``), trains it with
``mmcourse.engine.fit`` for each seed, and measures on the test split: accuracy of the main task (mean ± std
over seeds), trainable parameters, training time, inference latency (median over a few timed batches) and
peak memory. Methods are fusion names from ``mmcourse.fusion.build_fusion``, ``"late"`` (per-modality heads,
logits averaged: ``LateFusionModel``) and ``"only:<modality>"`` (a unimodal baseline).

Peak memory: on CUDA, ``torch.cuda.max_memory_allocated`` during one training step. Elsewhere it is the bytes
of the parameters, their gradients and two Adam moments plus the activations autograd saves for the backward
pass of one training batch — measured with ``saved_tensors_hooks``, not estimated.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from mmcourse.engine import evaluate, fit
from mmcourse.fusion.basic import IdentityFusion
from mmcourse.fusion.registry import build_fusion
from mmcourse.models import LateFusionModel, MultimodalModel, count_parameters
from mmcourse.runtime import seed_everything

COLUMNS = ("method", "acc_mean", "acc_std", "params", "train_s", "latency_ms", "peak_mem_mib")


def make_head(in_dim: int, n_classes: int, hidden: int = 64) -> nn.Module:
    """A small MLP head ``[B, in_dim] -> [B, n_classes]`` (linear when ``hidden`` is 0)."""
    if hidden <= 0:
        return nn.Linear(in_dim, n_classes)
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, n_classes))


def build_model(method: str, encoders: Mapping[str, nn.Module], num_classes: Mapping[str, int], *,
                head_hidden: int = 64, fusion_kwargs: Mapping[str, Any] | None = None) -> nn.Module:
    """The model for ``method`` ("only:<m>", "late" or a fusion name) on the given fresh encoders."""
    dims = {m: int(e.out_dim) for m, e in encoders.items()}
    if method.startswith("only:"):
        m = method.split(":", 1)[1]
        if m not in encoders:
            raise ValueError(f"method {method!r}: no encoder for {m!r}; have {sorted(encoders)}")
        heads = {t: make_head(dims[m], c, head_hidden) for t, c in num_classes.items()}
        return MultimodalModel({m: encoders[m]}, IdentityFusion(dims[m]), heads)
    if method == "late":
        heads = {m: {t: make_head(d, c, head_hidden) for t, c in num_classes.items()} for m, d in dims.items()}
        return LateFusionModel(encoders, heads)
    fusion = build_fusion(method, dims, **dict(fusion_kwargs or {}))
    heads = {t: make_head(fusion.out_dim, c, head_hidden) for t, c in num_classes.items()}
    return MultimodalModel(encoders, fusion, heads)


def _first_batch(data: Any, n: int, device: torch.device) -> tuple[dict, dict]:
    inputs = {k: v[:n].to(device) for k, v in data.inputs.items()}
    targets = {k: v[:n].to(device) for k, v in data.targets.items()}
    return inputs, targets


def training_memory_mib(model: nn.Module, inputs: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor]
                        ) -> float:
    """Peak memory of one training step in MiB (CUDA: measured by the allocator; else params×4 + saved)."""
    dev = next(model.parameters()).device
    model.train()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
        out = model(inputs)
        sum(nn.functional.cross_entropy(out[t], targets[t]) for t in out if t in targets).backward()
        model.zero_grad(set_to_none=True)
        return (torch.cuda.max_memory_allocated(dev) - base) / 2**20 + 3 * _param_bytes(model) / 2**20
    saved = [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(inputs)
    loss = sum(nn.functional.cross_entropy(out[t], targets[t]) for t in out if t in targets)
    loss.backward()
    model.zero_grad(set_to_none=True)
    return (4 * _param_bytes(model) + saved[0]) / 2**20


def _param_bytes(model: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


@torch.no_grad()
def inference_latency_ms(model: nn.Module, inputs: Mapping[str, torch.Tensor], repeats: int = 5) -> float:
    """Median wall time of one forward pass on ``inputs`` in milliseconds (after one warm-up)."""
    model.eval()
    dev = next(model.parameters()).device
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda *a: None)
    model(inputs)
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        model(inputs)
        sync()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


@dataclass
class FusionComparison:
    """The result of :func:`compare_fusions`: one row per method, per-seed accuracies, and the last models."""

    rows: list[dict[str, Any]]
    accs: dict[str, list[float]]
    models: dict[str, nn.Module] = field(default_factory=dict, repr=False)
    task: str = "shape"

    def row(self, method: str) -> dict[str, Any]:
        for r in self.rows:
            if r["method"] == method:
                return r
        raise KeyError(f"no method {method!r} in this comparison; have {[r['method'] for r in self.rows]}")

    def acc(self, method: str) -> float:
        """Mean test accuracy of ``method``."""
        return float(self.row(method)["acc_mean"])

    def best(self, methods: Sequence[str] | None = None) -> str:
        """The method with the highest mean accuracy (among ``methods`` if given)."""
        pool = [r for r in self.rows if methods is None or r["method"] in methods]
        if not pool:
            raise ValueError(f"none of {methods} is in this comparison")
        return max(pool, key=lambda r: r["acc_mean"])["method"]

    def to_markdown(self) -> str:
        head = ("| method | accuracy | params | train s | latency ms | peak MiB |\n"
                "|---|---|---|---|---|---|\n")
        lines = [f"| {r['method']} | {r['acc_mean']:.1%} ± {r['acc_std']:.1%} | {r['params']:,} | "
                 f"{r['train_s']:.1f} | {r['latency_ms']:.2f} | {r['peak_mem_mib']:.1f} |" for r in self.rows]
        return head + "\n".join(lines)

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def __str__(self) -> str:
        return self.to_markdown()

    def plot(self, ax: Any = None) -> Any:
        """Bar chart of accuracy (mean ± std over seeds) per method; unimodal baselines in grey."""
        from mmcourse.analysis.plots import PALETTE, subplots

        if ax is None:
            _, ax = subplots(size=(max(4.0, 0.7 * len(self.rows)), 3.2))
        names = [r["method"] for r in self.rows]
        colors = ["#999999" if n.startswith("only:") else PALETTE[0] if n != "late" else PALETTE[1] for n in names]
        ax.bar(range(len(names)), [r["acc_mean"] for r in self.rows], yerr=[r["acc_std"] for r in self.rows],
               color=colors, capsize=3)
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
        ax.set(ylabel=f"test accuracy ({self.task})", ylim=(0, 1), title="fusion methods (mean ± std over seeds)")
        return ax


def compare_fusions(methods: Sequence[str], train: Any, test: Any, make_encoders: Callable[[], Mapping[str, nn.Module]],
                    *, val: Any = None, seeds: Sequence[int] = (0, 1), epochs: int = 4, lr: float = 3e-3,
                    batch_size: int = 128, weight_decay: float = 1e-4, head_hidden: int = 64,
                    fusion_kwargs: Mapping[str, Mapping[str, Any]] | None = None, task: str | None = None,
                    modality_dropout: float = 0.0, method_lr: Mapping[str, float] | None = None,
                    warmup: float = 0.0, device: torch.device | str | None = None,
                    keep_models: bool = True, progress: bool = False) -> FusionComparison:
    """Train each method in ``methods`` once per seed on ``train``; measure it on ``test``.

    Args:
        methods: fusion names (``build_fusion``), ``"late"`` or ``"only:<modality>"``.
        train, test: ``MultimodalDataset``s; their ``targets`` give the tasks (all are trained; ``task``,
            default ``"shape"`` if present else the first, is the one reported). ``val`` is passed to ``fit``.
        make_encoders: returns fresh encoders ``{modality: encoder}`` (each with ``out_dim``) for the
            modalities of ``train``; called once per model.
        seeds: one training run per seed (``seed_everything(seed)`` before the model is built).
        fusion_kwargs: ``{method: {argument: value}}`` for ``build_fusion``.
        modality_dropout, warmup: passed to ``fit``.
        method_lr: ``{method: learning rate}`` overriding ``lr`` for some methods (attention-based fusions
            often want a smaller one).
        keep_models: keep the last seed's model of each method in ``.models``.
    """
    if not methods:
        raise ValueError("compare_fusions needs at least one method, e.g. ['concat', 'late', 'only:audio']")
    if not seeds:
        raise ValueError("compare_fusions needs at least one seed")
    tasks = list(train.targets)
    task = task or ("shape" if "shape" in tasks else tasks[0])
    num_classes = {t: int(train.targets[t].max()) + 1 for t in tasks}
    if getattr(train, "classes", None):
        num_classes = {t: len(train.classes[t]) if t in train.classes else c for t, c in num_classes.items()}
    rows, accs, models = [], {}, {}
    for method in methods:
        accs[method], times, model = [], [], None
        for seed in seeds:
            seed_everything(seed)
            encoders = dict(make_encoders())
            if method.startswith("only:"):
                keep = method.split(":", 1)[1]
                encoders = {m: e for m, e in encoders.items() if m == keep}
            model = build_model(method, encoders, num_classes, head_hidden=head_hidden,
                                fusion_kwargs=(fusion_kwargs or {}).get(method))
            tr, te = train, test
            if method.startswith("only:"):
                tr, te = train.select(modalities=list(encoders)), test.select(modalities=list(encoders))
            t0 = time.perf_counter()
            fit(model, tr, val, epochs=epochs, lr=(method_lr or {}).get(method, lr), batch_size=batch_size,
                weight_decay=weight_decay, warmup=warmup, device=device, progress=progress, seed=seed,
                modality_dropout=modality_dropout)
            times.append(time.perf_counter() - t0)
            accs[method].append(float(evaluate(model, te, device=device)[f"acc/{task}"]))
        dev = next(model.parameters()).device
        inputs, targets = _first_batch(te, batch_size, dev)
        rows.append({
            "method": method,
            "acc_mean": statistics.fmean(accs[method]),
            "acc_std": statistics.stdev(accs[method]) if len(accs[method]) > 1 else 0.0,
            "params": count_parameters(model, trainable_only=True),
            "train_s": statistics.fmean(times),
            "latency_ms": inference_latency_ms(model, inputs),
            "peak_mem_mib": training_memory_mib(model, inputs, targets),
        })
        if keep_models:
            models[method] = model.eval()
    return FusionComparison(rows, accs, models, task)
