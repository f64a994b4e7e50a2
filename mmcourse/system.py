"""The full system of chapter 13: raw samples → preprocessing → model → predictions, saved as one file.

A saved system holds the weights *and* everything needed to turn raw samples into model inputs — the caption
vocabulary, the audio feature parameters, the per-channel normalisation statistics, the world config — as plain
values, so ``torch.load(path, weights_only=True)`` reads it. The model is rebuilt from its
:class:`~mmcourse.models.ModelSpec` (data, not code) by the course's one builder, ``build_model``.

Raw samples are a dict: ``image`` float ``[N,3,32,32]`` (pixels), ``text`` a list of caption strings, ``audio``
float ``[N, samples]`` (waveforms at ``sample_rate``; or ``[N,1,n_mels,frames]`` log-mel spectrograms with
``audio_input="log_mel"``), ``video`` float ``[N,3,T,32,32]`` (pixels). :meth:`Preprocessing.for_dataset`
describes data that is already features (a ``MultimodalDataset`` of the world, spectrograms included), so a
system can wrap any model trained on it — e.g. one of ``compare_fusions``' models.
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
from mmcourse.engine.speed import unwrap
from mmcourse.io import atomic_torch_save
from mmcourse.models import ModelSpec, build_model

FORMAT = "mmcourse.system/2"
FLOAT_MODALITIES = ("image", "audio", "video")
RAW_DIMS = {"image": 4, "audio": 2, "video": 5}  # dims of a batch of raw samples
AUDIO_INPUTS = ("waveform", "log_mel")


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
    audio_input: str = "waveform"  # waveform: raw audio is [N, samples]; log_mel: [N, 1, n_mels, frames]

    def __post_init__(self) -> None:
        if self.audio_input not in AUDIO_INPUTS:
            raise ValueError(f"audio_input={self.audio_input!r}; use one of {AUDIO_INPUTS}")

    @classmethod
    def for_dataset(cls, data: Any, **fields: Any) -> Preprocessing:
        """The preprocessing of data that is already model inputs (a world ``MultimodalDataset``: normalised
        images, video and log-mel audio, captions as token ids of ``data.vocab``): identity statistics, the
        dataset's vocabulary, and ``audio_input="log_mel"``. Raw captions are then strings of that vocabulary."""
        vocab = getattr(data, "vocab", None)
        words = tuple(w for w in vocab.itos if w not in SPECIALS) if vocab is not None else ()
        mean, std = {}, {}
        for m in FLOAT_MODALITIES:
            if m in data.inputs:
                c = int(data.inputs[m].shape[1])
                mean[m], std[m] = (0.0,) * c, (1.0,) * c
        caption_len = int(data.inputs["text"].shape[1]) if "text" in data.inputs else 12
        return cls(**{"words": words, "caption_len": caption_len, "mean": mean, "std": std, "audio_input": "log_mel",
                      **fields})

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
        spectrogram = m == "audio" and self.audio_input == "log_mel"
        dims = 4 if spectrogram else RAW_DIMS[m]
        if not isinstance(x, Tensor) or not x.is_floating_point() or x.dim() != dims:
            got = f"{type(x).__name__} {tuple(x.shape)} {x.dtype}" if isinstance(x, Tensor) else type(x).__name__
            shape = "[N, samples]" if m == "audio" and not spectrogram else "[N, C, ...]"
            raise ValueError(f"raw {m!r} must be a float tensor with {dims} dims ({shape}), got {got}")
        return self.log_mel(x) if m == "audio" and not spectrogram else x

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


class System:
    """A model with its preprocessing: ``predict_raw(samples)`` goes from raw samples to logits."""

    def __init__(self, model: nn.Module, spec: ModelSpec, preprocessing: Preprocessing):
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


def save_system(path: str | Path, model: nn.Module, spec: ModelSpec, preprocessing: Preprocessing) -> Path:
    """Write weights, spec and preprocessing as plain values (atomically: a crash never leaves half a file).

    ``load_system`` rebuilds the model with ``build_model(spec)``, so the spec must describe it (a model whose
    encoders were passed in, such as ``compare_fusions``' fast encoders, works in memory as a ``System`` but
    cannot be rebuilt from its spec: loading it raises, naming the weights that do not fit)."""
    state = {k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()}
    return atomic_torch_save({"format": FORMAT, "spec": spec.to_dict(), "preprocessing": preprocessing.to_dict(),
                              "state_dict": state}, path)


def load_system(path: str | Path, device: torch.device | str | None = None) -> System:
    """Rebuild a saved system (``torch.load(weights_only=True)``: loading runs no code from the file)."""
    blob = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        got = blob.get("format") if isinstance(blob, dict) else type(blob).__name__
        raise ValueError(f"{path} is not a saved mmcourse system (format {got!r}, expected {FORMAT!r})")
    spec = ModelSpec.from_dict(blob["spec"])
    model = build_model(spec)
    try:
        model.load_state_dict(blob["state_dict"])
    except RuntimeError as e:
        raise ValueError(f"{path}: the saved weights do not fit build_model(spec) — was the model built from "
                         f"encoders passed in rather than from its spec? {str(e).splitlines()[0]}") from e
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
