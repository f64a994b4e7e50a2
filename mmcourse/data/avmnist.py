"""AV-MNIST: MNIST digit images paired by label with spoken digits (image + audio, chapters 00 and 08).

MNIST comes in its original IDX files (gzip); the Free Spoken Digit Dataset (FSDD, CC BY-SA 4.0, by Zohar
Jackson et al.) as 8 kHz mono 16-bit WAV files named ``{digit}_{speaker}_{index}.wav``. Each MNIST image is
paired with a random recording of the same digit (seeded); FSDD's own split is kept: recordings with index
0–4 are test, the rest train. Sounds become log-mel spectrograms ``[1, 32, 32]`` with the world's settings.
"""

from __future__ import annotations

import gzip
import io
import re
import struct
import tarfile
import wave
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from mmcourse.data import sound
from mmcourse.data.dataset import MultimodalDataset
from mmcourse.data.download import DatasetSource, RemoteFile, fetch

_MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
# sha256 of the original gzip files, as pinned by TensorFlow Datasets and Keras (their md5, which torchvision
# pins, are f68b3c2d…, d53e105e…, 9fb629c4…, ec29112d…)
MNIST = DatasetSource(
    name="mnist",
    files=tuple(RemoteFile(_MNIST_URL + f, f, sha256, "sha256") for f, sha256 in (
        ("train-images-idx3-ubyte.gz", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
        ("train-labels-idx1-ubyte.gz", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
        ("t10k-images-idx3-ubyte.gz", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
        ("t10k-labels-idx1-ubyte.gz", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"))),
    description="MNIST handwritten digits: 60,000 train + 10,000 test 28x28 grey images, 11 MB.",
    license="Yann LeCun and Corinna Cortes hold the copyright; made available under CC BY-SA 3.0.",
    homepage="http://yann.lecun.com/exdb/mnist/")
FSDD_VERSION = "1.0.10"
# No checksum is pinned: FSDD publishes none for its release, and GitHub generates the tag's archive on request
# (its bytes are not promised to stay the same). `mmcourse data verify fsdd` therefore says "unverified" and
# only checks that the file is a readable archive; it never trusts the first hash it sees.
FSDD = DatasetSource(
    name="fsdd",
    files=(RemoteFile("https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/"
                      f"v{FSDD_VERSION}.tar.gz", f"free-spoken-digit-dataset-{FSDD_VERSION}.tar.gz",
                      archive="tar.gz"),),
    description="Free Spoken Digit Dataset: 3,000 recordings of digits 0-9 (6 speakers x 50), 8 kHz WAV, 20 MB.",
    license="CC BY-SA 4.0; by Zohar Jackson and contributors (cite the FSDD repository).",
    homepage="https://github.com/Jakobovski/free-spoken-digit-dataset")
_WAV_NAME = re.compile(r"(?:^|/)(\d)_([a-z]+)_(\d+)\.wav$")
IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def parse_idx(data: bytes) -> Tensor:
    """An IDX file (optionally gzip-compressed) → tensor. Header: 0, 0, dtype code, ndim, then big-endian
    int32 sizes, then the values in row-major order."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_DTYPES:
        raise ValueError("not an IDX file: the first bytes must be 0, 0, a type code and the number of dims")
    ndim = data[3]
    dims = struct.unpack(f">{ndim}i", data[4:4 + 4 * ndim])
    dtype = np.dtype(IDX_DTYPES[data[2]])
    count = int(np.prod(dims)) if dims else 1
    body = data[4 + 4 * ndim:]
    if len(body) != count * dtype.itemsize:
        raise ValueError(f"IDX file declares dims {dims} ({count * dtype.itemsize} bytes of data) but holds "
                         f"{len(body)} bytes; it is truncated or corrupt")
    arr = np.frombuffer(body, dtype=dtype).reshape(dims)
    return torch.from_numpy(arr.astype(arr.dtype.newbyteorder("="), copy=True))


def parse_wav(data: bytes) -> tuple[Tensor, int]:
    """A PCM WAV file → (float32 samples in [-1, 1], mono, and the sample rate)."""
    try:
        with wave.open(io.BytesIO(data), "rb") as w:
            rate, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
            frames = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as e:
        raise ValueError(f"not a readable PCM WAV file: {e}") from e
    kinds = {1: (np.uint8, 128.0, 128.0), 2: (np.int16, 0.0, 32768.0), 4: (np.int32, 0.0, 2.0**31)}
    if width not in kinds:
        raise ValueError(f"WAV sample width {8 * width} bits is not supported (8, 16 or 32)")
    kind, offset, scale = kinds[width]
    x = (np.frombuffer(frames, dtype=kind).astype(np.float32) - offset) / scale
    return torch.from_numpy(x.reshape(-1, channels).mean(1)), rate


def read_fsdd(path: str | Path) -> tuple[list[Tensor], Tensor, Tensor]:
    """All recordings in the FSDD archive: waveforms, digit labels ``[R]`` and recording indices ``[R]``."""
    waves, digits, index = [], [], []
    with tarfile.open(path, "r:gz") as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            m = _WAV_NAME.search(member.name)
            f = tar.extractfile(member) if m and member.isfile() else None
            if f is None:
                continue
            x, rate = parse_wav(f.read())
            if rate != sound.SAMPLE_RATE:
                raise ValueError(f"{member.name} is sampled at {rate} Hz; FSDD recordings are "
                                 f"{sound.SAMPLE_RATE} Hz")
            waves.append(x)
            digits.append(int(m.group(1)))
            index.append(int(m.group(3)))
    if not waves:
        raise ValueError(f"{path} holds no FSDD recordings (*/recordings/D_speaker_I.wav)")
    return waves, torch.tensor(digits), torch.tensor(index)


def waves_to_features(waves: list[Tensor]) -> Tensor:
    """Pad/crop each recording to the world's clip length, centred, → log-mel ``[R, 1, 32, 32]``."""
    clip = torch.zeros(len(waves), sound.N_SAMPLES)
    for i, w in enumerate(waves):  # recordings have different lengths: one copy each, at load time only
        w = w[: sound.N_SAMPLES]
        start = (sound.N_SAMPLES - len(w)) // 2
        clip[i, start:start + len(w)] = w
    return sound.waves_to_logmel(clip)


def load_avmnist(split: str = "train", *, root: str | Path | None = None, n: int | None = None, seed: int = 0,
                 device: torch.device | str | None = None, download: bool = True,
                 sources: tuple[DatasetSource, DatasetSource] = (MNIST, FSDD)) -> MultimodalDataset:
    """AV-MNIST ``split``: ``image`` ``[N,3,32,32]`` (the digit padded to 32 and repeated on 3 channels),
    ``audio`` ``[N,1,32,32]`` (a spoken recording of the same digit), task ``label``; all normalised."""
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r}; use 'train' or 'test'")
    if n is not None and n < 1:
        raise ValueError(f"n must be >= 1 (or None for all), got {n}")
    mnist, fsdd = sources
    mroot = Path(root) / mnist.name if root is not None else None
    froot = Path(root) / fsdd.name if root is not None else None
    mp = fetch(mnist, mroot, download=download)
    fp = fetch(fsdd, froot, download=download)
    prefix = "train" if split == "train" else "t10k"
    images = parse_idx(mp[f"{prefix}-images-idx3-ubyte.gz"].read_bytes())
    labels = parse_idx(mp[f"{prefix}-labels-idx1-ubyte.gz"].read_bytes()).long()
    if images.ndim != 3 or len(images) != len(labels):
        raise ValueError(f"MNIST images {tuple(images.shape)} and labels {tuple(labels.shape)} do not match")
    if n is not None:
        images, labels = images[:n], labels[:n]
    waves, digits, index = read_fsdd(fp[fsdd.files[0].filename])
    keep = (index < 5) if split == "test" else (index >= 5)
    feats = waves_to_features([w for w, k in zip(waves, keep.tolist()) if k])
    digits = digits[keep]
    # pair each image with a random recording of its digit: recordings sorted by digit, then an offset
    order = torch.argsort(digits, stable=True)
    feats, digits = feats[order], digits[order]
    counts = torch.bincount(digits, minlength=10)
    if (counts[labels.unique()] == 0).any():
        raise ValueError(f"no {split} recording for some digit; counts per digit: {counts.tolist()}")
    starts = torch.cumsum(counts, 0) - counts
    g = torch.Generator().manual_seed(seed)
    pick = starts[labels] + (torch.rand(len(labels), generator=g) * counts[labels]).long()
    audio = feats[pick]
    audio = (audio - audio.mean()) / audio.std().clamp_min(1e-6)
    x = torch.nn.functional.pad(images.float().div_(255), (2, 2, 2, 2))  # [N, 32, 32]
    x = ((x - 0.1307) / 0.3081).unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
    ds = MultimodalDataset({"image": x, "audio": audio}, {"label": labels},
                           {"label": [str(d) for d in range(10)]}, name=f"avmnist/{split}")
    return ds.to(device) if device is not None else ds
