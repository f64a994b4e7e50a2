"""The results file of ``make gpu-check`` as ``benchmarks/RESULTS.md`` rows: ``mmcourse bench ingest FILE``.

One marked section per GPU model (a re-run on the same model replaces it, other GPUs' sections stay): the
machine and versions, the goals of issue 20 with the measured values (ladder ≥ 5× the plain loop at equal
accuracy, ResNet-18 MFU ≥ 25 % of the dense bf16 peak), the CUDA tests, the ladder, the MFU and every
chapter that ran, with its glued numbers and the claim that failed, if one did.
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path
from typing import Any

KIND = "mmcourse-gpu-check"
SPEEDUP_GOAL, MFU_GOAL = 5.0, 0.25


def load_results(path: str | Path) -> dict[str, Any]:
    """Read a results file, refusing anything that is not one."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("kind") != KIND:
        raise ValueError(f"{path} is not a `make gpu-check` results file (no \"kind\": \"{KIND}\")")
    return data


def _mean(v: list[float]) -> float:
    return statistics.fmean(v) if v else float("nan")


def ladder_verdict(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The fastest ladder row that reached the target accuracy (95 % of the plain loop's) in every repeat,
    its speed-up over the plain loop, and the engine's own (fp32) ratio; None without a plain-loop row."""
    if not rows or not rows[0]["setting"]["plain"]:
        return None
    base = _mean(rows[0]["samples_per_s"])
    equal = [r for r in rows if all(t is not None for t in r["time_to_target"])]
    best = max(equal, key=lambda r: _mean(r["samples_per_s"]), default=None)
    contended = any(r.get("contention", {}).get("contended") for r in rows)
    out = {"contended": contended, "engine": _mean(rows[1]["samples_per_s"]) / base if len(rows) > 1 else None,
           "best_name": best["setting"]["name"] if best else None,
           "best": _mean(best["samples_per_s"]) / base if best else None}
    out["met"] = bool(out["best"] and out["best"] >= SPEEDUP_GOAL and not contended)
    return out


def time_to_fraction(rows: list[dict[str, Any]], key: str = "val_acc", fraction: float = 0.95
                     ) -> tuple[float, float, float | None]:
    """``(training seconds, final key, seconds until key ≥ fraction × final)`` of a history's rows."""
    secs = [float(r.get("epoch_time_s") or 0.0) for r in rows]
    vals = [r.get(key) for r in rows]
    final = vals[-1] if vals and isinstance(vals[-1], (int, float)) else None
    if final is None:
        return sum(secs), float("nan"), None
    hit = next((i for i, v in enumerate(vals) if isinstance(v, (int, float)) and v >= fraction * final), None)
    return sum(secs), float(final), None if hit is None else sum(secs[: hit + 1])


def _cell(x: Any) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def _tests_md(step: dict[str, Any]) -> list[str]:
    counts = ", ".join(f"{v} {k}" for k, v in step.get("counts", {}).items())
    lines = [f"#### CUDA tests (`pytest -m cuda`): {step['status']}{' — ' + counts if counts else ''} "
             f"({step.get('seconds', 0):.0f} s)", ""]
    cases = step.get("cases", [])
    if cases:
        lines += ["| test | outcome | seconds | message |", "|---|---|---|---|"]
        lines += [f"| `{c['name']}` | {c['outcome']} | {c['seconds']:.1f} | {_cell(c.get('message', ''))[:300]} |"
                  for c in cases]
    return lines + [""]


def _ladder_md(step: dict[str, Any], env: dict[str, Any]) -> list[str]:
    from mmcourse.engine.bench import Result, results_table

    sizes = step.get("data", {}).get("sizes", {})
    rows = step.get("data", {}).get("rows", [])
    lines = [f"#### Ladder: plain loop → engine → + bf16 → + channels_last → + compile → + batch "
             f"{sizes.get('big_batch', '—')}: {step['status']} ({step.get('seconds', 0):.0f} s)", "",
             f"World model on {', '.join(sizes.get('modalities', []))}: {sizes.get('n_train')} training samples, "
             f"width {sizes.get('width')}, {sizes.get('epochs')} epochs (the first excluded), {sizes.get('repeats')} "
             "repeats; target = 95 % of the plain loop's final validation accuracy.", ""]
    if rows:
        device = "cuda" if rows[0].get("device_type") == "cuda" else "cpu"
        lines.append(results_table([Result.from_dict(r) for r in rows], device, peak_tflops=env.get("peak_tflops")))
    return lines


def _mfu_md(step: dict[str, Any]) -> list[str]:
    data = step.get("data", {})
    mm = data.get("matmul") or {}
    lines = [f"#### ResNet-18 (32×32) training step: {step['status']} ({step.get('seconds', 0):.0f} s)", ""]
    if mm:
        lines += [f"Measured ceiling: a {mm['n']}³ {mm['dtype']} matrix product on random data ran at "
                  f"{mm['tflops']:.1f} TFLOP/s.", ""]
    if data.get("variants"):
        lines += ["| variant | batch | samples/s | GFLOP/step | TFLOP/s | MFU (spec-sheet peak) | of the measured "
                  "matmul |", "|---|---|---|---|---|---|---|"]
        for name, r in data["variants"].items():
            sps = [s * r["batch"] for s in r["steps_per_s"]]
            sd = statistics.stdev(sps) if len(sps) > 1 else 0.0
            u = "n/a" if r["mfu"] is None else f"{r['mfu']:.1%} of {r['peak_tflops']:.0f}"
            frac = "—" if r.get("matmul_fraction") is None else f"{r['matmul_fraction']:.1%}"
            lines.append(f"| {name} | {r['batch']} | {_mean(sps):.0f} ± {sd:.0f} | {r['gflop_per_step']:.1f} | "
                         f"{r['tflops']:.2f} | {u} | {frac} |")
    return lines + [""]


def _chapters_md(chapters: list[dict[str, Any]], env: dict[str, Any], profile: str) -> list[str]:
    from mmcourse.engine.bench import Result, results_table

    lines = [f"#### Chapters ({profile} profile, executed as scripts)", "",
             "| notebook | outcome | seconds | training (time to 95 % of final val acc) | glued numbers |",
             "|---|---|---|---|---|"]
    extra: list[str] = []
    for c in chapters:
        outcome = c["status"]
        if c.get("failure"):
            f = c["failure"]
            outcome += f" — {f['kind']} in cell {f['cell']}: {f['type']}: {f['message'][:200]}"
        elif c.get("reason"):
            outcome += f" — {c['reason']}"
        train = []
        for name, rows in (c.get("histories") or {}).items():
            total, final, ttt = time_to_fraction(rows)
            train.append(f"`{name}`: {len(rows)} epochs, {total:.1f} s, val acc {final:.3f}"
                         + ("" if ttt is None else f", 95 % after {ttt:.1f} s"))
        glue = "; ".join(f"{k} = {v}" for k, v in (c.get("glue") or {}).items())
        lines.append(f"| `{c['notebook']}` | {_cell(outcome)} | {c.get('seconds', 0):.0f} | {_cell('; '.join(train))} "
                     f"| {_cell(glue)} |")
        for name, rows in (c.get("bench") or {}).items():
            device = "cuda" if rows and rows[0].get("device_type") == "cuda" else "cpu"
            extra += ["", f"`{c['notebook']}`, its own ladder (`{name}`):", "",
                      results_table([Result.from_dict(r) for r in rows], device,
                                    peak_tflops=env.get("peak_tflops"))]
    return lines + extra + [""]


def markdown(res: dict[str, Any], source: str = "") -> str:
    """The RESULTS.md section for one results file."""
    env, steps = res.get("environment", {}), res.get("steps", {})
    dry = " — DRY RUN: toy sizes on a CPU, not a measurement" if res.get("dry_run") else ""
    load0, load1 = res.get("load_start", {}), res.get("load_end", {})
    la = lambda d: "/".join(f"{x:.1f}" for x in d.get("loadavg") or []) or "n/a"  # noqa: E731
    lines = [f"### `make gpu-check` on {env.get('device', '?')} ({res.get('started', '?')}){dry}", "",
             f"torch {env.get('torch')}, CUDA {env.get('cuda', '—')}, cuDNN {env.get('cudnn', '—')}, driver "
             f"{env.get('driver', '—')}, Python {env.get('python')}, {env.get('cpus')} CPUs. Load average (1/5/15 "
             f"min) at the start {la(load0)}, at the end {la(load1)} on {load0.get('cpus', '?')} CPUs"
             + (f"; GPU at the start: {load0['gpu']}" if load0.get("gpu") else "") + ". "
             f"Ran {res.get('elapsed_s', 0):.0f} s of a {res.get('budget_s', 0):.0f}-s budget. Command: "
             f"`{res.get('command', '?')}`" + (f"; results file `{source}`" if source else "") + ".", ""]
    verdict = ladder_verdict(steps.get("ladder", {}).get("data", {}).get("rows", []))
    goals = []
    if verdict:
        goals.append(f"ladder ≥ {SPEEDUP_GOAL:.0f}× the plain loop at equal accuracy: "
                     + ("not recorded (contended)" if verdict["contended"] else
                        f"**{verdict['best']:.2f}×** ({verdict['best_name']})" if verdict["best"] else "no row "
                        "reached the target accuracy") + (" — met" if verdict["met"] else " — not met")
                     + ("" if verdict["engine"] is None else f"; the fp32 engine alone {verdict['engine']:.2f}×"))
    variants = steps.get("mfu", {}).get("data", {}).get("variants", {})
    mfus = [v["mfu"] for v in variants.values() if v.get("mfu") is not None]
    if variants:
        goals.append(f"ResNet-18 MFU ≥ {MFU_GOAL:.0%}: " + (f"**{max(mfus):.1%}** — " + (
            "met" if max(mfus) >= MFU_GOAL else "not met") if mfus else "n/a (no peak for this device)"))
    if goals:
        lines += ["Goals (issue 20): " + "; ".join(goals) + ".", ""]
    for name in ("tests", "ladder", "mfu"):
        step = steps.get(name)
        if step is None:
            continue
        if step["status"] == "skipped":
            lines += [f"#### {name}: skipped — {step.get('reason', '')}", ""]
            continue
        lines += {"tests": _tests_md, "mfu": _mfu_md}.get(name, lambda s: _ladder_md(s, env))(step)
    if res.get("chapters"):
        lines += _chapters_md(res["chapters"], env, "quick" if res.get("dry_run") else "full")
    return "\n".join(lines).rstrip() + "\n"


def markers(res: dict[str, Any]) -> tuple[str, str]:
    """The begin/end markers of this GPU model's section (dry runs get their own)."""
    name = re.sub(r"[^A-Za-z0-9 ._-]", "", str(res.get("environment", {}).get("device", "unknown")))
    name += " (dry run)" if res.get("dry_run") else ""
    return f"<!-- mmcourse gpu-check {name}: begin -->", f"<!-- mmcourse gpu-check {name}: end -->"


def ingest(path: str | Path, results_md: str | Path, *, allow_dry_run: bool = False) -> str:
    """Write the section for the results file ``path`` into ``results_md`` (replacing this GPU model's
    previous section, else appending); returns the section. A dry run is refused unless ``allow_dry_run``."""
    res = load_results(path)
    if res.get("dry_run") and not allow_dry_run:
        raise ValueError(f"{path} is a dry run (toy sizes on a CPU): its numbers are not results; pass "
                         "--allow-dry-run to write it anyway (tests do, into a copy)")
    text = markdown(res, Path(path).name)
    begin, end = markers(res)
    md = Path(results_md)
    old = md.read_text(encoding="utf-8") if md.exists() else ""
    block = f"{begin}\n{text}{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    new = pattern.sub(lambda _m: block, old) if pattern.search(old) else old.rstrip() + "\n\n" + block + "\n"
    md.write_text(new, encoding="utf-8")
    return text
