"""``compare_fusions``: train every fusion method over several seeds and tabulate the results (chapter 9).

One call builds, for each method, a model from fresh encoders (``make_encoders()``) with the course's one
builder (``build_model(ModelSpec(...), encoders)``), trains it with ``mmcourse.engine.fit`` for each seed, and
measures on the test split: accuracy of the main task (mean ± std over seeds), trainable parameters, training
time, inference latency (median over a few timed batches) and peak memory. Methods are fusion names from
``mmcourse.fusion.build_fusion``, ``"late"`` (per-modality heads, logits averaged: ``LateFusionModel``) and
``"only:<modality>"`` (a unimodal baseline).

Peak memory: on CUDA, ``torch.cuda.max_memory_allocated`` during one training step. Elsewhere it is the bytes
of the parameters, their gradients and two Adam moments plus the activations autograd saves for the backward
pass of one training batch — measured with ``saved_tensors_hooks``, not estimated. It is measured on a copy
of the trained model and a *training* batch, so the returned model never sees test data in train mode (batch
norm would absorb its statistics).
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from mmcourse.engine import FitConfig, evaluate, fit
from mmcourse.engine.history import History
from mmcourse.engine.optim import OptimizerSpec
from mmcourse.models import ModelSpec, build_model, count_parameters
from mmcourse.runtime import seed_everything

COLUMNS = ("method", "acc_mean", "acc_std", "params", "train_s", "latency_ms", "peak_mem_mib")


def method_spec(method: str, num_classes: Mapping[str, int], *, head_hidden: int = 64,
                fusion_kwargs: Mapping[str, Any] | None = None) -> ModelSpec:
    """The :class:`ModelSpec` of a method: ``"only:<m>"`` (one modality, identity fusion), ``"late"`` or a
    fusion name; heads are ``Linear → ReLU → Linear`` of width ``head_hidden`` (linear when 0)."""
    if method.startswith("only:"):
        return ModelSpec(classes=dict(num_classes), modalities=(method.split(":", 1)[1],), fusion="identity",
                         head_hidden=head_hidden)
    return ModelSpec(classes=dict(num_classes), fusion=method, fusion_kwargs=dict(fusion_kwargs or {}),
                     head_hidden=head_hidden)


def build_method(method: str, encoders: Mapping[str, nn.Module], num_classes: Mapping[str, int], *,
                 head_hidden: int = 64, fusion_kwargs: Mapping[str, Any] | None = None) -> nn.Module:
    """The model for ``method`` ("only:<m>", "late" or a fusion name) on the given fresh encoders."""
    if method.startswith("only:") and method.split(":", 1)[1] not in encoders:
        raise ValueError(f"method {method!r}: no encoder for {method.split(':', 1)[1]!r}; have {sorted(encoders)}")
    spec = method_spec(method, num_classes, head_hidden=head_hidden, fusion_kwargs=fusion_kwargs)
    return build_model(spec, encoders)


def _first_batch(data: Any, n: int, device: torch.device) -> tuple[dict, dict]:
    inputs = {k: v[:n].to(device) for k, v in data.inputs.items()}
    targets = {k: v[:n].to(device) for k, v in data.targets.items()}
    return inputs, targets


def training_memory_mib(model: nn.Module, inputs: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor]
                        ) -> float:
    """Peak memory of one training step in MiB (CUDA: measured by the allocator; else params×4 + saved).

    The step runs on a copy of ``model`` in train mode, so ``model`` itself (its weights, batch-norm
    statistics and mode) is left exactly as it was.
    """
    model = copy.deepcopy(model).train()
    dev = next(model.parameters()).device
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
        out = model(inputs)
        sum(nn.functional.cross_entropy(out[t], targets[t]) for t in out if t in targets).backward()
        return (torch.cuda.max_memory_allocated(dev) - base) / 2**20 + 3 * _param_bytes(model) / 2**20
    saved = [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(inputs)
    loss = sum(nn.functional.cross_entropy(out[t], targets[t]) for t in out if t in targets)
    loss.backward()
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
    """The result of :func:`compare_fusions`: one row per method, per-seed accuracies, and the models.

    ``models[method]`` is the last seed's model, ``models_per_seed[method]`` every seed's (in ``seeds``
    order), ``specs[method]`` the :class:`ModelSpec` they were built from (their encoders were passed in),
    ``histories[method]`` every seed's training :class:`~mmcourse.engine.history.History` (the learning curves).
    """

    rows: list[dict[str, Any]]
    accs: dict[str, list[float]]
    models: dict[str, nn.Module] = field(default_factory=dict, repr=False)
    task: str = "shape"
    models_per_seed: dict[str, list[nn.Module]] = field(default_factory=dict, repr=False)
    specs: dict[str, ModelSpec] = field(default_factory=dict, repr=False)
    histories: dict[str, list[History]] = field(default_factory=dict, repr=False)

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

    def _repr_html_(self) -> str:
        """The table as HTML: what the book and JupyterLab show (a real table, also in the dark theme)."""
        import html

        head, _, *body = [[html.escape(c.strip()) for c in ln.strip("|").split("|")]
                          for ln in self.to_markdown().splitlines()]
        row = lambda cells, tag: "<tr>" + "".join(f"<{tag}>{c}</{tag}>" for c in cells) + "</tr>"
        return (f'<div class="mmcourse-table"><table><thead>{row(head, "th")}</thead><tbody>'
                + "".join(row(r, "td") for r in body) + "</tbody></table></div>")

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
                    warmup: float = 0.0, schedule: str = "cosine", clip_grad: float | None = None,
                    optimizer: OptimizerSpec = "adamw", config: FitConfig | None = None,
                    device: torch.device | str | None = None, keep_models: bool = True,
                    progress: bool = False) -> FusionComparison:
    """Train each method in ``methods`` once per seed on ``train``; measure it on ``test``.

    Args:
        methods: fusion names (``build_fusion``), ``"late"`` or ``"only:<modality>"``.
        train, test: ``MultimodalDataset``s; their ``targets`` give the tasks (all are trained; ``task``,
            default ``"shape"`` if present else the first, is the one reported). ``val`` is passed to ``fit``.
        make_encoders: returns fresh encoders ``{modality: encoder}`` (each with ``out_dim``) for the
            modalities of ``train``; called once per model.
        seeds: one training run per seed (``seed_everything(seed)`` before the model is built).
        fusion_kwargs: ``{method: {argument: value}}`` for ``build_fusion``.
        epochs, lr, batch_size, weight_decay, modality_dropout, warmup, schedule, clip_grad, optimizer: passed
            to ``fit`` (over ``config``, a :class:`FitConfig` for every other setting).
        method_lr: ``{method: learning rate}`` overriding ``lr`` for some methods (attention-based fusions
            often want a smaller one).
        keep_models: keep the models (``.models``: the last seed's; ``.models_per_seed``: all).
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
    base = FitConfig.make(config, {"epochs": epochs, "batch_size": batch_size, "weight_decay": weight_decay,
                                   "warmup": warmup, "schedule": schedule, "clip_grad": clip_grad,
                                   "modality_dropout": modality_dropout, "progress": progress,
                                   **({"device": str(device)} if device is not None else {})})
    rows, accs, models, per_seed, specs, histories = [], {}, {}, {}, {}, {}
    for method in methods:
        accs[method], times, trained, histories[method] = [], [], [], []
        specs[method] = method_spec(method, num_classes, head_hidden=head_hidden,
                                    fusion_kwargs=(fusion_kwargs or {}).get(method))
        tr, te = train, test
        if method.startswith("only:"):
            keep = [method.split(":", 1)[1]]
            tr, te = train.select(modalities=keep), test.select(modalities=keep)
        for seed in seeds:
            seed_everything(seed)
            model = build_model(specs[method], dict(make_encoders()))
            t0 = time.perf_counter()
            histories[method].append(fit(model, tr, val, config=base, optimizer=optimizer,
                                         lr=(method_lr or {}).get(method, lr), seed=seed))
            times.append(time.perf_counter() - t0)
            accs[method].append(float(evaluate(model, te, device=device)[f"acc/{task}"]))
            trained.append(model.eval())
        dev = next(model.parameters()).device
        inputs, targets = _first_batch(tr, batch_size, dev)  # a training batch: test data never trains anything
        rows.append({
            "method": method,
            "acc_mean": statistics.fmean(accs[method]),
            "acc_std": statistics.stdev(accs[method]) if len(accs[method]) > 1 else 0.0,
            "params": count_parameters(model, trainable_only=True),
            "train_s": statistics.fmean(times),
            "latency_ms": inference_latency_ms(model, _first_batch(te, batch_size, dev)[0]),
            "peak_mem_mib": training_memory_mib(model, inputs, targets),
        })
        if keep_models:
            models[method], per_seed[method] = trained[-1], trained
    return FusionComparison(rows, accs, models, task, per_seed, specs, histories)
