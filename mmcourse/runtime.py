"""Runtime choices every chapter makes: the device, the seeds, and the profile (quick on CPU, full on GPU).

Used by every notebook's first code cell: ``device = pick_device(); P = profile(); seed_everything(P.seed)``.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, fields
from typing import Any, TypeVar

import numpy as np
import torch

T = TypeVar("T")

PROFILES = ("quick", "full")


def pick_device(prefer: str | None = None) -> torch.device:
    """Return the best available device: cuda > mps > cpu.

    ``MMCOURSE_DEVICE`` (or ``prefer``) overrides the choice, e.g. ``cpu``, ``cuda``, ``cuda:1`` or ``mps``.

    Raises:
        ValueError: the requested device name is not one of cpu, cuda[:N], mps.
        RuntimeError: the requested device is not available on this machine.
    """
    want = prefer if prefer is not None else os.environ.get("MMCOURSE_DEVICE", "").strip()
    if want:
        kind = want.split(":")[0]
        if kind not in ("cpu", "cuda", "mps"):
            raise ValueError(f"MMCOURSE_DEVICE={want!r} is not a device; use one of: cpu, cuda, cuda:N, mps")
        if kind == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"MMCOURSE_DEVICE={want!r} but CUDA is not available here; unset it or use cpu")
        if kind == "mps" and not _mps_available():
            raise RuntimeError(f"MMCOURSE_DEVICE={want!r} but MPS is not available here; unset it or use cpu")
        return torch.device(want)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def seed_everything(seed: int, deterministic: bool = False) -> torch.Generator:
    """Seed Python, NumPy and torch (all devices); return a CPU generator seeded the same way.

    A seeded run repeats exactly only with the same device, torch version and number of threads
    (``OMP_NUM_THREADS``; ``make test`` uses one per worker): a CPU kernel splits its sums across threads, and
    another split adds in another order. On a GPU some kernels add in a varying order even then.

    Args:
        seed: any non-negative integer.
        deterministic: also ask torch for deterministic kernels (slower on GPU).
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    return torch.Generator().manual_seed(seed)


@dataclass(frozen=True)
class Profile:
    """Sizes, budgets and thresholds for one way of running the course.

    ``quick`` keeps every notebook to under a minute on one CPU thread; ``full`` trains the real sizes on a
    GPU. Chapters read sizes from here and pick thresholds with :meth:`pick`, so no cell branches on the name.
    """

    name: str
    n_train: int  # samples of the synthetic world in the training split
    n_val: int
    n_test: int
    epochs: int  # a typical chapter's training length
    batch_size: int
    width: int  # base channel / hidden width of the course's encoders
    n_seeds: int  # repeats for mean ± std tables
    seed: int = 0

    def pick(self, *, quick: T, full: T) -> T:
        """Return the value for this profile, e.g. ``P.pick(quick=0.6, full=0.9)`` for a threshold."""
        return quick if self.name == "quick" else full

    def replace(self, **changes: Any) -> Profile:
        """A copy with some fields changed (unknown names raise)."""
        known = {f.name for f in fields(self)}
        bad = sorted(set(changes) - known)
        if bad:
            raise ValueError(f"unknown Profile field(s) {bad}; known: {sorted(known)}")
        return Profile(**{**{f.name: getattr(self, f.name) for f in fields(self)}, **changes})


QUICK = Profile(name="quick", n_train=4000, n_val=1000, n_test=1000, epochs=4, batch_size=128, width=32,
                n_seeds=2)
FULL = Profile(name="full", n_train=50000, n_val=5000, n_test=5000, epochs=20, batch_size=512, width=64,
               n_seeds=5)


def profile(name: str | None = None) -> Profile:
    """The active profile: ``name``, else ``MMCOURSE_PROFILE``, else ``full`` with CUDA and ``quick`` without.

    Raises:
        ValueError: the name is not ``quick`` or ``full``.
    """
    chosen = name if name is not None else os.environ.get("MMCOURSE_PROFILE", "").strip()
    if not chosen:
        chosen = "full" if torch.cuda.is_available() else "quick"
    if chosen not in PROFILES:
        raise ValueError(f"MMCOURSE_PROFILE={chosen!r} is not a profile; use one of: {', '.join(PROFILES)}")
    return QUICK if chosen == "quick" else FULL


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """The autocast dtype for a device: bf16 on GPUs that have it, fp16 on older GPUs, None on CPU/MPS."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
