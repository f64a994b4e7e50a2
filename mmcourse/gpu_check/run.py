"""``python -m mmcourse.gpu_check``: run the plan of :mod:`mmcourse.gpu_check.plan` and write the results file.

Prints one line per step and a summary last (the end of the output is what a remote run shows); everything
the steps print goes to the log beside the results file. Exit status 0 when every step that ran passed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from mmcourse.gpu_check.chapters import FIXTURE, write_fixture
from mmcourse.gpu_check.plan import (
    DRY,
    MIN_PARTIAL_S,
    PARTIAL_OK,
    REAL,
    ROOT,
    Clock,
    Plan,
    child_env,
    estimate,
    load_reading,
    missing_package,
    python_cmd,
    run_process,
)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def parse_testlog(path: Path) -> dict[str, Any]:
    """Per-test outcomes and counts from the lines :mod:`mmcourse.gpu_check.pytest_log` wrote."""
    cases = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    counts: dict[str, int] = {}
    for c in cases:
        counts[c["outcome"]] = counts.get(c["outcome"], 0) + 1
    return {"cases": cases, "counts": counts}


def _status(res: dict[str, Any]) -> str:
    if res["timed_out"]:
        return "stopped at its budget"
    return "passed" if res["rc"] == 0 else "failed"


def step_tests(plan: Plan, clock: Clock, env: dict[str, str], tmp: Path, log: Path) -> dict[str, Any]:
    budget = min(plan.tests_s, clock.left())
    if budget < 10:
        return {"status": "skipped", "reason": f"{clock.left():.0f} s left"}
    testlog = tmp / "cuda_tests.jsonl"
    cmd = python_cmd("-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider", "-p",
                     "mmcourse.gpu_check.pytest_log", "-rfEs", "tests/test_cuda.py")
    res = run_process(cmd, budget, {**env, "MMCOURSE_GPU_CHECK_TESTLOG": str(testlog)}, log, "CUDA tests")
    res.update(parse_testlog(testlog), status=_status(res))
    if res["rc"] == 5:
        res["status"] = "failed"  # pytest collected no test: the file or the marker is missing
    return res


def step_measure(what: str, sizes: dict[str, Any], budget_s: float, clock: Clock, env: dict[str, str], tmp: Path,
                 log: Path) -> dict[str, Any]:
    budget = min(budget_s, clock.left())
    if budget < 10:
        return {"status": "skipped", "reason": f"{clock.left():.0f} s left"}
    out = tmp / f"{what}.json"
    res = run_process(python_cmd("-m", "mmcourse.gpu_check.measure", what, "--json", str(out), "--sizes",
                                 json.dumps(sizes)), budget, env, log, what)
    res["data"] = json.loads(out.read_text()) if out.exists() else {}
    res["status"] = _status(res)
    return res


def step_chapter(nb: str, plan: Plan, clock: Clock, env: dict[str, str], tmp: Path, log: Path) -> dict[str, Any]:
    left, est = clock.left(), estimate(nb, plan.estimates or None)
    if missing_package(nb):
        return {"notebook": nb, "status": "skipped", "seconds": 0.0,
                "reason": f"needs the package {missing_package(nb)}, which is not installed here"}
    partial = Path(nb).name[:2] in PARTIAL_OK and not plan.dry
    if left < est and not (partial and left >= MIN_PARTIAL_S):
        return {"notebook": nb, "status": "skipped", "seconds": 0.0,
                "reason": f"estimated {est:.0f} s > {max(left, 0):.0f} s left of the {plan.total_s:.0f}-s budget"}
    out = tmp / (Path(nb).stem + ".json")
    path = str(write_fixture(tmp / FIXTURE)) if nb == FIXTURE else nb
    res = run_process(python_cmd("-m", "mmcourse.gpu_check.chapters", path, "--json", str(out)), left, env, log, nb)
    report = json.loads(out.read_text()) if out.exists() else {}
    status = report.get("status", "error")
    if res["timed_out"]:
        status = f"stopped at the budget after {len(report.get('cells', []))} cells"
    elif status == "running" or (res["rc"] != 0 and status == "passed"):
        status = "error"
    keep = {k: report.get(k) for k in ("cells", "glue", "failure", "histories", "bench", "stubs") if k in report}
    return {"notebook": nb, "status": status, "seconds": res["seconds"], "estimate_s": est, **keep,
            **({"log_tail": res["log_tail"]} if status not in ("passed",) else {}),
            "load_before": res["load_before"], "load_after": res["load_after"], "cpu_seconds": res["cpu_seconds"]}


def export_check(paths: tuple[str, ...]) -> list[dict[str, Any]]:
    """Convert each notebook to a script (no run): the dry run's proof that every chapter can be executed."""
    from mmcourse.gpu_check.chapters import export_script

    out = []
    for nb in paths:
        try:
            n = export_script(ROOT / nb).count("# %% [cell")
            out.append({"notebook": nb, "status": "exported", "cells": n})
        except (ValueError, SyntaxError) as e:
            out.append({"notebook": nb, "status": "failed", "reason": str(e)})
    return out


