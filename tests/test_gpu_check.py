"""``make gpu-check`` cannot rot: its dry run (toy sizes on the CPU) runs end to end and its results file
becomes RESULTS.md rows; the load check refuses contended speed-ups; the chapter runner executes notebooks
without Jupyter and names the claim that failed; steps that would overrun the budget are skipped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmcourse.cli import main as cli_main
from mmcourse.engine import machine
from mmcourse.engine.bench import Result, Setting, results_table
from mmcourse.engine.flops import peak_for_name
from mmcourse.gpu_check import plan as gplan
from mmcourse.gpu_check.chapters import export_script, write_fixture
from mmcourse.gpu_check.report import ingest, ladder_verdict, markdown, time_to_fraction
from mmcourse.gpu_check.run import parse_testlog, step_chapter

ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.pop("OUT", None)
    return env


def test_dry_run_end_to_end_and_ingest_into_a_copy_of_results(tmp_path):
    out = tmp_path / "gpu_check.json"
    proc = subprocess.run([sys.executable, "-m", "mmcourse.gpu_check", "--dry-run", "--out", str(out)], cwd=ROOT,
                          env=_env(), capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    res = json.loads(out.read_text())
    assert res["kind"] == "mmcourse-gpu-check" and res["dry_run"] and res["command"].endswith("--dry-run --out "
                                                                                               + str(out))
    for key in ("torch", "python", "cpus", "device"):
        assert key in res["environment"], key
    assert res["load_start"]["cpus"] >= 1 and res["started"] and res["finished"]
    tests = res["steps"]["tests"]
    assert tests["status"] == "passed" and tests["counts"].get("passed", 0) >= 6, tests.get("log_tail")
    assert {c["name"] for c in tests["cases"]} >= {"test_gpu_resident_batch_iterator",
                                                    "test_ddp_in_a_one_process_group_matches_plain_gradients"}
    rows = res["steps"]["ladder"]["data"]["rows"]
    assert [r["setting"]["name"].split(":")[0] for r in rows][:2] == ["plain loop", "engine"] and len(rows) == 6
    assert all(r["samples_per_s"][0] > 0 and "contention" in r for r in rows)
    variants = res["steps"]["mfu"]["data"]["variants"]
    assert len(variants) == 2 and all(v["gflop_per_step"] > 0 for v in variants.values())
    (fixture,) = res["chapters"]
    assert fixture["status"] == "passed" and fixture["glue"]["fx_lr"] == 0.01 and "history" in fixture["histories"]
    assert {e["notebook"] for e in res["exported"]} >= {"book/13_full_system.ipynb"}
    assert all(e["status"] == "exported" for e in res["exported"])
    assert (tmp_path / "gpu_check.log").read_text().count("=====") >= 4

    md = tmp_path / "RESULTS.md"
    original = (ROOT / "benchmarks" / "RESULTS.md").read_text()
    md.write_text(original)
    assert cli_main(["bench", "ingest", str(out), "--results", str(md)]) == 2  # a dry run is refused…
    assert md.read_text() == original
    assert cli_main(["bench", "ingest", str(out), "--results", str(md), "--allow-dry-run"]) == 0  # …unless asked
    assert cli_main(["bench", "ingest", str(out), "--results", str(md), "--allow-dry-run"]) == 0
    text = md.read_text()
    assert text.startswith(original.rstrip()) and text.count("gpu-check CPU") == 2  # one section, replaced
    assert "DRY RUN" in text and "`gpu_check_fixture.ipynb` | passed" in text and "+ torch.compile" in text


def _monitor(loads: list[float], wall: float = 1.0, cpu: float = 1.0) -> machine.LoadMonitor:
    return machine.LoadMonitor([(0.0, 0.0, loads[0]), (wall, cpu, loads[-1])])


def test_load_check_reads_the_load_average(monkeypatch):
    monkeypatch.setattr(machine.os, "getloadavg", lambda: (5.0, 4.0, 3.0))
    mon = machine.LoadMonitor()
    mon.mark()
    mon.mark()
    assert mon.max_load() == 5.0
    busy = machine.judge([mon], "cuda", cpus=2)
    assert busy.contended and "load average 5.0 on 2 CPUs" in busy.reason
    monkeypatch.setattr(machine.os, "getloadavg", lambda: (1.1, 1.0, 1.0))
    idle = machine.LoadMonitor()
    idle.mark()
    idle.mark()
    assert not machine.judge([idle], "cuda", cpus=2).contended


def test_load_check_counts_cpu_time_against_wall_time_on_cpu_runs_only():
    starved = _monitor([0.5], wall=10.0, cpu=4.0)  # the process got 0.4 of a core
    assert machine.judge([starved], "cpu", cpus=2).contended
    assert "0.40 CPU-seconds per second" in machine.judge([starved], "cpu", cpus=2).reason
    assert not machine.judge([starved], "cuda", cpus=2).contended  # a GPU run waits for the GPU, not a core
    assert not machine.judge([_monitor([0.5], wall=10.0, cpu=9.5)], "cpu", cpus=2).contended


def _result(name: str, sps: list[float], monitor: machine.LoadMonitor, plain: bool = False, device_type="cpu"):
    return Result(Setting(name, plain=plain), samples_per_s=sps, final_acc=[0.7] * len(sps),
                  epoch_secs=[[1.0, 1.0]] * len(sps), epoch_accs=[[0.6, 0.7]] * len(sps), target_acc=0.66,
                  device_type=device_type, monitors=[monitor])


def test_a_contended_run_records_no_speed_up():
    calm = _monitor([0.9], wall=10.0, cpu=9.9)
    idle_table = results_table([_result("plain", [100.0], calm, True), _result("engine", [137.0], calm)], "cpu")
    assert "1.37×" in idle_table and "contended" not in idle_table.lower()
    busy = _monitor([11.0], wall=10.0, cpu=3.0)
    table = results_table([_result("plain", [94.0], busy, True), _result("engine", [128.0], busy)], "cpu")
    assert "1.36×" not in table and table.count("not recorded (contended)") == 2
    assert "load average up to 11.0" in table and "0.30 CPU-seconds per second" in table
    back = Result.from_dict(_result("engine", [128.0], busy).to_dict())  # the verdict survives the results file
    assert back.contention.contended and back.time_to_target == [2.0]


def test_goals_are_judged_from_a_gpu_results_file(tmp_path):
    calm = _monitor([0.5], wall=10.0, cpu=10.0)
    rows = [_result("plain loop", [1000.0, 1000.0], calm, True, "cuda").to_dict(),
            _result("engine", [1500.0, 1500.0], calm, device_type="cuda").to_dict(),
            _result("+ batch 512", [6200.0, 6000.0], calm, device_type="cuda").to_dict()]
    rows[2]["time_to_target"] = [None, 3.0]  # reached the target in one repeat only: not "equal accuracy"
    verdict = ladder_verdict(rows)
    assert verdict["best_name"] == "engine" and verdict["best"] == pytest.approx(1.5) and not verdict["met"]
    rows[2]["time_to_target"] = [2.0, 2.1]
    assert ladder_verdict(rows)["met"] and ladder_verdict(rows)["best"] == pytest.approx(6.1)
    res = {"kind": "mmcourse-gpu-check", "dry_run": False, "command": "make gpu-check", "started": "now",
           "budget_s": 480, "elapsed_s": 400, "environment": {"device": "NVIDIA H200", "torch": "2.11.0",
                                                             "driver": "580.159.04", "peak_tflops": 989.0},
           "load_start": {"loadavg": [0.5, 0.4, 0.3], "cpus": 16}, "load_end": {"loadavg": [2.0, 1.0, 0.5]},
           "steps": {"ladder": {"status": "passed", "seconds": 100, "data": {"sizes": {"big_batch": 512},
                                                                             "rows": rows}},
                     "mfu": {"status": "passed", "seconds": 60, "data": {"matmul": {
                         "n": 8192, "dtype": "bfloat16", "tflops": 790.0}, "variants": {"compiled": {
                             "batch": 512, "steps_per_s": [180.0], "gflop_per_step": 1704.0, "tflops": 306.7,
                             "mfu": 0.31, "peak_tflops": 989.0, "matmul_fraction": 0.39}}}}},
           "chapters": [{"notebook": "book/13_full_system.ipynb", "status": "failed", "seconds": 90,
                         "failure": {"cell": 12, "kind": "claim failed", "type": "AssertionError",
                                     "message": "motion: test accuracy 0.3 is not above chance"},
                         "histories": {"history": [{"epoch_time_s": 2.0, "val_acc": 0.5},
                                                   {"epoch_time_s": 2.0, "val_acc": 0.9}]}}]}
    text = markdown(res)
    assert "**6.10×** (+ batch 512) — met" in text and "**31.0%** — met" in text
    assert "claim failed in cell 12: AssertionError: motion" in text and "95 % after 4.0 s" in text
    path = tmp_path / "gpu_check.json"
    path.write_text(json.dumps(res))
    md = tmp_path / "R.md"
    ingest(path, md)
    assert "<!-- mmcourse gpu-check NVIDIA H200: begin -->" in md.read_text()
    total, final, ttt = time_to_fraction([{"epoch_time_s": 1.0, "val_acc": 0.2}, {"epoch_time_s": 1.0}])
    assert total == 2.0 and final != final and ttt is None  # no final accuracy: no time to it


def test_chapter_runner_names_the_failed_claim_without_ipython(tmp_path):
    nb = write_fixture(tmp_path / "nb.ipynb")
    data = json.loads(nb.read_text())
    data["cells"].append({"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
                          "source": "assert 1 + 1 == 3, 'arithmetic is broken'"})
    nb.write_text(json.dumps(data))
    out = tmp_path / "report.json"
    code = ("import sys; sys.modules['IPython'] = None; sys.modules['ipywidgets'] = None\n"  # as on the GPU machine
            "from mmcourse.gpu_check.chapters import main\n"
            f"sys.exit(main([{str(nb)!r}, '--json', {str(out)!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(), capture_output=True, text=True,
                          timeout=600)
    report = json.loads(out.read_text())
    assert proc.returncode == 1 and report["status"] == "failed", proc.stderr[-3000:]
    assert report["stubs"] == ["IPython.display", "ipywidgets"]
    f = report["failure"]
    assert f["kind"] == "claim failed" and f["cell"] == len(data["cells"]) - 1 and "arithmetic" in f["message"]
    assert report["glue"] == {"fx_lr": 0.01, "fx_acc": report["glue"]["fx_acc"]} and "final loss" in proc.stdout


def test_export_skips_colab_cells_and_rejects_other_magics(tmp_path):
    nb = write_fixture(tmp_path / "nb.ipynb")
    script = export_script(nb)
    assert "%pip" not in script and "skipped (colab-install)" in script and "history = fit(" in script
    data = json.loads(nb.read_text())
    data["cells"][2]["source"] = "%timeit sum(range(10))"
    nb.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"nb.ipynb cell 2 uses IPython syntax '%timeit"):
        export_script(nb)


def test_a_chapter_over_the_budget_is_skipped_saying_so(tmp_path):
    clock = gplan.Clock(gplan.RESERVE_S + 30)
    res = step_chapter("book/05_residual_networks.ipynb", gplan.REAL, clock, {}, tmp_path, tmp_path / "log")
    assert res["status"] == "skipped" and "estimated 90 s > " in res["reason"] and "480-s budget" in res["reason"]
    assert not (tmp_path / "log").exists()  # nothing was started
    order = gplan.book_chapters()
    assert order[0] == "book/13_full_system.ipynb" and len(order) >= 13


def test_no_gpu_means_no_real_run():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    proc = subprocess.run([sys.executable, "-m", "mmcourse.gpu_check", "--steps", ""], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "no CUDA GPU here" in proc.stderr and "--dry-run" in proc.stderr


def test_peak_table_knows_the_h200_and_can_be_overridden(monkeypatch):
    assert peak_for_name("NVIDIA H200") == 989e12 and peak_for_name("NVIDIA H200 NVL") == 835e12
    assert peak_for_name("NVIDIA H100 80GB HBM3") == 989e12 and peak_for_name("Tesla T4") == 65e12
    assert peak_for_name("Some Future GPU") is None
    monkeypatch.setenv("MMCOURSE_PEAK_TFLOPS", "123.5")
    assert peak_for_name("Some Future GPU") == 123.5e12
    monkeypatch.setenv("MMCOURSE_PEAK_TFLOPS", "fast")
    with pytest.raises(ValueError, match="MMCOURSE_PEAK_TFLOPS='fast'"):
        peak_for_name("x")


def test_a_step_is_stopped_at_its_budget_with_its_children(tmp_path):
    log = tmp_path / "log"
    child = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); " \
            "print('started', flush=True); time.sleep(60)"
    res = gplan.run_process([sys.executable, "-c", child], 3, _env(), log, "sleeper")
    assert res["timed_out"] and res["seconds"] < 30 and "started" in res["log_tail"]
    assert "stopped at its budget of 3 s" in log.read_text()


def test_test_results_are_kept_line_by_line(tmp_path):
    (tmp_path / "test_x.py").write_text("import pytest\ndef test_ok(): pass\ndef test_bad(): assert 1 == 2, 'no'\n"
                                        "@pytest.mark.skip(reason='why not')\ndef test_skip(): pass\n")
    log = tmp_path / "tests.jsonl"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p",
                    "mmcourse.gpu_check.pytest_log", "test_x.py"], cwd=tmp_path, capture_output=True, timeout=300,
                   env={**_env(), "MMCOURSE_GPU_CHECK_TESTLOG": str(log), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"})
    got = parse_testlog(log)
    assert got["counts"] == {"passed": 1, "failed": 1, "skipped": 1}
    by_name = {c["name"]: c for c in got["cases"]}
    assert "no" in by_name["test_bad"]["message"] and by_name["test_skip"]["message"] == "why not"
