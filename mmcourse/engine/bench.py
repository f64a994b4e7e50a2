"""The benchmark of chapter 13, ``mmcourse bench`` and ``make gpu-check``: the plain PyTorch loop a reader writes
first against the engine, then the engine's techniques added one at a time; samples/s (mean ± std over repeats,
warm-up epoch excluded, CUDA events on a GPU), time to a target accuracy, final accuracy, peak memory, FLOPs,
MFU, and whether other jobs shared the machine (a contended run records no speed-up).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
from torch import nn

from mmcourse.engine.evaluation import evaluate, task_stats
from mmcourse.engine.flops import mfu, peak_flops, train_step_flops
from mmcourse.engine.loop import fit
from mmcourse.engine.machine import Contention, LoadMonitor, contention_note, half_precision, judge
from mmcourse.engine.machine import environment as environment  # re-exported: chapter 13 imports it from here
from mmcourse.engine.minimal import plain_loop


class Timer:
    """Elapsed seconds of marked intervals: CUDA events on a GPU (read once at the end), else wall time
    (``perf_counter``); ``clock="process"`` counts this process's CPU seconds instead, which a machine shared
    with other jobs disturbs far less (fair for single-threaded CPU runs only). Every mark also reads the machine's
    load into ``monitor`` (see :mod:`mmcourse.engine.machine`)."""

    def __init__(self, device: torch.device, clock: str = "wall"):
        if clock not in ("wall", "process"):
            raise ValueError(f"clock={clock!r}; use 'wall' or 'process'")
        self.cuda = device.type == "cuda"
        self.clock = time.process_time if clock == "process" else time.perf_counter
        self.marks: list[tuple[Any, Any]] = []
        self.monitor = LoadMonitor()

    def _now(self) -> Any:
        if self.cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            return ev
        return self.clock()

    def start(self) -> None:
        self.monitor.mark()
        self.marks.append((self._now(), None))

    def stop(self) -> None:
        self.marks[-1] = (self.marks[-1][0], self._now())
        self.monitor.mark()

    def seconds(self) -> list[float]:
        if self.cuda:
            torch.cuda.synchronize()
            return [a.elapsed_time(b) / 1e3 for a, b in self.marks]
        return [b - a for a, b in self.marks]


@dataclass(frozen=True)
class Setting:
    """One row of the table: the plain loop, or ``fit`` with these switches."""

    name: str
    plain: bool = False
    batch_size: int = 128
    amp: str = "off"
    channels_last: bool = False
    compile: bool | str = False
    gpu_only: bool = False


def settings(batch_size: int, big_batch: int, compile_backend: bool | str = True, half: str = "bf16"
             ) -> list[Setting]:
    """The ladder: plain loop → engine (GPU-resident data, no host sync) → +bf16 → +channels_last → +compile
    → +larger batch. Each row keeps the switches of the rows above it. ``half="fp16"`` for GPUs without bf16."""
    base = Setting("engine: resident data, no host sync (fp32)", batch_size=batch_size)
    bf16 = replace(base, name=f"+ {half} autocast", amp=half, gpu_only=True)
    cl = replace(bf16, name="+ channels_last", channels_last=True)
    comp = replace(cl, name="+ torch.compile", compile=compile_backend)
    big = replace(comp, name=f"+ batch {big_batch}", batch_size=big_batch)
    return [Setting("plain loop: DataLoader, fp32, eager, .item() per step", plain=True, batch_size=batch_size),
            base, bf16, cl, comp, big]


@dataclass
class Result:
    """Measured figures of one setting over its repeats."""

    setting: Setting
    samples_per_s: list[float] = field(default_factory=list)
    final_acc: list[float] = field(default_factory=list)
    epoch_secs: list[list[float]] = field(default_factory=list)  # per repeat, per epoch (training part only)
    epoch_accs: list[list[float]] = field(default_factory=list)  # per repeat, validation accuracy per epoch
    target_acc: float | None = None
    peak_mem_bytes: list[int] = field(default_factory=list)
    flops_per_sample: float | None = None
    device_type: str = "cpu"
    monitors: list[LoadMonitor] = field(default_factory=list)  # one per repeat
    contention_record: Contention | None = None  # a result read back from JSON carries its verdict

    @property
    def contention(self) -> Contention:
        """Whether other jobs competed for the machine during this setting's timed epochs."""
        return self.contention_record or judge(self.monitors, self.device_type)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (JSON): the setting, every measurement and the contention verdict."""
        keys = ("samples_per_s", "final_acc", "epoch_secs", "epoch_accs", "target_acc", "peak_mem_bytes",
                "flops_per_sample", "device_type")
        return {"setting": asdict(self.setting), **{k: getattr(self, k) for k in keys},
                "time_to_target": self.time_to_target, "contention": self.contention.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Result:
        keys = ("samples_per_s", "final_acc", "epoch_secs", "epoch_accs", "target_acc", "peak_mem_bytes",
                "flops_per_sample", "device_type")
        return cls(Setting(**d["setting"]), **{k: d[k] for k in keys if k in d},
                   contention_record=Contention.from_dict(d["contention"]) if d.get("contention") else None)

    @property
    def time_to_target(self) -> list[float | None]:
        """Per repeat: training seconds (warm-up epoch included) until validation accuracy ≥ ``target_acc``."""
        out: list[float | None] = []
        for secs, accs in zip(self.epoch_secs, self.epoch_accs):
            hit = [i for i, a in enumerate(accs) if self.target_acc is not None and a >= self.target_acc]
            out.append(sum(secs[: hit[0] + 1]) if hit else None)
        return out

    @property
    def throughput(self) -> tuple[float, float]:
        v = self.samples_per_s
        return statistics.fmean(v), statistics.stdev(v) if len(v) > 1 else 0.0


class _EpochTimer:
    """A ``fit`` callback: times the training part of each epoch and evaluates after it (untimed)."""

    def __init__(self, timer: Timer, val: object, batch_size: int):
        self.timer, self.val, self.bs, self.accs = timer, val, batch_size, []

    def on_epoch_begin(self, state) -> None:
        self.timer.start()

    def on_epoch_end(self, state, row) -> None:
        self.timer.stop()
        self.accs.append(evaluate(state.model, self.val, batch_size=self.bs)["acc"])


def run_setting(setting: Setting, make_model, train: object, val: object, *, epochs: int, repeats: int, lr: float,
                device: torch.device, target_acc: float | None = None, clock: str = "wall") -> Result:
    """Train a fresh model ``repeats`` times with ``setting``; the first epoch of each run is warm-up."""
    if epochs < 2:
        raise ValueError("the benchmark needs epochs >= 2: the first epoch is warm-up and not timed")
    res = Result(setting, target_acc=target_acc, device_type=device.type)
    for r in range(repeats):
        torch.manual_seed(r)
        model = make_model().to(device)
        if r == 0:
            res.flops_per_sample = _flops_per_sample(model, val, device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        timer = Timer(device, clock)
        if setting.plain:
            accs = plain_loop(model, train, val, epochs=epochs, batch_size=setting.batch_size, lr=lr,
                              device=device, timer=timer, optimizer="adamw", dataloader=True)
        else:
            cb = _EpochTimer(timer, val, 512)
            fit(model, train, epochs=epochs, lr=lr, batch_size=setting.batch_size, schedule="constant",
                device=device, amp=setting.amp, channels_last=setting.channels_last, compile=setting.compile,
                callbacks=[cb], progress=False, seed=r)
            accs = cb.accs
        secs = timer.seconds()
        res.monitors.append(timer.monitor)
        n = len(train)
        per_epoch = n // setting.batch_size * setting.batch_size if setting.compile else n
        res.samples_per_s.append(per_epoch * (len(secs) - 1) / sum(secs[1:]))
        res.final_acc.append(accs[-1])
        res.epoch_secs.append(secs)
        res.epoch_accs.append(list(accs))
        res.peak_mem_bytes.append(torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0)
    return res


def _flops_per_sample(model: nn.Module, data: object, device: torch.device) -> float:
    b = min(len(data), 8)
    inputs = {k: v[:b].to(device) for k, v in data.inputs.items()}
    targets = {k: v[:b].to(device) for k, v in data.targets.items()}
    return train_step_flops(model, inputs, lambda out: task_stats(out, targets)[0] / b) / b


def _fmt_mean_std(v: list[float], fmt: str = "{:.0f}") -> str:
    if not v:
        return "—"
    m = statistics.fmean(v)
    s = statistics.stdev(v) if len(v) > 1 else 0.0
    return f"{fmt.format(m)} ± {fmt.format(s)}"


def results_table(results: list[Result], device: torch.device | str, *, gpu_rows_missing: bool = False,
                  big_batch: int = 512, peak_tflops: float | None = None) -> str:
    """A markdown table of the ladder; the plain loop is the 1.0× reference. Settings that need a GPU on a CPU
    run read "not yet measured". A speed-up is recorded only when neither its run nor the plain loop's was
    contended (:mod:`mmcourse.engine.machine`); otherwise the cell says why and a note follows the table.
    ``peak_tflops`` (for tables made from a results file) replaces asking the live device for its peak."""
    device = torch.device(device)
    peak = peak_tflops * 1e12 if peak_tflops else (peak_flops(device)[0] if device.type == "cuda" else None)
    head = ("| setting | batch | samples/s | speed-up | final val acc | time to target (s) | peak memory | "
            "GFLOP/sample | MFU |\n|---|---|---|---|---|---|---|---|---|\n")
    base = results[0] if results and results[0].setting.plain else None
    lines, notes = [], []
    for r in results:
        mean, _ = r.throughput
        ttt = [t for t in r.time_to_target if t is not None]
        ttt_s = "not reached"
        if ttt:
            ttt_s = _fmt_mean_std(ttt, "{:.1f}")
            if len(ttt) < len(r.time_to_target):
                ttt_s += f" ({len(ttt)}/{len(r.time_to_target)} reached)"
        mem = "n/a (CPU)" if device.type != "cuda" else (
            f"{max(r.peak_mem_bytes) / 2**20:.0f} MiB" if r.peak_mem_bytes else "—")
        gflop = f"{r.flops_per_sample / 1e9:.4f}" if r.flops_per_sample else "—"
        u = mfu(r.flops_per_sample or 0.0, mean, peak)
        u_s = "n/a (no peak for this device)" if u is None else f"{u:.1%}"
        speed = "—"
        if base is not None:
            busy = [x.contention for x in (base, r) if x.contention.contended]
            speed = f"{mean / base.throughput[0]:.2f}×" if not busy else "not recorded (contended)"
            notes += busy
        lines.append(f"| {r.setting.name} | {r.setting.batch_size} | {_fmt_mean_std(r.samples_per_s)} | {speed} | "
                     f"{_fmt_mean_std(r.final_acc, '{:.3f}')} | {ttt_s} | {mem} | {gflop} | {u_s} |")
    if gpu_rows_missing:
        for s in settings(128, big_batch):
            if s.gpu_only:
                lines.append(f"| {s.name} (GPU) | — | not yet measured | — | — | — | — | — | — |")
    return head + "\n".join(lines) + "\n" + contention_note(notes)


def run_ladder(make_model, train: object, val: object, *, device: torch.device, epochs: int, repeats: int,
               lr: float = 2e-3, batch_size: int = 128, big_batch: int = 512, compile_backend: bool | str = True,
               target_acc: float | None = None, include: tuple[str, ...] | None = None, clock: str = "wall",
               gpu_rows: bool | None = None, on_result=None) -> list[Result]:
    """Run the ladder of :func:`settings`. GPU-only rows run on CUDA only, unless ``gpu_rows`` is True (the
    dry run of ``make gpu-check`` runs them on a CPU to exercise the code) or False. ``target_acc`` defaults
    to 95 % of the plain loop's mean final accuracy. ``on_result(result)`` is called after each setting."""
    results: list[Result] = []
    with_gpu_rows = device.type == "cuda" if gpu_rows is None else gpu_rows
    for s in settings(batch_size, big_batch, compile_backend, half_precision(device)):
        if (s.gpu_only and not with_gpu_rows) or (include is not None and s.name not in include):
            continue
        r = run_setting(s, make_model, train, val, epochs=epochs, repeats=repeats, lr=lr, device=device,
                        target_acc=target_acc, clock=clock)
        if s.plain and target_acc is None:
            target_acc = r.target_acc = 0.95 * statistics.fmean(r.final_acc)
        results.append(r)
        if on_result is not None:
            on_result(r)
    return results