def _environment(dry: bool) -> dict[str, Any]:
    import torch

    from mmcourse.engine.flops import peak_flops
    from mmcourse.engine.machine import environment

    device = torch.device("cuda" if torch.cuda.is_available() and not dry else "cpu")
    env = environment(device)
    env["peak_tflops"] = (peak_flops(device)[0] or 0) / 1e12 or None
    return env


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m mmcourse.gpu_check", description=__doc__.splitlines()[0])
    p.add_argument("--dry-run", action="store_true", help="toy sizes on the CPU (also: MMCOURSE_GPU_CHECK_DRY=1)")
    p.add_argument("--out", type=Path, default=None, help="results file (default: $OUT/gpu_check.json if $OUT "
                   "is set, else _build/gpu_check/gpu_check.json); the log goes beside it")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds for the whole run (default 480; dry run 900, a hang guard)")
    p.add_argument("--steps", default="tests,ladder,mfu,chapters", help="comma-separated subset of the steps")
    p.add_argument("--chapters", default=None, help="comma-separated notebook paths (default: the plan's)")
    p.add_argument("--command", default=None, help="the command to record (default: this invocation)")
    args = p.parse_args(argv)
    dry = args.dry_run or os.environ.get("MMCOURSE_GPU_CHECK_DRY") == "1"
    plan = DRY if dry else REAL
    if args.budget:
        plan = replace(plan, total_s=args.budget)
    if args.chapters is not None:
        plan = replace(plan, chapters=tuple(c for c in args.chapters.split(",") if c))
    steps = {s.strip() for s in args.steps.split(",") if s.strip()}
    clock = Clock(plan.total_s)
    env_info = _environment(dry)
    if not dry and "cuda" not in env_info:
        print("gpu-check: no CUDA GPU here; run it on a GPU machine, or use --dry-run (MMCOURSE_GPU_CHECK_DRY=1) "
              "to check the script on a CPU", file=sys.stderr)
        return 2
    default_dir = Path(os.environ["OUT"]) if os.environ.get("OUT") else ROOT / "_build" / "gpu_check"
    out = args.out or default_dir / "gpu_check.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    log = out.with_suffix(".log")
    log.write_text("")
    prefix = "MMCOURSE_GPU_CHECK_DRY=1 " if dry and not args.dry_run else ""
    command = args.command or f"{prefix}python -m mmcourse.gpu_check {shlex.join(argv)}".rstrip()
    res: dict[str, Any] = {"kind": "mmcourse-gpu-check", "schema": 1, "dry_run": dry, "command": command,
                           "started": _now(), "budget_s": plan.total_s, "environment": env_info,
                           "load_start": load_reading(), "plan": {"ladder": plan.ladder, "mfu": plan.mfu},
                           "steps": {}, "chapters": []}

    def save() -> None:
        res["elapsed_s"] = clock.elapsed()
        tmp_out = out.with_suffix(".tmp")
        tmp_out.write_text(json.dumps(res, indent=1, default=str))
        os.replace(tmp_out, out)

    def say(name: str, d: dict[str, Any]) -> None:
        extra = d.get("reason") or (", ".join(f"{v} {k}" for k, v in d.get("counts", {}).items()))
        print(f"gpu-check {name:28s} {d['status']:22s} {d.get('seconds', 0):6.1f} s  {extra}", flush=True)

    save()
    env = child_env(plan)
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp_name:
        tmp = Path(tmp_name)
        if "tests" in steps:
            res["steps"]["tests"] = step_tests(plan, clock, env, tmp, log)
            say("CUDA tests", res["steps"]["tests"])
            save()
        for what, budget in (("ladder", plan.ladder_s), ("mfu", plan.mfu_s)):
            if what in steps:
                res["steps"][what] = step_measure(what, getattr(plan, what), budget, clock, env, tmp, log)
                say(what, res["steps"][what])
                save()
        if "chapters" in steps:
            for nb in plan.chapters:
                res["chapters"].append(step_chapter(nb, plan, clock, env, tmp, log))
                say(Path(nb).stem, res["chapters"][-1])
                save()
            res["exported"] = export_check(plan.export_only)
            bad = [e for e in res["exported"] if e["status"] != "exported"]
            print(f"gpu-check exported {len(res['exported']) - len(bad)} notebooks to scripts"
                  + (f"; FAILED: {bad}" if bad else ""), flush=True)
    res["finished"], res["load_end"] = _now(), load_reading()
    save()
    from mmcourse.gpu_check.report import markdown

    print("\n" + markdown(res, out.name))
    print(f"results: {out}\nlog: {log}\nnext: mmcourse bench ingest {out} --results benchmarks/RESULTS.md")
    ran = [*res["steps"].values(), *res["chapters"], *res.get("exported", [])]
    ok = all(d["status"] in ("passed", "skipped", "exported") for d in ran)
    return 0 if ok else 1
