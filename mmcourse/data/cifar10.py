"""CIFAR-10 with generated captions, as an image + text ``MultimodalDataset`` (chapters 00, 03, 05, 12).

Reads the original "python version" archive (``cifar-10-python.tar.gz``: pickled batches of uint8 rows)
straight from the tar file, with an unpickler that only accepts the few types those batches contain. Each
image gets a caption from templates ("a photo of a plane"); with probability ``caption_dropout`` the class
word is replaced by a generic word ("a photo of a thing"), so the caption helps without giving the answer
away. Unlike the source post this course grew from, the caption tensor really is an input of the dataset.
"""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from mmcourse.data.dataset import MultimodalDataset
from mmcourse.data.download import DatasetSource, RemoteFile, fetch
from mmcourse.data.text import Vocab

SOURCE = DatasetSource(
    name="cifar10",
    # sha256 as pinned by Keras (keras.datasets.cifar10); the page publishes md5 c58f30108f718f92721af3b95e74349a
    files=(RemoteFile("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "cifar-10-python.tar.gz",
                      "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce", "sha256"),),
    description="CIFAR-10: 60,000 32x32 colour images in 10 classes (50,000 train, 10,000 test), 163 MB.",
    license="No licence stated by the authors; cite Krizhevsky (2009), 'Learning Multiple Layers of Features "
            "from Tiny Images'.",
    homepage="https://www.cs.toronto.edu/~kriz/cifar.html")
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CLASS_WORDS = (("airplane", "plane", "jet"), ("car", "automobile", "sedan"), ("bird", "sparrow", "finch"),
               ("cat", "kitten", "kitty"), ("deer", "stag", "doe"), ("dog", "puppy", "hound"),
               ("frog", "toad", "bullfrog"), ("horse", "pony", "stallion"), ("ship", "boat", "vessel"),
               ("truck", "lorry", "pickup"))
TEMPLATES = (("a", "photo", "of", "a"), ("a", "picture", "of", "a"), ("there", "is", "a"), ("this", "is", "a"),
             ("an", "image", "of", "a"))
GENERIC = ("thing", "object", "something")
MEAN = (0.4914, 0.4822, 0.4465)  # per-channel statistics of the CIFAR-10 training images
STD = (0.2470, 0.2435, 0.2616)
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CAPTION_LEN = 6


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles CIFAR batches only: plain containers and NumPy arrays; anything else is refused."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str) -> object:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"CIFAR batch refers to {module}.{name}, which a CIFAR batch never "
                                     "contains; the file is corrupt or not a CIFAR-10 batch")


def parse_batch(data: bytes) -> tuple[Tensor, Tensor]:
    """One pickled CIFAR batch → uint8 images ``[N, 3, 32, 32]`` and int64 labels ``[N]``."""
    try:
        d = _BatchUnpickler(io.BytesIO(data), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError) as e:
        raise ValueError(f"not a readable CIFAR-10 batch: {e}") from e
    if not isinstance(d, dict) or b"data" not in d or b"labels" not in d:
        raise ValueError("not a CIFAR-10 batch: expected a dict with b'data' and b'labels'")
    rows = np.asarray(d[b"data"], dtype=np.uint8)
    if rows.ndim != 2 or rows.shape[1] != 3072 or rows.shape[0] != len(d[b"labels"]):
        raise ValueError(f"CIFAR-10 batch has data {rows.shape} and {len(d[b'labels'])} labels; "
                         "expected [N, 3072] and N labels")
    return torch.from_numpy(rows.reshape(-1, 3, 32, 32).copy()), torch.tensor(d[b"labels"], dtype=torch.int64)


def read_archive(path: str | Path, split: str) -> tuple[Tensor, Tensor]:
    """Images and labels of ``split`` ("train" or "test") read from ``cifar-10-python.tar.gz``."""
    names = TRAIN_BATCHES if split == "train" else ("test_batch",)
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar.getmembers():
                base = member.name.rsplit("/", 1)[-1]
                if member.isfile() and base in names:
                    f = tar.extractfile(member)
                    found[base] = f.read() if f is not None else b""
    except (tarfile.TarError, OSError, EOFError) as e:
        raise ValueError(f"{path} is not a readable CIFAR-10 archive ({e}); delete it and download again") from e
    missing = [n for n in names if n not in found]
    if missing:
        raise ValueError(f"{path} lacks batch(es) {missing}; it is not the CIFAR-10 python archive")
    parts = [parse_batch(found[n]) for n in names]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def caption_vocab() -> Vocab:
    """The fixed vocabulary of generated CIFAR captions."""
    words = [w for group in (TEMPLATES, CLASS_WORDS, (GENERIC,)) for entry in group for w in entry]
    return Vocab(dict.fromkeys(words))


def make_captions(labels: Tensor, vocab: Vocab, caption_dropout: float, gen: torch.Generator) -> Tensor:
    """Caption ids ``[N, CAPTION_LEN]``: a template, then a class word (or a generic word), PAD at the end."""
    if not 0.0 <= caption_dropout <= 1.0:
        raise ValueError(f"caption_dropout={caption_dropout} is out of range; allowed [0, 1]")
    n = len(labels)
    tmpl = torch.tensor([[vocab.stoi[w] for w in t] + [0] * (4 - len(t)) for t in TEMPLATES])
    words = torch.tensor([[vocab.stoi[w] for w in ws] for ws in CLASS_WORDS])
    generic = torch.tensor([vocab.stoi[w] for w in GENERIC])
    t = tmpl[torch.randint(len(TEMPLATES), (n,), generator=gen)]  # [N, 4]
    w = words[labels, torch.randint(3, (n,), generator=gen)]
    g = generic[torch.randint(3, (n,), generator=gen)]
    w = torch.where(torch.rand(n, generator=gen) < caption_dropout, g, w)
    slots = torch.cat([t, w[:, None], torch.zeros(n, CAPTION_LEN - 5, dtype=torch.int64)], 1)
    order = torch.sort((slots == 0).to(torch.int8), dim=1, stable=True).indices  # words first, PAD last
    return slots.gather(1, order)


def load_cifar10(split: str = "train", *, root: str | Path | None = None, n: int | None = None,
                 caption_dropout: float = 0.5, seed: int = 0, device: torch.device | str | None = None,
                 download: bool = True, source: DatasetSource = SOURCE) -> MultimodalDataset:
    """CIFAR-10 ``split`` as a dataset with ``image`` ``[N,3,32,32]`` (normalised), ``text`` ``[N,6]`` and task
    ``label``. ``n`` keeps the first ``n`` samples. Downloads (163 MB) into ``root`` or the data cache."""
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r}; use 'train' or 'test'")
    if n is not None and n < 1:
        raise ValueError(f"n must be >= 1 (or None for all), got {n}")
    paths = fetch(source, root, download=download)
    images, labels = read_archive(paths[source.files[0].filename], split)
    if n is not None:
        images, labels = images[:n], labels[:n]
    x = images.float().div_(255)
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    vocab = caption_vocab()
    text = make_captions(labels, vocab, caption_dropout, torch.Generator().manual_seed(seed))
    ds = MultimodalDataset({"image": x, "text": text}, {"label": labels}, {"label": list(CLASSES)}, vocab,
                           name=f"cifar10/{split}")
    return ds.to(device) if device is not None else ds
