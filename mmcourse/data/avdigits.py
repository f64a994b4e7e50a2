"""AV-digits: real spoken digits (FSDD) paired with real handwritten digits (scikit-learn), offline everywhere.

Chapters 5, 8 and 9 and ``book/bring_your_own_data.md`` use it; ``benchmarks/avdigits_reference.py`` measures
on it. Audio: recordings of the Free Spoken Digit Dataset (FSDD, CC BY-SA 4.0, by Zohar Jackson and the FSDD
contributors) by five speakers (george, jackson, lucas, nicolas, yweweler). Image: scikit-learn's bundled
8×8 handwritten digits (UCI optdigits, CC BY 4.0). Each recording is paired with an image of the same digit.

Where the recordings come from (``source``):

- ``None`` (default): the subset shipped inside the package, ``assets/fsdd_subset.npz`` — 500 recordings,
  the first 10 of each digit by each of the five speakers, cut to at most 0.78 s and stored as 8-bit μ-law
  (G.711, the telephone codec; 1.4 MB). Its licence and credit are in ``assets/README.md``.
- a path to an FSDD archive (``.tar``/``.tar.gz``) or a folder of ``{digit}_{speaker}_{index}.wav`` files,
  e.g. the 2,500-recording ``fsdd-5-speakers.tar.gz`` or the FSDD release (``mmcourse data download fsdd``).

The split holds one speaker out (``held_out``): the test set is that speaker's recordings, the training set
everyone else's — a random split would put every speaker's voice on both sides and measure memorised voices.
The images are split too (into as many disjoint groups as there are speakers, stratified by digit; the held-out
speaker's group is the test side), so no image is seen in training and test. scikit-learn does not record who
wrote each digit, so the image split is by image, not by writer.

Inputs follow the contract: ``image`` ``[N, 3, S, S]`` (grey repeated on three channels so every image encoder
takes it; ``S = 16`` by default, nearest upsampling of 8×8 — more pixels would cost compute and add no
information), ``audio`` ``[N, 1, 32, 48]`` log-mel (the world's 16 ms hop and 32 mel bands; 48 frames = 0.78 s,
which holds 97% of FSDD's recordings whole), each clip standardised on its own (per-clip normalisation).
The images get Gaussian noise by default (``image_noise=1``: as strong as the digit itself), as AV-MNIST
degrades its images, so that neither modality alone solves the task and fusion has something to do: clean
8×8 digits are ~97% easy, while a voice never heard in training already keeps audio alone far from perfect
(``audio_snr_db`` adds white noise too; ``image_noise=0`` gives clean images).
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from mmcourse.data import sound
from mmcourse.data.audio import log_mel
from mmcourse.data.avmnist import _WAV_NAME, parse_wav
from mmcourse.data.dataset import MultimodalDataset
from mmcourse.data.normalize import per_example_standardize

SPEAKERS = ("george", "jackson", "lucas", "nicolas", "yweweler")
SUBSET = Path(__file__).with_name("assets") / "fsdd_subset.npz"
N_FRAMES = 48
CLIP_SAMPLES = sound.N_FFT + (N_FRAMES - 1) * sound.HOP  # 6272 samples = 0.78 s at 8 kHz -> exactly 48 frames
IMAGE_NOISE, AUDIO_SNR_DB = 1.0, None  # default corruption: image noise std (in clean-image stds); audio SNR (dB)
_MU = 255.0


@dataclass
class Recordings:
    """Spoken digits: waveforms (float32 in [-1, 1], 8 kHz), digit ``[R]``, speaker name and recording index."""

    waves: list[Tensor]
    digits: Tensor
    speakers: list[str]
    index: Tensor

    def __len__(self) -> int:
        return len(self.waves)

    def speaker_names(self) -> list[str]:
        """The distinct speakers, sorted."""
        return sorted(set(self.speakers))


def mulaw_encode(x: Tensor) -> Tensor:
    """μ-law (μ = 255) companding of samples in [-1, 1] to int8 codes: fine steps for quiet sounds, coarse for loud."""
    y = torch.sign(x) * torch.log1p(_MU * x.abs().clamp(max=1.0)) / np.log1p(_MU)
    return torch.round(y * 127).to(torch.int8)


def mulaw_decode(q: Tensor) -> Tensor:
    """The inverse of :func:`mulaw_encode`: int8 codes to float32 samples in [-1, 1]."""
    y = q.float() / 127
    return torch.sign(y) * torch.expm1(y.abs() * np.log1p(_MU)) / _MU


def _add_wav(out: dict[str, list], name: str, data: bytes) -> None:
    m = _WAV_NAME.search(name)
    if not m:
        return
    x, rate = parse_wav(data)
    if rate != sound.SAMPLE_RATE:
        raise ValueError(f"{name} is sampled at {rate} Hz; AV-digits needs {sound.SAMPLE_RATE} Hz recordings")
    for key, value in zip(("waves", "digits", "speakers", "index"), (x, int(m.group(1)), m.group(2), int(m.group(3)))):
        out[key].append(value)


def read_recordings(source: str | Path | None = None) -> Recordings:
    """Spoken digits from the shipped subset (``None``), an FSDD ``.tar``/``.tar.gz`` archive or a folder of WAVs.

    Files must be named ``{digit}_{speaker}_{index}.wav`` (FSDD's scheme); other files are ignored.
    """
    path = SUBSET if source is None else Path(source)
    if not path.exists():
        raise FileNotFoundError(f"no spoken digits at {path}: give an FSDD archive, a folder of WAVs or None")
    if path.suffix == ".npz":
        with np.load(path) as z:
            codes, offsets = torch.from_numpy(z["codes"]), z["offsets"].tolist()
            names = [str(s) for s in z["speaker_names"]]
            waves = [mulaw_decode(codes[a:b]) for a, b in zip(offsets[:-1], offsets[1:])]
            return Recordings(waves, torch.from_numpy(z["digits"]).long(),
                              [names[i] for i in z["speakers"].tolist()], torch.from_numpy(z["index"]).long())
    found: dict[str, list] = {"waves": [], "digits": [], "speakers": [], "index": []}
    if path.is_dir():
        for f in sorted(path.rglob("*.wav")):
            _add_wav(found, f.name, f.read_bytes())
    else:
        with tarfile.open(path, "r:*") as tar:
            for member in sorted(tar.getmembers(), key=lambda m: m.name):
                f = tar.extractfile(member) if member.isfile() else None
                if f is not None:
                    _add_wav(found, member.name, f.read())
    if not found["waves"]:
        raise ValueError(f"{path} holds no spoken digits named {{digit}}_{{speaker}}_{{index}}.wav")
    order = sorted(range(len(found["waves"])), key=lambda i: (found["speakers"][i], found["digits"][i],
                                                                found["index"][i]))
    return Recordings([found["waves"][i] for i in order], torch.tensor([found["digits"][i] for i in order]),
                      [found["speakers"][i] for i in order], torch.tensor([found["index"][i] for i in order]))


def write_subset(rec: Recordings, path: str | Path, per_digit: int = 10) -> int:
    """Store the first ``per_digit`` recordings of each (speaker, digit) as μ-law codes in an ``.npz``.

    This is how ``assets/fsdd_subset.npz`` was made from ``fsdd-5-speakers.tar.gz``; returns the clips kept.
    """
    names = rec.speaker_names()
    keep = []
    for s in names:
        for d in range(10):
            idx = [i for i in range(len(rec)) if rec.speakers[i] == s and int(rec.digits[i]) == d]
            keep += sorted(idx, key=lambda i: int(rec.index[i]))[:per_digit]
    waves = [centre_crop(rec.waves[i], CLIP_SAMPLES) for i in keep]
    offsets = np.cumsum([0] + [len(w) for w in waves])
    buf = io.BytesIO()
    np.savez_compressed(buf, codes=mulaw_encode(torch.cat(waves)).numpy(), offsets=offsets,
                        digits=rec.digits[keep].numpy().astype(np.int8), index=rec.index[keep].numpy().astype(np.int16),
                        speakers=np.array([names.index(rec.speakers[i]) for i in keep], dtype=np.int8),
                        speaker_names=np.array(names))
    Path(path).write_bytes(buf.getvalue())
    return len(keep)


def centre_crop(wave: Tensor, n: int) -> Tensor:
    """The middle ``n`` samples of ``wave`` (all of it when it is shorter)."""
    start = max(0, (len(wave) - n) // 2)
    return wave[start:start + n]


def clip_logmel(waves: list[Tensor], frames: int = N_FRAMES, snr_db: float | None = None,
                generator: torch.Generator | None = None) -> Tensor:
    """Recordings → per-clip standardised log-mel ``[R, 1, 32, frames]``.

    Each recording is centred in a clip of ``frames`` frames (cut in the middle when longer); with ``snr_db``,
    white noise at that signal-to-noise ratio (relative to the recording's own power) fills the whole clip.
    """
    n = sound.N_FFT + (frames - 1) * sound.HOP
    clip = torch.zeros(len(waves), n)
    power = torch.zeros(len(waves), 1)
    for i, w in enumerate(waves):  # recordings differ in length: one copy each, at load time only
        w = centre_crop(w, n)
        start = (n - len(w)) // 2
        clip[i, start:start + len(w)] = w
        power[i] = w.pow(2).mean()
    if snr_db is not None:
        noise = torch.randn(clip.shape, generator=generator)
        clip = clip + noise * torch.sqrt(power / 10 ** (snr_db / 10))
    fb = sound.mel_filterbank(sound.N_FFT // 2 + 1, sound.N_MELS, sound.SAMPLE_RATE, f_min=50.0)
    return per_example_standardize(log_mel(clip, sound.SAMPLE_RATE, sound.N_FFT, sound.HOP, sound.N_MELS,
                                           filters=fb).unsqueeze(1))


def digit_images() -> tuple[Tensor, Tensor]:
    """scikit-learn's 1,797 handwritten digits: standardised ``[N, 8, 8]`` (whole-set mean and std) and labels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32) / 16.0
    return (x - x.mean()) / x.std(), torch.tensor(bunch.target, dtype=torch.int64)


def image_groups(labels: Tensor, groups: int, seed: int = 0) -> Tensor:
    """Assign each image to one of ``groups`` disjoint groups ``[N]``, stratified by digit (seeded)."""
    g = torch.Generator().manual_seed(seed)
    out = torch.empty_like(labels)
    for d in labels.unique().tolist():
        idx = (labels == d).nonzero().squeeze(1)
        idx = idx[torch.randperm(len(idx), generator=g)]
        out[idx] = torch.arange(len(idx)) % groups
    return out


def _pair_images(digits: Tensor, pool: Tensor, labels: Tensor, g: torch.Generator) -> Tensor:
    """For each digit in ``digits``, a random image index from ``pool`` (indices into ``labels``) of that digit."""
    out = torch.empty_like(digits)
    for d in digits.unique().tolist():
        cand = pool[labels[pool] == d]
        where = (digits == d).nonzero().squeeze(1)
        if len(cand) == 0:
            raise ValueError(f"no image of digit {d} in this split's image pool")
        out[where] = cand[torch.randint(len(cand), (len(where),), generator=g)]
    return out


def _dataset(rec: Recordings, keep: Tensor, images: Tensor, labels: Tensor, pool: Tensor, *, name: str,
             image_size: int, image_noise: float, audio_snr_db: float | None, g: torch.Generator
             ) -> MultimodalDataset:
    idx = keep.nonzero().squeeze(1)
    digits = rec.digits[idx]
    audio = clip_logmel([rec.waves[i] for i in idx.tolist()], snr_db=audio_snr_db, generator=g)
    pick = _pair_images(digits, pool, labels, g)
    img = images[pick]  # [N, 8, 8]
    if image_noise > 0:
        img = (img + image_noise * torch.randn(img.shape, generator=g)) / (1 + image_noise**2) ** 0.5
    up = image_size // 8
    img = img.repeat_interleave(up, 1).repeat_interleave(up, 2).unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
    names = rec.speaker_names()
    speaker = torch.tensor([names.index(rec.speakers[i]) for i in idx.tolist()])
    return MultimodalDataset({"image": img, "audio": audio}, {"label": digits},
                             {"label": [str(d) for d in range(10)]}, name=name,
                             meta={"speaker": speaker, "image_index": pick, "recording": rec.index[idx]})


def avdigits_split(rec: Recordings, held_out: str, *, image_size: int = 16, image_noise: float = IMAGE_NOISE,
                   audio_snr_db: float | None = AUDIO_SNR_DB, seed: int = 0
                   ) -> tuple[MultimodalDataset, MultimodalDataset]:
    """``(train, test)`` of AV-digits from ``rec`` with speaker ``held_out`` (and its image group) as the test set.

    ``meta["speaker"]`` holds each sample's speaker (an index into ``rec.speaker_names()``).
    """
    names = rec.speaker_names()
    if held_out not in names:
        raise ValueError(f"held_out={held_out!r} is not a speaker of these recordings; speakers: {names}")
    if image_size < 8 or image_size % 8:
        raise ValueError(f"image_size must be a multiple of 8 (>= 8), got {image_size}")
    images, labels = digit_images()
    group = image_groups(labels, len(names))
    k = names.index(held_out)
    test_speaker = torch.tensor([s == held_out for s in rec.speakers])
    g = torch.Generator().manual_seed(seed)
    kw = dict(image_size=image_size, image_noise=image_noise, audio_snr_db=audio_snr_db, g=g)
    train = _dataset(rec, ~test_speaker, images, labels, (group != k).nonzero().squeeze(1),
                     name=f"avdigits/train (all but {held_out})", **kw)
    test = _dataset(rec, test_speaker, images, labels, (group == k).nonzero().squeeze(1),
                    name=f"avdigits/test ({held_out})", **kw)
    return train, test


def load_avdigits(split: str = "train", *, held_out: str = "jackson", source: str | Path | None = None,
                  image_size: int = 16, image_noise: float = IMAGE_NOISE, audio_snr_db: float | None = AUDIO_SNR_DB,
                  seed: int = 0, device: torch.device | str | None = None) -> MultimodalDataset:
    """AV-digits ``split`` ("train": every speaker but ``held_out``; "test": ``held_out`` alone).

    ``image`` ``[N, 3, image_size, image_size]``, ``audio`` ``[N, 1, 32, 48]``, task ``label`` (classes
    ``"0"``–``"9"``). ``source``: ``None`` for the shipped 500-recording subset, or an FSDD archive or folder
    (see the module docstring). To get both splits (or every fold) from one read, call
    :func:`read_recordings` once and :func:`avdigits_split` per held-out speaker.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r}; use 'train' or 'test'")
    train, test = avdigits_split(read_recordings(source), held_out, image_size=image_size, image_noise=image_noise,
                                 audio_snr_db=audio_snr_db, seed=seed)
    ds = train if split == "train" else test
    return ds.to(device) if device is not None else ds
