"""The machine a benchmark ran on: device, versions and driver for the record, and whether other jobs were
competing for it (chapter 13, ``mmcourse bench``, ``make gpu-check``).

A speed-up measured while other processes share the cores is not a result: the plain loop and the engine
are disturbed differently. :class:`LoadMonitor` reads the 1-minute load average (``os.getloadavg``) and this
process's CPU and wall clocks at every mark of a timed interval; :func:`judge` calls the run *contended* when
the load exceeded the number of CPUs (more runnable threads than cores: someone waited) or, on a CPU run,
when the process got less than :data:`MIN_CPU_PER_WALL` CPU-seconds per wall-second (it waited for a core).
"""

from __future__ import annotations

import math
import os
import platform
import subprocess
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

MIN_CPU_PER_WALL = 0.8  # a CPU run that got less than this share of a core was waiting for one


def cpu_count() -> int:
    """CPUs this process may run on (the affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def load1() -> float:
    """The 1-minute load average (NaN where the OS has none, e.g. Windows)."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return math.nan


@dataclass
class LoadMonitor:
    """Load average, process CPU time and wall time at marks; intervals are (start, stop) mark pairs."""

    marks: list[tuple[float, float, float]] = field(default_factory=list)  # (wall s, process CPU s, load1)

    def mark(self) -> None:
        self.marks.append((time.perf_counter(), time.process_time(), load1()))

    def max_load(self) -> float:
        loads = [m[2] for m in self.marks if not math.isnan(m[2])]
        return max(loads) if loads else math.nan

    def cpu_per_wall(self) -> float | None:
        """Process CPU seconds per wall second over the (start, stop) pairs of marks; None without a pair."""
        pairs = list(zip(self.marks[0::2], self.marks[1::2]))
        wall = sum(b[0] - a[0] for a, b in pairs)
        cpu = sum(b[1] - a[1] for a, b in pairs)
        return cpu / wall if pairs and wall > 0 else None


@dataclass(frozen=True)
class Contention:
    """The verdict on one run: ``contended`` with the reason, and the readings behind it."""

    cpus: int
    max_load: float
    cpu_per_wall: float | None
    contended: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["max_load"] = None if math.isnan(self.max_load) else self.max_load
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Contention:
        return cls(int(d["cpus"]), math.nan if d.get("max_load") is None else float(d["max_load"]),
                   d.get("cpu_per_wall"), bool(d["contended"]), str(d.get("reason", "")))


def judge(monitors: list[LoadMonitor], device_type: str, cpus: int | None = None) -> Contention:
    """Contended when the load average exceeded the CPU count at any mark, or (CPU runs only) when the process
    got less than :data:`MIN_CPU_PER_WALL` of a core over the timed intervals."""
    cpus = cpus or cpu_count()
    loads = [m.max_load() for m in monitors]
    loads = [x for x in loads if not math.isnan(x)]
    top = max(loads) if loads else math.nan
    ratios = [r for r in (m.cpu_per_wall() for m in monitors) if r is not None]
    ratio = min(ratios) if ratios and device_type == "cpu" else None
    reasons = []
    if not math.isnan(top) and top > cpus:
        reasons.append(f"load average {top:.1f} on {cpus} CPUs")
    if ratio is not None and ratio < MIN_CPU_PER_WALL:
        reasons.append(f"the process got {ratio:.2f} CPU-seconds per second")
    return Contention(cpus, top, ratio, bool(reasons), "; ".join(reasons))


def environment(device: torch.device) -> dict[str, Any]:
    """Device, versions, driver and CPU count for the record (nothing here initialises CUDA on a CPU run)."""
    env: dict[str, Any] = {"torch": torch.__version__, "python": platform.python_version(), "cpus": cpu_count(),
                           "platform": platform.platform()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(device=torch.cuda.get_device_name(device), cuda=str(torch.version.cuda),
                   cudnn=str(torch.backends.cudnn.version()), driver=nvidia_driver(),
                   gpu_memory_gib=round(props.total_memory / 2**30, 1), sm_count=props.multi_processor_count,
                   capability=f"{props.major}.{props.minor}")
    else:
        env["device"] = f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    return env


def nvidia_driver() -> str:
    """The NVIDIA driver version from ``nvidia-smi`` ("unknown" where it cannot be read)."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def contention_note(busy: list[Contention]) -> str:
    """The note under a table whose speed-ups were not recorded: the worst readings of the contended runs."""
    if not busy:
        return ""
    loads = [c.max_load for c in busy if c.max_load == c.max_load and c.max_load > c.cpus]
    ratios = [c.cpu_per_wall for c in busy if c.cpu_per_wall is not None and c.cpu_per_wall < MIN_CPU_PER_WALL]
    why = ([f"load average up to {max(loads):.1f} on {busy[0].cpus} CPUs"] if loads else []) + (
        [f"the process got as little as {min(ratios):.2f} CPU-seconds per second"] if ratios else [])
    return (f"\n*Contended*: other jobs shared the machine during the run ({'; '.join(why)}), so no speed-up is "
            "recorded; the samples/s are what this run got, not the idle machine's speed.\n")


def half_precision(device: torch.device) -> str:
    """``"bf16"``, or ``"fp16"`` on GPUs without native bf16 (e.g. Colab's T4)."""
    if device.type != "cuda":
        return "bf16"
    try:
        native = torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # torch without the keyword
        native = torch.cuda.is_bf16_supported()
    return "bf16" if native else "fp16"
