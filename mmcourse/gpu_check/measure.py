"""The measuring steps of ``make gpu-check``, each run as its own process by :mod:`mmcourse.gpu_check.plan`:

- ``ladder``: plain loop → engine → + bf16 → + channels_last → + compile → + batch 512, side by side in one
  run (CUDA events on a GPU), on the multimodal world (image + caption);
- ``mfu``: the GPU's measured bf16 matmul ceiling, then ResNet-18 (32×32) training steps at batch 512 in bf16,
  eager and compiled, with FLOPs and MFU against the spec-sheet peak.

Each writes its JSON after every finished piece, so a step stopped at its time budget keeps what it measured.
``python -m mmcourse.gpu_check.measure ladder|mfu --json OUT --sizes '{...}'``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch


def _write(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, path)


def ladder(sizes: dict[str, Any], out: Path, device: torch.device) -> dict[str, Any]:
    """Run the ladder at ``sizes`` (n_train, n_val, width, dim, epochs, repeats, batch, big_batch, compile,
    gpu_rows, modalities) and write ``{"sizes", "rows": [Result.to_dict()], "target_acc"}`` to ``out``."""
    from mmcourse.data.world import world_splits
    from mmcourse.engine.bench import run_ladder
    from mmcourse.recipes.step_bench import world_model

    t0 = time.perf_counter()
    splits = world_splits(sizes["n_train"], sizes["n_val"], 8, seed=0, modalities=tuple(sizes["modalities"]),
                          device=device)
    data: dict[str, Any] = {"sizes": sizes, "rows": [], "data_seconds": time.perf_counter() - t0}
    _write(out, data)

    def keep(result) -> None:
        data["rows"].append(result.to_dict())
        data["target_acc"] = result.target_acc
        _write(out, data)
        r = data["rows"][-1]
        print(f"  {r['setting']['name']}: {sum(r['samples_per_s']) / len(r['samples_per_s']):.0f} samples/s, "
              f"final acc {sum(r['final_acc']) / len(r['final_acc']):.3f}", flush=True)

    run_ladder(lambda: world_model(splits, sizes["width"], sizes["dim"]), splits.train, splits.val, device=device,
               epochs=sizes["epochs"], repeats=sizes["repeats"], batch_size=sizes["batch"],
               big_batch=sizes["big_batch"], compile_backend=sizes["compile"], gpu_rows=sizes.get("gpu_rows"),
               on_result=keep)
    return data


def mfu(sizes: dict[str, Any], out: Path, device: torch.device) -> dict[str, Any]:
    """The matmul ceiling, then ResNet-18 steps in each variant of ``sizes["variants"]`` (eager, compiled)."""
    from mmcourse.engine.machine import half_precision
    from mmcourse.recipes.step_bench import image_encoder_mfu, matmul_tflops

    gpu = device.type == "cuda"
    half = {"bf16": torch.bfloat16, "fp16": torch.float16}[half_precision(device)] if gpu else None
    data: dict[str, Any] = {"sizes": sizes, "variants": {}}
    data["matmul"] = matmul_tflops(device, n=sizes["matmul_n"], dtype=half or torch.float32,
                                   reps=sizes["matmul_reps"])
    print(f"  matmul {data['matmul']['n']}³ {data['matmul']['dtype']}: {data['matmul']['tflops']:.1f} TFLOP/s",
          flush=True)
    _write(out, data)
    for name, compile_ in sizes["variants"].items():
        name = name.replace("bf16", "fp16") if half == torch.float16 else name
        r = image_encoder_mfu(device, batch=sizes["batch"], steps=sizes["steps"], warmup=sizes["warmup"],
                              repeats=sizes["repeats"], width=sizes["width"], compile=compile_,
                              amp=half, channels_last=True)
        r["matmul_fraction"] = r["tflops"] / data["matmul"]["tflops"] if data["matmul"]["tflops"] else None
        data["variants"][name] = r
        _write(out, data)
        mfu_s = "n/a" if r["mfu"] is None else f"{r['mfu']:.1%}"
        print(f"  ResNet-18 {name}: {r['samples_per_s']:.0f} samples/s, {r['tflops']:.2f} TFLOP/s, MFU {mfu_s}",
              flush=True)
    return data


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("ladder", "mfu"))
    p.add_argument("--json", type=Path, required=True, help="where to write the measurements")
    p.add_argument("--sizes", required=True, help="the step's sizes as a JSON object")
    p.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    args = p.parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.backends.cudnn.benchmark = device.type == "cuda"
    (ladder if args.what == "ladder" else mfu)(json.loads(args.sizes), args.json, device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
