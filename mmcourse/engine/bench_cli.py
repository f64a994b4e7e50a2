"""``mmcourse bench``: the plain loop vs the engine on the multimodal world, and the image encoder's MFU;
writes markdown tables (and, with ``--results``, replaces the marked section of benchmarks/RESULTS.md).

Chapter 12 runs the same functions (``world_model``, ``run_ladder``, ``image_encoder_mfu``) at quick sizes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import statistics
import sys
from pathlib import Path

import torch
from torch import nn

from mmcourse.engine.bench import Timer, environment, results_table, run_ladder
from mmcourse.engine.flops import mfu, peak_flops, train_step_flops
from mmcourse.engine.speed import autocast_context, maybe_compile, model_to_channels_last
from mmcourse.runtime import pick_device, profile

BEGIN, END = "<!-- mmcourse bench: begin -->", "<!-- mmcourse bench: end -->"


def world_model(splits, width: int, dim: int = 128) -> nn.Module:
    """Encoders for the modalities the splits have, concatenation fusion and one linear head per task."""
    from mmcourse.encoders.audio import AudioCNN
    from mmcourse.encoders.image import SmallCNN
    from mmcourse.encoders.text import TransformerTextEncoder
    from mmcourse.encoders.video import Video3DCNN
    from mmcourse.fusion.basic import ConcatFusion
    from mmcourse.models import MultimodalModel

    mods = sorted(splits.train.inputs)
    build = {"image": lambda: SmallCNN(width, dim), "audio": lambda: AudioCNN(dim, width),
             "video": lambda: Video3DCNN(dim, max(width // 2, 4)),
             "text": lambda: TransformerTextEncoder(len(splits.vocab), dim, depth=2, heads=4,
                                                    max_len=splits.train.inputs["text"].shape[1])}
    enc = {m: build[m]() for m in mods}
    heads = {t: nn.Linear(dim * len(mods), len(splits.classes[t])) for t in splits.train.targets}
    return MultimodalModel(enc, ConcatFusion({m: dim for m in mods}), heads)


def image_encoder_mfu(device: torch.device, *, batch: int, steps: int = 20, warmup: int = 5, repeats: int = 3,
                      width: int = 64, compile: bool | str = True) -> dict[str, object]:
    """Training-step throughput and MFU of ResNet-18 (32×32 inputs) on random data: bf16 autocast,
    channels_last and torch.compile on a GPU; plain fp32 eager elsewhere."""
    from mmcourse.encoders.resnet import resnet18_cifar

    torch.manual_seed(0)
    model = nn.Sequential(resnet18_cifar(width=width), nn.LazyLinear(10)).to(device)
    x = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    model(x[:2])  # materialise the lazy head
    loss_fn = lambda out: nn.functional.cross_entropy(out, y)  # noqa: E731
    flops = train_step_flops(model, x, loss_fn)
    gpu = device.type == "cuda"
    if gpu:
        model_to_channels_last(model)
        x = x.contiguous(memory_format=torch.channels_last)
    net = maybe_compile(model, compile if gpu else False)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, **({"fused": True} if gpu else {}))
    dtype = torch.bfloat16 if gpu else None

    def step() -> None:
        with autocast_context(device, dtype):
            loss = nn.functional.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    rates = []
    for _ in range(repeats):
        for _ in range(warmup):
            step()
        timer = Timer(device)
        timer.start()
        for _ in range(steps):
            step()
        timer.stop()
        rates.append(steps / timer.seconds()[0])
    peak, name = peak_flops(device)
    mean = statistics.fmean(rates)
    return {"device": name, "batch": batch, "steps_per_s": rates, "samples_per_s": mean * batch,
            "gflop_per_step": flops / 1e9, "tflops": flops * mean / 1e12, "mfu": mfu(flops, mean, peak),
            "peak_tflops": None if peak is None else peak / 1e12, "bf16": gpu, "compiled": bool(gpu and compile)}


def resnet18_flops_per_sample(width: int = 64) -> float:
    """Training FLOPs per 32×32 sample of the ResNet-18 above (counted on the CPU at batch 4; linear in batch)."""
    from mmcourse.encoders.resnet import resnet18_cifar

    model = nn.Sequential(resnet18_cifar(width=width), nn.LazyLinear(10))
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    model(x[:2])
    return train_step_flops(model, x, lambda out: nn.functional.cross_entropy(out, y)) / 4


def mfu_table(r: dict[str, object] | None, flops_per_sample: float | None = None) -> str:
    """The MFU table; without a measurement ``r`` its GPU row reads "not yet measured" (with the counted
    FLOPs per step at batch 512 when ``flops_per_sample`` is given)."""
    head = ("| device | batch | samples/s | GFLOP/step | achieved TFLOP/s | MFU (dense bf16 peak) |\n"
            "|---|---|---|---|---|---|\n")
    if r is None:
        gflop = "—" if flops_per_sample is None else f"{512 * flops_per_sample / 1e9:.1f}"
        return head + f"| H100 (GPU) | 512 | not yet measured | {gflop} | — | — |\n"
    sps = [s * r["batch"] for s in r["steps_per_s"]]
    sd = statistics.stdev(sps) if len(sps) > 1 else 0.0
    u = "n/a (no peak for this device)" if r["mfu"] is None else f"{r['mfu']:.1%} of {r['peak_tflops']:.0f}"
    return head + (f"| {r['device']} | {r['batch']} | {statistics.fmean(sps):.0f} ± {sd:.0f} | "
                   f"{r['gflop_per_step']:.2f} | {r['tflops']:.2f} | {u} |\n")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``mmcourse bench``."""
    parser.add_argument("--profile", choices=("quick", "full"), default=None, help="sizes (default: auto)")
    parser.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: best available)")
    parser.add_argument("--modalities", default="image,text", help="comma-separated world modalities")
    parser.add_argument("--n-train", type=int, default=None, help="training samples (default: profile)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run, the first is warm-up")
    parser.add_argument("--repeats", type=int, default=None, help="runs per setting (mean ± std)")
    parser.add_argument("--width", type=int, default=None, help="encoder width (default: profile)")
    parser.add_argument("--batch-size", type=int, default=128, help="batch of the plain loop and first rows")
    parser.add_argument("--big-batch", type=int, default=512, help="batch of the last row")
    parser.add_argument("--compile-backend", default="inductor", help="torch.compile backend on GPU")
    parser.add_argument("--mfu", choices=("auto", "on", "off"), default="auto",
                        help="ResNet-18 MFU benchmark (auto: run on a GPU; elsewhere 'not yet measured')")
    parser.add_argument("--out", type=Path, default=None, help="write the tables to this markdown file")
    parser.add_argument("--results", type=Path, default=None,
                        help=f"replace the section between {BEGIN} and {END} of this file (appended if absent)")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``bench`` on an ``add_subparsers()`` object."""
    p = subparsers.add_parser("bench", help="plain loop vs engine; FLOPs and MFU; markdown tables")
    add_arguments(p)
    p.set_defaults(_run=run)
    return p


def report(args: argparse.Namespace) -> str:
    """Run the benchmarks ``args`` asks for and return the markdown."""
    from mmcourse.data.world import world_splits

    P = profile(args.profile)
    device = torch.device(args.device) if args.device else pick_device()
    mods = tuple(m.strip() for m in args.modalities.split(",") if m.strip())
    n_train = args.n_train or P.n_train
    epochs, repeats = args.epochs or max(P.epochs // 2, 3), args.repeats or max(P.n_seeds, 2)
    splits = world_splits(n_train, P.n_val, 16, seed=P.seed, modalities=mods, device=device)
    width = args.width or P.width
    results = run_ladder(lambda: world_model(splits, width), splits.train, splits.val, device=device, epochs=epochs,
                         repeats=repeats, batch_size=args.batch_size, big_batch=args.big_batch,
                         compile_backend=args.compile_backend)
    env = environment(device)
    cmd = "mmcourse bench " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["bench"] else "mmcourse bench"
    lines = [f"### Plain loop vs engine ({', '.join(mods)}; {n_train} training samples, {epochs} epochs, first "
             f"excluded, {repeats} repeats, profile {P.name})", "",
             f"Measured {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC on {env['device']}, torch "
             f"{env['torch']}, Python {env['python']}{', CUDA ' + env['cuda'] if 'cuda' in env else ''}. "
             f"Command: `{cmd}`. Target accuracy = 95 % of the plain loop's final accuracy "
             f"({results[0].target_acc:.3f}).", "",
             results_table(results, device, gpu_rows_missing=device.type != "cuda", big_batch=args.big_batch)]
    run_mfu = args.mfu == "on" or (args.mfu == "auto" and device.type == "cuda")
    if args.mfu != "off":
        lines += ["### ResNet-18 (32×32) training step: FLOPs and MFU", "",
                  "FLOPs counted with `torch.utils.flop_counter.FlopCounterMode` (forward + backward).", ""]
    if args.mfu != "off" and not run_mfu:
        lines.append(mfu_table(None, resnet18_flops_per_sample()))
    elif run_mfu:
        r = image_encoder_mfu(device, batch=512 if device.type == "cuda" else 32, steps=P.pick(quick=3, full=50),
                              warmup=P.pick(quick=1, full=10), compile=device.type == "cuda")
        cpu_note = "" if device.type == "cuda" else mfu_table(None, r["gflop_per_step"] * 1e9 / r["batch"])
        lines.append(mfu_table(r) + (cpu_note.splitlines()[-1] + "\n" if cpu_note else ""))
    return "\n".join(lines)


def write_section(path: Path, text: str) -> None:
    """Replace (or append) the marked bench section of ``path``."""
    old = path.read_text() if path.exists() else ""
    block = f"{BEGIN}\n{text}\n{END}"
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    new = pattern.sub(lambda _m: block, old) if pattern.search(old) else (old.rstrip() + "\n\n" + block + "\n")
    path.write_text(new)


def run(args: argparse.Namespace) -> int:
    text = report(args)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    if args.results:
        write_section(args.results, text)
    return 0
