"""``mmcourse bench``: the plain loop vs the engine on the multimodal world, and the image encoder's MFU;
writes markdown tables (and, with ``--results``, replaces the marked section of benchmarks/RESULTS.md).
``mmcourse bench ingest gpu_check.json`` turns the results file of ``make gpu-check`` into RESULTS.md rows.

The command-line front end (top layer, beside ``cli.py``); chapter 13 runs the same engine functions
(``run_ladder`` in ``mmcourse.engine.bench``, ``world_model`` and ``image_encoder_mfu`` in
``mmcourse.recipes.step_bench``) at quick sizes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import statistics
import sys
from pathlib import Path

import torch

from mmcourse.engine.bench import environment, results_table, run_ladder
from mmcourse.recipes.step_bench import image_encoder_mfu, resnet18_flops_per_sample, world_model
from mmcourse.runtime import pick_device, profile

BEGIN, END = "<!-- mmcourse bench: begin -->", "<!-- mmcourse bench: end -->"


def mfu_table(r: dict[str, object] | None, flops_per_sample: float | None = None) -> str:
    """The MFU table; without a measurement ``r`` its GPU row reads "not yet measured" (with the counted
    FLOPs per step at batch 512 when ``flops_per_sample`` is given)."""
    head = ("| device | batch | samples/s | GFLOP/step | achieved TFLOP/s | MFU (dense bf16 peak) |\n"
            "|---|---|---|---|---|---|\n")
    if r is None:
        gflop = "—" if flops_per_sample is None else f"{512 * flops_per_sample / 1e9:.1f}"
        return head + f"| GPU | 512 | not yet measured | {gflop} | — | — |\n"
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
    sub = parser.add_subparsers(dest="bench_command", metavar="ingest", required=False)
    ing = sub.add_parser("ingest", help="turn a `make gpu-check` results file into benchmarks/RESULTS.md rows",
                         description="Write the results file's section (one per GPU model) into RESULTS.md.")
    ing.add_argument("file", type=Path, help="the results file (gpu_check.json)")
    ing.add_argument("--results", dest="ingest_results", type=Path, default=Path("benchmarks/RESULTS.md"),
                     help="the markdown file to update (default: benchmarks/RESULTS.md)")
    ing.add_argument("--allow-dry-run", action="store_true", help="also write a dry run's (toy) section")


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
    if getattr(args, "bench_command", None) == "ingest":
        from mmcourse.gpu_check.report import ingest

        try:
            text = ingest(args.file, args.ingest_results, allow_dry_run=args.allow_dry_run)
        except (OSError, ValueError) as e:
            print(f"mmcourse bench ingest: {e}", file=sys.stderr)
            return 2
        print(text)
        print(f"wrote the section into {args.ingest_results}")
        return 0
    text = report(args)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    if args.results:
        write_section(args.results, text)
    return 0
