"""A plain PyTorch reference on AV-digits: two small CNNs, concatenation fusion, a hand-written training loop.

The yardstick for ``benchmarks/RESULTS.md`` ("AV-digits: the library against a plain script"): the library's
encoders and fusions, trained through ``compare_fusions``, must reach what ~100 lines of ordinary PyTorch reach
on the same data with the same number of epochs. Only the data comes from mmcourse (``mmcourse.data.avdigits``);
the models, the loop and the evaluation are written out here, the way a practitioner would first try it.

    python benchmarks/avdigits_reference.py --source ../shared/data/fsdd-5-speakers.tar.gz --epochs 12

Leave-one-speaker-out: each of the five speakers is the test set once (mean over speakers and seeds).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from mmcourse.data.avdigits import avdigits_split, read_recordings


def small_cnn(in_ch: int, h: int, w: int, dim: int = 64, width: int = 16) -> nn.Sequential:
    """conv-ReLU-maxpool twice, then flatten (every position kept) and a linear layer."""
    return nn.Sequential(
        nn.Conv2d(in_ch, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(2 * width * (h // 4) * (w // 4), dim), nn.ReLU())


class Net(nn.Module):
    """``mode``: "image", "audio" or "concat" (both encoders, features concatenated, one linear head)."""

    def __init__(self, mode: str, image_shape, audio_shape, dim: int = 64, width: int = 16):
        super().__init__()
        self.mode = mode
        self.enc = nn.ModuleDict()
        if mode in ("image", "concat"):
            self.enc["image"] = small_cnn(image_shape[0], image_shape[1], image_shape[2], dim, width)
        if mode in ("audio", "concat"):
            self.enc["audio"] = small_cnn(audio_shape[0], audio_shape[1], audio_shape[2], dim, width)
        self.head = nn.Linear(dim * len(self.enc), 10)

    def forward(self, image, audio):
        x = {"image": image, "audio": audio}
        return self.head(torch.cat([e(x[m]) for m, e in self.enc.items()], dim=1))


def run(train, test, mode: str, epochs: int, seed: int, lr: float = 1e-3, batch_size: int = 64) -> float:
    """Train one model with Adam on ``train``; return its accuracy on ``test``."""
    torch.manual_seed(seed)
    xi, xa, y = train.inputs["image"], train.inputs["audio"], train.targets["label"]
    model = Net(mode, xi.shape[1:], xa.shape[1:])
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(y), generator=g).split(batch_size):
            loss = F.cross_entropy(model(xi[idx], xa[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        pred = model(test.inputs["image"], test.inputs["audio"]).argmax(1)
    return (pred == test.targets["label"]).float().mean().item()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", default=None, help="FSDD archive or folder (default: the shipped 500-clip subset)")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--speakers", nargs="+", default=None, help="held-out speakers (default: all)")
    args = p.parse_args()
    rec = read_recordings(args.source)
    speakers = args.speakers or rec.speaker_names()
    accs: dict[str, list[float]] = {m: [] for m in ("image", "audio", "concat")}
    t0 = time.perf_counter()
    for spk in speakers:
        train, test = avdigits_split(rec, spk)  # the same pairs as benchmarks/avdigits_compare.py
        for seed in args.seeds:
            for mode in accs:
                accs[mode].append(run(train, test, mode, args.epochs, seed))
                print(f"{spk} seed {seed} {mode}: {accs[mode][-1]:.3f}", flush=True)
    print(f"\n{len(rec)} recordings; held out in turn: {', '.join(speakers)}; seeds {args.seeds}; "
          f"{args.epochs} epochs; {time.perf_counter() - t0:.0f} s")
    for mode, a in accs.items():
        sd = statistics.stdev(a) if len(a) > 1 else 0.0
        print(f"plain {mode:<7} {statistics.fmean(a):.1%} ± {sd:.1%}")


if __name__ == "__main__":
    main()
