"""The synthetic multimodal world: latent scenes rendered into an image, a caption, a sound and a video.

Dataset card (chapter 00 shows each part). Per sample a latent scene is drawn: a shape class (10), a colour
(6), a size (3), a position (the centre, uniform in the part of the canvas where the whole motion fits) and a
motion direction (4). Then, in one batched pass on the chosen device (chunks of ``CHUNK`` samples, never a
Python loop over samples):

- **image** ``[3,32,32]``: the upright shape in its colour (soft edges from coordinate grids) over a
  background of ``clutter``-scaled coloured blobs, plus Gaussian noise of std ``image_noise``.
- **text** ``[L]`` int64: a caption such as "there is a small red circle near the top" with synonyms, the
  shape word replaced by "object" with probability ``caption_shape_dropout``, other words dropped with
  probability ``word_dropout`` and noise words added; it never mentions motion (see ``captions.py``).
- **audio** ``[1,32,32]``: log-mel spectrogram of a tone whose timbre comes from the shape, pitch from the
  colour, duration and loudness from the size, with white noise at ``audio_snr_db`` (see ``sound.py``).
- **video** ``[3,T,32,32]``: ``video_frames`` frames of the shape moving 8 pixels in its motion direction
  while spinning (``video_spin`` rad/frame, so square and diamond look alike), noise ``video_noise``.
  Motion is visible only here.

Targets: ``shape`` (main task), ``color``, ``size``, ``motion``. ``spread`` sets where the shape label lives:
``redundant`` (every modality shows it), ``unique`` (only ``unique_modality`` shows it; the others show an
unrelated decoy shape) or ``synergistic`` (image, caption and video show shape a, the sound's timbre is b,
and the label is (a + b) mod 10: no single modality tells anything, image and audio together tell all).
Float inputs are normalised per channel (statistics of the training split in :func:`world_splits`). The
latent scene is kept in ``dataset.meta`` (centre, radius, and ``seen_<modality>``: the shape class each
modality shows). ``device=None`` generates on the CPU; the same seed on the same device gives identical
tensors (random numbers come from one ``torch.Generator`` on that device).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
from torch import Tensor

from mmcourse.batch import MODALITIES, check_names, modality_names
from mmcourse.data import captions, render, sound
from mmcourse.data.dataset import MultimodalDataset
from mmcourse.data.text import PAD, Vocab

SPREADS = ("redundant", "unique", "synergistic")
CHUNK = 8192  # samples rendered at once on a GPU (bounds memory)
CPU_CHUNK = 256  # on a CPU: small temporaries are recycled by the allocator instead of page-faulted in
STATS_SAMPLES = 8192  # samples used to estimate the normalisation statistics
TRAVEL = 8.0  # pixels a shape moves over the clip


@dataclass(frozen=True)
class WorldConfig:
    """Knobs of the synthetic world (plain values, so a config can be saved with ``weights_only=True``)."""

    image_noise: float = 0.45  # std of Gaussian pixel noise (pixels are in [0, 1])          [0, 5]
    clutter: float = 0.6  # strength of coloured background blobs                            [0, 1]
    caption_shape_dropout: float = 0.5  # P(shape word replaced by "object")                 [0, 1]
    word_dropout: float = 0.1  # P(size / colour / position words dropped)                   [0, 1]
    synonyms: bool = True  # draw each word among 3 synonyms
    noise_words: float = 0.3  # P(a filler word) at each of 2 filler slots                   [0, 1]
    caption_len: int = 12  # padded caption length                                          [11, 256]
    audio_snr_db: float = -8.0  # signal-to-noise ratio of the sound in dB                   [-30, 60]
    video_frames: int = 8  # T                                                               [2, 32]
    video_noise: float = 0.7  # std of per-frame pixel noise                                 [0, 5]
    video_spin: float = 0.6  # max spin speed in rad/frame                                   [0, 3.2]
    spread: str = "redundant"  # redundant | unique | synergistic
    unique_modality: str = "image"  # the modality that holds the label when spread="unique"

    def __post_init__(self) -> None:
        ranges = {"image_noise": (0.0, 5.0), "clutter": (0.0, 1.0), "caption_shape_dropout": (0.0, 1.0),
                  "word_dropout": (0.0, 1.0), "noise_words": (0.0, 1.0), "audio_snr_db": (-30.0, 60.0),
                  "video_noise": (0.0, 5.0), "video_spin": (0.0, 3.2),
                  "caption_len": (captions.MAX_CAPTION_WORDS, 256), "video_frames": (2, 32)}
        for name, (lo, hi) in ranges.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"WorldConfig.{name} must be a number in [{lo}, {hi}], got {value!r}")
            if name in ("caption_len", "video_frames") and not isinstance(value, int):
                raise ValueError(f"WorldConfig.{name} must be an int in [{lo}, {hi}], got {value!r}")
            if not lo <= value <= hi:
                raise ValueError(f"WorldConfig.{name}={value} is out of range; allowed [{lo}, {hi}]")
        if self.spread not in SPREADS:
            raise ValueError(f"WorldConfig.spread={self.spread!r}; allowed: {', '.join(SPREADS)}")
        if self.unique_modality not in MODALITIES:
            raise ValueError(f"WorldConfig.unique_modality={self.unique_modality!r}; allowed: "
                             f"{', '.join(MODALITIES)}")
        if not isinstance(self.synonyms, bool):
            raise ValueError(f"WorldConfig.synonyms must be True or False, got {self.synonyms!r}")

    def replace(self, **changes: object) -> WorldConfig:
        """A copy with some knobs changed (validated; unknown names raise)."""
        known = {f.name for f in fields(self)}
        bad = sorted(set(changes) - known)
        if bad:
            raise ValueError(f"unknown WorldConfig knob(s) {bad}; known: {sorted(known)}")
        return WorldConfig(**{**asdict(self), **changes})


@dataclass
class WorldSplits:
    """Train / validation / test splits of one world (disjoint samples), its vocabulary and class names."""

    train: MultimodalDataset
    val: MultimodalDataset
    test: MultimodalDataset
    vocab: Vocab
    classes: dict[str, list[str]]
    config: WorldConfig


def world_classes() -> dict[str, list[str]]:
    """Class names per task."""
    return {"shape": list(render.SHAPES), "color": list(render.COLORS), "size": list(render.SIZES),
            "motion": list(render.MOTIONS)}


def sample_latents(n: int, cfg: WorldConfig, gen: torch.Generator, dev: torch.device) -> dict[str, Tensor]:
    """Draw ``n`` latent scenes (shape, colour, size, position, motion, …) on ``dev`` from ``gen``."""
    def rint(high: int) -> Tensor:
        return torch.randint(high, (n,), generator=gen, device=dev)

    z = {"shape": rint(10), "color": rint(6), "size": rint(3), "motion": rint(4), "decoy": rint(10),
         "partner": rint(10)}
    radius = torch.tensor(render.RADIUS, device=dev)[z["size"]] * (0.9 + 0.2 * torch.rand(n, generator=gen,
                                                                                         device=dev))
    lo = 0.6 * radius + TRAVEL / 2  # the whole clip stays (mostly) on the canvas, same range on both axes
    span = (render.SIZE_PX - 1) - 2 * lo
    z["radius"] = radius
    z["cx"] = lo + span * torch.rand(n, generator=gen, device=dev)
    z["cy"] = lo + span * torch.rand(n, generator=gen, device=dev)
    z["spin0"] = 2 * math.pi * torch.rand(n, generator=gen, device=dev)
    z["spin"] = cfg.video_spin * (2 * torch.rand(n, generator=gen, device=dev) - 1)
    # which shape class each modality shows, and the label
    seen = {m: z["shape"] for m in MODALITIES}
    label = z["shape"]
    if cfg.spread == "unique":
        seen = {m: z["shape"] if m == cfg.unique_modality else z["decoy"] for m in MODALITIES}
    elif cfg.spread == "synergistic":
        seen = {m: z["shape"] for m in MODALITIES}
        seen["audio"] = z["partner"]
        label = (z["shape"] + z["partner"]) % 10
    z.update({f"seen_{m}": s for m, s in seen.items()})
    z["label"] = label
    return z


def _paint(alpha: Tensor, rgb: Tensor, background: Tensor) -> Tensor:
    """Composite a shape of colour ``rgb [B,3]`` with coverage ``alpha [B,H,W]`` over ``background``."""
    a = alpha.unsqueeze(1)  # [B, 1, H, W]
    return background * (1 - a) + rgb[:, :, None, None] * a


def render_chunk(z: dict[str, Tensor], cfg: WorldConfig, gen: torch.Generator, mods: tuple[str, ...]
                 ) -> dict[str, Tensor]:
    """Render latent scenes ``z`` into the modalities ``mods`` (raw, before normalisation)."""
    dev = z["cx"].device
    n = z["cx"].shape[0]
    rgb_table = torch.tensor(render.COLOR_RGB, device=dev)
    rgb = (rgb_table[z["color"]] + 0.05 * torch.randn(n, 3, generator=gen, device=dev)).clamp(0, 1)
    out = {}
    if "image" in mods:
        bg = render.clutter_background(n, cfg.clutter, gen, dev)
        alpha = render.shape_alpha(z["seen_image"], z["cx"], z["cy"], z["radius"])
        img = _paint(alpha, rgb, bg)
        out["image"] = img + cfg.image_noise * torch.randn(img.shape, generator=gen, device=dev)
    if "text" in mods:
        region = captions.region_of(z["cx"], z["cy"])
        out["text"] = captions.make_captions(
            z["seen_text"], z["color"], z["size"], region, length=cfg.caption_len,
            shape_dropout=cfg.caption_shape_dropout, word_dropout=cfg.word_dropout, synonyms=cfg.synonyms,
            noise_words=cfg.noise_words, gen=gen)
    if "audio" in mods:
        waves = sound.synth_waves(z["seen_audio"], z["color"], z["size"], cfg.audio_snr_db, gen)
        out["audio"] = sound.waves_to_logmel(waves)
    if "video" in mods:
        t_steps = cfg.video_frames
        t = torch.linspace(-0.5, 0.5, t_steps, device=dev)  # [T] fraction of the travel
        dxy = torch.tensor(render.MOTION_XY, device=dev)[z["motion"]]  # [B, 2]
        cx = (z["cx"][:, None] + TRAVEL * t * dxy[:, 0:1]).reshape(-1)  # [B*T]
        cy = (z["cy"][:, None] + TRAVEL * t * dxy[:, 1:2]).reshape(-1)
        ang = (z["spin0"][:, None] + z["spin"][:, None] * torch.arange(t_steps, device=dev)).reshape(-1)
        rep = lambda v: v.repeat_interleave(t_steps)  # noqa: E731  [B] -> [B*T]
        alpha = render.shape_alpha(rep(z["seen_video"]), cx, cy, rep(z["radius"]), ang)
        alpha = alpha.view(n, t_steps, 1, render.SIZE_PX, render.SIZE_PX)  # [B, T, 1, H, W]
        bg = render.clutter_background(n, cfg.clutter, gen, dev)[:, None]  # [B, 1, 3, H, W] static
        frames = bg * (1 - alpha) + rgb[:, None, :, None, None] * alpha  # [B, T, 3, H, W]
        frames = frames + cfg.video_noise * torch.randn(frames.shape, generator=gen, device=dev)
        out["video"] = frames.permute(0, 2, 1, 3, 4).contiguous()  # [B, 3, T, H, W]
    return out


def _normalise(inputs: dict[str, Tensor], stats: dict[str, tuple[Tensor, Tensor]] | None,
               n_stats: int | None = None) -> dict[str, tuple[Tensor, Tensor]]:
    """In place: zero mean, unit variance per channel (dim 1), with ``stats`` or the statistics of the first
    ``n_stats`` samples (the training split). Returns the statistics used."""
    stats = dict(stats or {})
    for k, v in inputs.items():
        if not v.is_floating_point():
            continue
        if k not in stats:
            ref = v[: min(n_stats or len(v), STATS_SAMPLES)]  # a few thousand samples pin the statistics
            dims = [d for d in range(v.dim()) if d != 1]
            std, mean = torch.std_mean(ref, dim=dims, keepdim=True)
            stats[k] = (mean, std.clamp_min(1e-6))
        mean, std = stats[k]
        v.sub_(mean).div_(std)
    return stats


def _out_shape(m: str, cfg: WorldConfig) -> tuple[tuple[int, ...], torch.dtype]:
    s = render.SIZE_PX
    return {"image": ((3, s, s), torch.float32), "text": ((cfg.caption_len,), torch.int64),
            "audio": ((1, sound.N_MELS, sound.N_FRAMES), torch.float32),
            "video": ((3, cfg.video_frames, s, s), torch.float32)}[m]


def _generate(n: int, seed: int, device: torch.device | str | None, cfg: WorldConfig,
              modalities: tuple[str, ...]) -> tuple[dict[str, Tensor], dict[str, Tensor], dict[str, Tensor]]:
    """Inputs, targets and the latent scene (``meta``: centre, radius, the shape class each modality shows)."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"the world needs n >= 1 samples, got n={n!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if not modalities:
        raise ValueError(f"modalities is empty; the world has {list(MODALITIES)}")
    check_names(modalities, MODALITIES, "modality")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    gen = torch.Generator(device=dev)
    gen.manual_seed(seed)
    z = sample_latents(n, cfg, gen, dev)
    inputs = {m: torch.empty((n, *_out_shape(m, cfg)[0]), dtype=_out_shape(m, cfg)[1], device=dev)
              for m in modalities}
    chunk = CHUNK if dev.type != "cpu" else CPU_CHUNK
    for s in range(0, n, chunk):
        part = render_chunk({k: v[s:s + chunk] for k, v in z.items()}, cfg, gen, modalities)
        for m in modalities:
            inputs[m][s:s + chunk] = part[m]
    targets = {"shape": z["label"], "color": z["color"], "size": z["size"], "motion": z["motion"]}
    meta = {k: z[k] for k in ("cx", "cy", "radius", *(f"seen_{m}" for m in MODALITIES))}
    return inputs, targets, meta


def make_world(n: int, *, seed: int = 0, device: torch.device | str | None = None,
               config: WorldConfig | None = None, modalities: tuple[str, ...] = MODALITIES
               ) -> MultimodalDataset:
    """``n`` samples of the world (normalised with their own statistics; ids in the full world lexicon)."""
    cfg = config or WorldConfig()
    inputs, targets, meta = _generate(n, seed, device, cfg, tuple(modality_names(modalities)))
    _normalise(inputs, None)
    return MultimodalDataset(inputs, targets, world_classes(), captions.world_lexicon(), name="world", meta=meta)


def world_splits(n_train: int, n_val: int, n_test: int, *, seed: int = 0,
                 device: torch.device | str | None = None, config: WorldConfig | None = None,
                 modalities: tuple[str, ...] = MODALITIES) -> WorldSplits:
    """Disjoint train/val/test splits of one world of ``n_train + n_val + n_test`` samples.

    Float inputs are normalised with the training split's per-channel statistics; the vocabulary is built
    from the training captions (most frequent first) and every split's text is re-indexed into it.
    """
    for name, v in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, got {v!r}")
    cfg = config or WorldConfig()
    inputs, targets, meta = _generate(n_train + n_val + n_test, seed, device, cfg,
                                      tuple(modality_names(modalities)))
    _normalise(inputs, None, n_stats=n_train)
    lexicon = captions.world_lexicon()
    vocab = lexicon
    if "text" in inputs:
        counts = torch.bincount(inputs["text"][:n_train].reshape(-1), minlength=len(lexicon)).tolist()
        words = [w for i, w in enumerate(lexicon.itos) if i > PAD and counts[i] > 0]
        vocab = Vocab(sorted(words, key=lambda w: (-counts[lexicon.stoi[w]], w)))
        inputs["text"] = vocab.lookup_table(lexicon, inputs["text"].device)[inputs["text"]]
    bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val),
              "test": (n_train + n_val, n_train + n_val + n_test)}
    parts = {name: MultimodalDataset({k: v[a:b] for k, v in inputs.items()},
                                     {k: v[a:b] for k, v in targets.items()}, world_classes(), vocab,
                                     name=f"world/{name}", meta={k: v[a:b] for k, v in meta.items()})
             for name, (a, b) in bounds.items()}
    return WorldSplits(parts["train"], parts["val"], parts["test"], vocab, world_classes(), cfg)
