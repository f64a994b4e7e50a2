"""Model variants as data and one builder: ``build_model(ModelSpec(...))`` (as torchvision builds its ResNets).

A :class:`ModelSpec` holds plain values — which modalities, which fusion, which tasks and how wide — so it can
be saved beside the weights (chapter 13's system file) and a model rebuilt from it. Every variant the course
trains is one spec: a unimodal baseline is one modality (identity fusion), late fusion is ``fusion="late"``,
a multi-task model has several entries in ``classes``. Encoders may be passed in instead of built (chapter 9
trains fast encoders, chapter 12 a pretrained one): "encoders are passed in, never built inside a model".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from torch import nn

from mmcourse.fusion.basic import IdentityFusion
from mmcourse.fusion.registry import build_fusion
from mmcourse.models.multimodal import LateFusionModel, MultimodalModel

TEXT_ENCODERS = ("gru", "transformer")


@dataclass(frozen=True)
class ModelSpec:
    """A model as data (the fields of :func:`build_model`).

    Attributes:
        classes: ``{task: number of classes or their names}``; one head per task (names are kept as a tuple,
            a number ``n`` becomes ``("0", …, "n-1")``).
        modalities: the encoders to build, or to keep of those passed in (empty: all passed in).
        fusion: a name ``build_fusion`` knows, or ``"late"`` (per-modality heads, logits averaged). With one
            modality the fusion is the identity. ``fusion_kwargs`` go to ``build_fusion``.
        head_hidden, head_dropout: 0 for linear heads, else ``Linear → ReLU → [Dropout] → Linear``.
        dim, width, video_width: built encoders' output width and base channel width (video: default width).
        text_encoder, text_depth, text_heads, vocab_size, max_len: the built text encoder (``gru`` or
            ``transformer``; ``max_len``: longest caption).
    """

    classes: dict[str, Any]
    modalities: tuple[str, ...] = ()
    fusion: str = "concat"
    fusion_kwargs: dict[str, Any] = field(default_factory=dict)
    head_hidden: int = 0
    head_dropout: float = 0.0
    dim: int = 32
    width: int = 8
    video_width: int | None = None
    text_encoder: str = "gru"
    text_depth: int = 1
    text_heads: int = 2
    vocab_size: int = 0
    max_len: int = 12

    def __post_init__(self) -> None:
        if not self.classes:
            raise ValueError("ModelSpec needs at least one task, e.g. classes={'shape': 10}")
        classes = {}
        for t, c in dict(self.classes).items():
            names = tuple(str(i) for i in range(c)) if isinstance(c, int) else tuple(str(n) for n in c)
            if len(names) < 2:
                raise ValueError(f"task {t!r} needs at least 2 classes, got {c!r}")
            classes[str(t)] = names
        object.__setattr__(self, "classes", classes)
        object.__setattr__(self, "modalities", tuple(self.modalities))
        object.__setattr__(self, "fusion_kwargs", dict(self.fusion_kwargs))
        if self.text_encoder not in TEXT_ENCODERS:
            raise ValueError(f"text_encoder={self.text_encoder!r}; use one of {TEXT_ENCODERS}")

    def num_classes(self) -> dict[str, int]:
        return {t: len(names) for t, names in self.classes.items()}

    def to_dict(self) -> dict[str, Any]:
        """Plain values (``torch.load(weights_only=True)`` reads them back)."""
        d = asdict(self)
        d["modalities"] = list(self.modalities)
        d["classes"] = {t: list(v) for t, v in self.classes.items()}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelSpec:
        return cls(**dict(d))

    @classmethod
    def for_data(cls, data: Any, **fields: Any) -> ModelSpec:
        """A spec for a dataset's modalities, tasks (with their class names) and vocabulary; ``fields``
        override any of them (e.g. ``fusion="gated"``, ``dim=64``)."""
        tasks = list(data.targets)
        names = getattr(data, "classes", None) or {}
        base: dict[str, Any] = {"classes": {t: names.get(t) or int(data.targets[t].max()) + 1 for t in tasks},
                                "modalities": tuple(sorted(data.inputs))}
        if "text" in data.inputs:
            vocab = getattr(data, "vocab", None)
            base["vocab_size"] = len(vocab) if vocab is not None else int(data.inputs["text"].max()) + 1
            base["max_len"] = int(data.inputs["text"].shape[1])
        return cls(**{**base, **fields})

    def with_(self, **changes: Any) -> ModelSpec:
        return replace(self, **changes)


def task_heads(in_dim: int, num_classes: Mapping[str, int], hidden: int = 0, dropout: float = 0.0
               ) -> dict[str, nn.Module]:
    """One head per task: a linear layer, or ``Linear → ReLU → [Dropout] → Linear`` when ``hidden`` > 0."""
    if not num_classes:
        raise ValueError("task_heads needs at least one task, e.g. {'shape': 10}")
    heads: dict[str, nn.Module] = {}
    for task, c in num_classes.items():
        if int(c) < 2:
            raise ValueError(f"task {task!r} needs at least 2 classes, got {c}")
        if not hidden:
            heads[task] = nn.Linear(in_dim, c)
        else:
            mid = [nn.Dropout(dropout)] if dropout else []
            heads[task] = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), *mid, nn.Linear(hidden, c))
    return heads


def build_encoders(spec: ModelSpec) -> dict[str, nn.Module]:
    """Fresh encoders for ``spec.modalities`` (sorted): SmallCNN, AudioCNN, Video3DCNN and a GRU or
    Transformer text encoder, each ``spec.dim`` wide."""
    from mmcourse.encoders.audio import AudioCNN
    from mmcourse.encoders.image import SmallCNN
    from mmcourse.encoders.text import GRUTextEncoder, TransformerTextEncoder
    from mmcourse.encoders.video import Video3DCNN

    def text() -> nn.Module:
        if spec.vocab_size < 4:
            raise ValueError(f"a text encoder needs vocab_size >= 4, got {spec.vocab_size}")
        if spec.text_encoder == "gru":
            return GRUTextEncoder(spec.vocab_size, dim=spec.dim)
        return TransformerTextEncoder(spec.vocab_size, spec.dim, depth=spec.text_depth, heads=spec.text_heads,
                                      max_len=spec.max_len)

    build = {"image": lambda: SmallCNN(spec.dim, width=spec.width),
             "audio": lambda: AudioCNN(spec.dim, width=spec.width),
             "video": lambda: Video3DCNN(spec.dim, spec.video_width or spec.width), "text": text}
    bad = sorted(set(spec.modalities) - set(build))
    if bad or not spec.modalities:
        raise ValueError(f"cannot build encoders for modalities {bad or list(spec.modalities)}; use some of "
                         f"{sorted(build)} (or pass encoders to build_model)")
    return {m: build[m]() for m in sorted(spec.modalities)}


def build_model(spec: ModelSpec, encoders: Mapping[str, nn.Module] | None = None) -> nn.Module:
    """The model ``spec`` describes, freshly initialised: encoders → fusion → one head per task.

    Args:
        spec: the variant (see :class:`ModelSpec`).
        encoders: ``{modality: encoder}`` (each with an integer ``out_dim``) to use instead of building them;
            with ``spec.modalities`` set, only those are kept (a unimodal baseline from a shared factory).

    Returns:
        A ``MultimodalModel``, or a ``LateFusionModel`` for ``fusion="late"``.
    """
    if encoders is None:
        encoders = build_encoders(spec)
    else:
        encoders = dict(encoders)
        if spec.modalities:
            missing = sorted(set(spec.modalities) - set(encoders))
            if missing:
                raise ValueError(f"the spec wants modalities {missing} but no encoder was given for them; "
                                 f"encoders: {sorted(encoders)}")
            encoders = {m: encoders[m] for m in spec.modalities}
    dims = {}
    for m, e in encoders.items():
        if not isinstance(getattr(e, "out_dim", None), int):
            raise ValueError(f"encoder {m!r} ({type(e).__name__}) needs an integer `out_dim` attribute")
        dims[m] = e.out_dim
    n = spec.num_classes()
    if spec.fusion == "late":
        heads = {m: task_heads(d, n, spec.head_hidden, spec.head_dropout) for m, d in dims.items()}
        return LateFusionModel(encoders, heads)
    if len(dims) == 1 and spec.fusion in ("concat", "identity"):
        fusion = IdentityFusion(next(iter(dims.values())))
    else:
        fusion = build_fusion(spec.fusion, dims, **spec.fusion_kwargs)
    return MultimodalModel(encoders, fusion, task_heads(int(fusion.out_dim), n, spec.head_hidden, spec.head_dropout))

