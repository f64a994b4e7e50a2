"""The full system of chapter 12: raw samples → preprocessing → model → predictions, saved as one file.

A saved system holds the weights *and* everything needed to turn raw samples into model inputs — the caption
vocabulary, the audio feature parameters, the per-channel normalisation statistics, the world config — as plain
values, so ``torch.load(path, weights_only=True)`` reads it. The model is rebuilt from a :class:`SystemSpec`
(data, not code) by :func:`build_system_model`.

Raw samples are a dict: ``image`` float ``[N,3,32,32]`` (pixels), ``text`` a list of caption strings, ``audio``
float ``[N, samples]`` (waveforms at ``sample_rate``), ``video`` float ``[N,3,T,32,32]`` (pixels).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mmcourse.data import captions, sound
from mmcourse.data.audio import log_mel, mel_filterbank
from mmcourse.data.text import SPECIALS, Vocab, encode_batch
from mmcourse.io import atomic_torch_save
from mmcourse.models import MultimodalModel

FORMAT = "mmcourse.system/1"
FLOAT_MODALITIES = ("image", "audio", "video")
RAW_DIMS = {"image": 4, "audio": 2, "video": 5}  # dims of a batch of raw samples


@dataclass(frozen=True)
class Preprocessing:
    """Raw samples → model inputs: tokenise and pad captions, log-mel of waveforms, per-channel normalisation.

    Build it from the *training* raw samples with :meth:`fit`; ``mean``/``std`` hold one float per channel.
    """

    words: tuple[str, ...]  # the vocabulary after the special tokens, id 3 onwards
    caption_len: int
    mean: dict[str, tuple[float, ...]]
    std: dict[str, tuple[float, ...]]
    sample_rate: int = sound.SAMPLE_RATE
    n_fft: int = sound.N_FFT
    hop: int = sound.HOP
    n_mels: int = sound.N_MELS
    f_min: float = 50.0
    world: dict[str, Any] = field(default_factory=dict)  # the WorldConfig the data came from (a record)

    @property
    def vocab(self) -> Vocab:
        return Vocab(self.words)

    def log_mel(self, waves: Tensor) -> Tensor:
        """``[N, samples]`` waveforms → ``[N, 1, n_mels, frames]`` log-mel spectrograms."""
        fb = mel_filterbank(self.n_fft // 2 + 1, self.n_mels, self.sample_rate, f_min=self.f_min).to(waves.device)
        return log_mel(waves, self.sample_rate, self.n_fft, self.hop, self.n_mels, filters=fb).unsqueeze(1)

    @classmethod
    def fit(cls, raw: Mapping[str, Any], *, caption_len: int = 12, world: Mapping[str, Any] | None = None,
            **audio: Any) -> Preprocessing:
        """Vocabulary and normalisation statistics of the training samples ``raw``."""
        pre = cls(words=(), caption_len=caption_len, mean={}, std={}, world=dict(world or {}), **audio)
        words: tuple[str, ...] = ()
        if "text" in raw:
            words = tuple(w for w in Vocab.build(raw["text"]).itos if w not in SPECIALS)
        mean, std = {}, {}
        for m in FLOAT_MODALITIES:
            if m in raw:
                x = pre._features(m, raw[m])
                dims = [d for d in range(x.dim()) if d != 1]
                s, mu = torch.std_mean(x.float(), dim=dims)
                mean[m] = tuple(float(v) for v in mu)
                std[m] = tuple(max(float(v), 1e-6) for v in s)
        return cls(words=words, caption_len=caption_len, mean=mean, std=std, world=dict(world or {}), **audio)

    def _features(self, m: str, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor) or not x.is_floating_point() or x.dim() != RAW_DIMS[m]:
            got = f"{type(x).__name__} {tuple(x.shape)} {x.dtype}" if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"raw {m!r} must be a float tensor with {RAW_DIMS[m]} dims "
                             f"({'[N, samples]' if m == 'audio' else '[N, C, ...]'}), got {got}")
        return self.log_mel(x) if m == "audio" else x

    def transform(self, raw: Mapping[str, Any], device: torch.device | str | None = None) -> dict[str, Tensor]:
        """Model inputs (sorted by modality) for a batch of raw samples."""
        out: dict[str, Tensor] = {}
        for m in sorted(raw):
            x = raw[m]
            if m == "text":
                if isinstance(x, str) or not all(isinstance(t, str) for t in x):
                    raise ValueError("raw 'text' must be a list of caption strings, one per sample")
                out[m] = encode_batch(self.vocab, list(x), self.caption_len, truncate=True).to(device)
            elif m in FLOAT_MODALITIES:
                if m not in self.mean:
                    raise KeyError(f"no statistics for modality {m!r}; this preprocessing knows {sorted(self.mean)}")
                x = self._features(m, x.to(device))
                shape = [1, -1] + [1] * (x.dim() - 2)
                mu = torch.tensor(self.mean[m], device=x.device).view(shape)
                sd = torch.tensor(self.std[m], device=x.device).view(shape)
                if x.shape[1] != mu.numel():
                    raise ValueError(f"raw {m!r} has {x.shape[1]} channels, the statistics {mu.numel()}")
                out[m] = (x - mu) / sd
            else:
                raise KeyError(f"unknown modality {m!r}; use some of image, text, audio, video")
        return out

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["words"] = list(self.words)
        d["mean"] = {k: list(v) for k, v in self.mean.items()}
        d["std"] = {k: list(v) for k, v in self.std.items()}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Preprocessing:
        d = dict(d)
        d["words"] = tuple(d["words"])
        d["mean"] = {k: tuple(v) for k, v in d["mean"].items()}
        d["std"] = {k: tuple(v) for k, v in d["std"].items()}
        return cls(**d)


@dataclass(frozen=True)
class SystemSpec:
    """What :func:`build_system_model` builds: one encoder per modality, a fusion, a linear head per task."""

    modalities: tuple[str, ...]
    classes: dict[str, tuple[str, ...]]  # task -> class names
    vocab_size: int = 0
    caption_len: int = 12
    dim: int = 32  # every encoder's output width
    width: int = 8  # base channel width of the convolutional encoders
    text_encoder: str = "gru"  # gru | transformer
    fusion: str = "concat"  # a name build_fusion knows

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["modalities"] = list(self.modalities)
        d["classes"] = {k: list(v) for k, v in self.classes.items()}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SystemSpec:
        d = dict(d)
        d["modalities"] = tuple(d["modalities"])
        d["classes"] = {k: tuple(v) for k, v in d["classes"].items()}
        return cls(**d)


def build_system_model(spec: SystemSpec) -> MultimodalModel:
    """The model ``spec`` describes (freshly initialised)."""
    from mmcourse.encoders.audio import AudioCNN
    from mmcourse.encoders.image import SmallCNN
    from mmcourse.encoders.text import GRUTextEncoder, TransformerTextEncoder
    from mmcourse.encoders.video import Video3DCNN
    from mmcourse.fusion.registry import build_fusion

    text = {"gru": lambda: GRUTextEncoder(spec.vocab_size, dim=spec.dim),
            "transformer": lambda: TransformerTextEncoder(spec.vocab_size, spec.dim, depth=1, heads=2,
                                                          max_len=spec.caption_len)}
    if spec.text_encoder not in text:
        raise ValueError(f"text_encoder={spec.text_encoder!r}; use one of {sorted(text)}")
    build = {"image": lambda: SmallCNN(spec.width, spec.dim), "audio": lambda: AudioCNN(spec.dim, spec.width),
             "video": lambda: Video3DCNN(spec.dim, spec.width), "text": text[spec.text_encoder]}
    bad = sorted(set(spec.modalities) - set(build))
    if bad or not spec.modalities:
        raise ValueError(f"unknown modalities {bad or list(spec.modalities)}; use some of {sorted(build)}")
    if "text" in spec.modalities and spec.vocab_size < 4:
        raise ValueError(f"a text encoder needs vocab_size >= 4, got {spec.vocab_size}")
    mods = sorted(spec.modalities)
    fusion = build_fusion(spec.fusion, {m: spec.dim for m in mods})
    fused = getattr(fusion, "out_dim", spec.dim)
    heads = {t: nn.Linear(fused, len(names)) for t, names in spec.classes.items()}
    return MultimodalModel({m: build[m]() for m in mods}, fusion, heads)


class System:
    """A model with its preprocessing: ``predict_raw(samples)`` goes from raw samples to logits."""

    def __init__(self, model: nn.Module, spec: SystemSpec, preprocessing: Preprocessing):
        self.model, self.spec, self.preprocessing = model, spec, preprocessing

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def predict_raw(self, samples: Mapping[str, Any]) -> dict[str, Tensor]:
        """``{task: logits [N, C]}`` for raw samples (in eval mode)."""
        missing = sorted(set(self.spec.modalities) - set(samples))
        extra = sorted(set(samples) - set(self.spec.modalities))
        if missing or extra:
            raise KeyError(f"raw samples have modalities {sorted(samples)}; this system expects "
                           f"{sorted(self.spec.modalities)} (missing {missing}, unexpected {extra})")
        inputs = self.preprocessing.transform(samples, self.device)
        was = self.model.training
        self.model.eval()
        try:
            return self.model(inputs)
        finally:
            self.model.train(was)

    def predict_labels(self, samples: Mapping[str, Any]) -> dict[str, list[str]]:
        """Class names predicted per task."""
        logits = self.predict_raw(samples)
        return {t: [self.spec.classes[t][i] for i in v.argmax(-1).tolist()] for t, v in logits.items()}

    def save(self, path: str | Path) -> Path:
        return save_system(path, self.model, self.spec, self.preprocessing)


def save_system(path: str | Path, model: nn.Module, spec: SystemSpec, preprocessing: Preprocessing) -> Path:
    """Write weights, spec and preprocessing as plain values (atomically: a crash never leaves half a file)."""
    from mmcourse.engine.speed import unwrap

    state = {k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()}
    return atomic_torch_save({"format": FORMAT, "spec": spec.to_dict(), "preprocessing": preprocessing.to_dict(),
                              "state_dict": state}, path)


def load_system(path: str | Path, device: torch.device | str | None = None) -> System:
    """Rebuild a saved system (``torch.load(weights_only=True)``: loading runs no code from the file)."""
    blob = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        got = blob.get("format") if isinstance(blob, dict) else type(blob).__name__
        raise ValueError(f"{path} is not a saved mmcourse system (format {got!r}, expected {FORMAT!r})")
    spec = SystemSpec.from_dict(blob["spec"])
    model = build_system_model(spec)
    model.load_state_dict(blob["state_dict"])
    return System(model.to(device or "cpu").eval(), spec, Preprocessing.from_dict(blob["preprocessing"]))


def raw_world(n: int, *, seed: int = 0, config: Any = None, device: torch.device | str | None = None,
              modalities: Sequence[str] = ("image", "text", "audio", "video"), chunk: int = 1024
              ) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """``n`` raw samples of the synthetic world (pixels, caption strings, waveforms) and their targets.

    The same scenes and renderers as :func:`mmcourse.data.world.world_splits`, stopped before the features and
    the normalisation, which :class:`Preprocessing` does.
    """
    from mmcourse.data import world

    cfg = config or world.WorldConfig()
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"raw_world needs n >= 1 samples, got {n!r}")
    bad = sorted(set(modalities) - set(world.MODALITIES))
    if bad:
        raise KeyError(f"unknown modality {bad}; the world has {list(world.MODALITIES)}")
    dev = torch.device(device or "cpu")
    gen = torch.Generator(device=dev).manual_seed(seed)
    z = world.sample_latents(n, cfg, gen, dev)
    visual = tuple(m for m in modalities if m != "audio")
    parts: dict[str, list[Tensor]] = {m: [] for m in modalities}
    for s in range(0, n, chunk):
        zc = {k: v[s:s + chunk] for k, v in z.items()}
        for m, x in world.render_chunk(zc, cfg, gen, visual).items():
            parts[m].append(x)
        if "audio" in modalities:
            parts["audio"].append(sound.synth_waves(zc["seen_audio"], zc["color"], zc["size"], cfg.audio_snr_db, gen))
    raw: dict[str, Any] = {m: torch.cat(v) for m, v in parts.items()}
    if "text" in raw:
        raw["text"] = captions.world_lexicon().decode_batch(raw["text"])
    targets = {"shape": z["label"], "color": z["color"], "size": z["size"], "motion": z["motion"]}
    return raw, targets


def take(raw: Mapping[str, Any], lo: int, hi: int) -> dict[str, Any]:
    """Samples ``lo:hi`` of a dict of raw samples (tensors or lists of strings)."""
    return {m: v[lo:hi] for m, v in raw.items()}
