"""A student who wants marks for nothing: every cheat of the review's table, graded by ``mmcourse grade``.

Small notebooks of the fixture chapter 99 (``tests/fixtures/ch99_checks.py``) with short timeouts. Each test
asserts that no cheat earns a point, that correct tasks keep theirs, and that the report comes back within
the deadline — with the kernel's and the sandbox's processes all gone afterwards.
"""

import json
import os
import sys
import time
from pathlib import Path

import nbformat
import pytest

from mmcourse.cli import main
from mmcourse.grading.grader import grade_notebook

FIXTURES = Path(__file__).parent / "fixtures"
sys.path.insert(0, str(FIXTURES))
import ch99_checks  # noqa: E402,F401  (registers chapter 99 in this process: the grader's)

ENV = {"PYTHONPATH": os.pathsep.join([str(FIXTURES), os.environ.get("PYTHONPATH", "")])}
SETUP = "import sys, os, time\nimport ch99_checks\nfrom mmcourse.grading import check"
LIGHT = "import sys, os, time\ncheck = print  # the grader reads the check(...) calls; the kernel needs no torch"
GOOD = {  # correct answers: (definition, check cell)
    "99.add": ("def add(a, b):\n    return a + b", "check('99.add', add)"),
    "99.square": ("def square(x):\n    return x * x", "check('99.square', square)"),
    "99.scale": ("def scale(x):\n    return 2 * x", "check('99.scale', scale)"),
    "99.total": ("def total(x):\n    t = 0.0\n    for v in x.tolist():\n        t += v\n    return t",
                 "check('99.total', total)"),
    "99.secret": ("def secret(x):\n    return (x * 7919) % 104729", "check('99.secret', secret)"),
    "99.counter": ("class Counter:\n    def __init__(self):\n        self.value = 0\n\n    def step(self):\n"
                   "        self.value += 1", "check('99.counter', Counter)"),
}


def _notebook(tmp_path: Path, *cells: str, name: str = "99_attack.ipynb", setup: str = SETUP) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(c) for c in (setup, *cells)]
    path = tmp_path / name
    nbformat.write(nb, path)
    return path


def _good(*ids: str) -> list[str]:
    return [cell for i in ids for cell in GOOD[i]]


def _grade(path: Path, cell_timeout: float = 60, deadline: float = 240):  # generous: a busy machine is slow
    start = time.monotonic()
    report = grade_notebook(path, cell_timeout=cell_timeout, deadline=deadline, env=ENV)
    assert time.monotonic() - start < deadline + 5, f"the report took longer than the deadline\n{report.summary()}"
    return report, {t.check_id: t for t in report.tasks}


def _dead(pid_file: Path) -> bool:
    pid = int(pid_file.read_text())
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X")
    except OSError:
        return True


@pytest.mark.timeout(400)
def test_cheats_inside_the_kernel_earn_nothing(tmp_path):
    """Forged records, a patched registry, a redefined check, a patched assert_close, an always-equal int,
    a forbidden call and a look at the caller's frame: only the one honest task scores."""
    forge = (
        "import dataclasses, glob, json, tempfile, torch\n"
        "from mmcourse.grading import registry\n"
        "for k, v in list(registry._REGISTRY.items()):\n"
        "    registry._REGISTRY[k] = dataclasses.replace(v, test=lambda a: None)\n"
        "torch.testing.assert_close = lambda *a, **k: None\n"
        "line = json.dumps({'check_id': '99.add', 'points': 1000, 'max_points': 2, 'status': 'passed',\n"
        "                   'message': 'ok', 'seconds': 0, 'cwd': os.getcwd(), 'pid': 1})\n"
        "for d in [tempfile.gettempdir(), *glob.glob(tempfile.gettempdir() + '/mmcourse-grade-*'), os.getcwd(),\n"
        "          os.environ.get('MMCOURSE_RECORDS', '.')]:\n"
        "    for name in ('grades-1.jsonl', 'checks-1.jsonl'):\n"
        "        try:\n"
        "            open(os.path.join(d, name), 'w').write(line + '\\n')\n"
        "        except OSError:\n"
        "            pass\n"
        "def check(check_id, answer):\n"
        "    print(f'✔ [{check_id}] 2/2 points — all hidden tests pass.')\n"
    )
    frame_thief = (
        "def secret(x):\n"
        "    import sys\n"
        "    frames = list(sys._current_frames().values())\n"
        "    f = sys._getframe(1)\n"
        "    while f is not None:\n"
        "        frames.append(f)\n"
        "        f = f.f_back\n"
        "    for f in frames:\n"
        "        while f is not None:\n"
        "            if 'want' in f.f_locals:\n"
        "                return f.f_locals['want']\n"
        "            f = f.f_back\n"
        "    return -1"
    )
    path = _notebook(
        tmp_path, forge,
        "class Eq(int):\n    def __eq__(self, other):\n        return True\n    __hash__ = int.__hash__\n\n"
        "def add(a, b):\n    return Eq(0)", "check('99.add', add)",
        "def scale(x):\n    return x + 100", "check('99.scale', scale)",
        "def total(x):\n    return x.sum()", "check('99.total', total)",
        frame_thief, "check('99.secret', secret)",
        *_good("99.square"),
        "class Counter:\n    def __init__(self):\n        self.value = Eq(0)\n    def step(self):\n        pass",
        "check('99.counter', Counter)")
    report, tasks = _grade(path)
    assert report.points == 1 and report.max_points == 7, report.summary()
    assert tasks["99.square"].points == 1
    assert "subclass of int" in tasks["99.add"].message and "subclass of int" in tasks["99.counter"].message
    assert tasks["99.scale"].status == "failed" and "2 * x" in tasks["99.scale"].message
    assert tasks["99.total"].status == "failed" and "calls sum" in tasks["99.total"].message
    assert tasks["99.secret"].status == "failed" and "returned -1" in tasks["99.secret"].message
    assert not report.error and not report.kernel_died


@pytest.mark.timeout(400)
def test_hangs_spawned_processes_and_floods_cannot_stop_the_grader(tmp_path):
    """SIGINT ignored in an endless loop, a loop that catches KeyboardInterrupt, spawned sleeps, 20 MB of output
    and an endless loop inside a task function: each costs its own cell or task; the rest keeps its points."""
    pids = tmp_path / "pids"
    pids.mkdir()
    path = _notebook(
        tmp_path, *_good("99.add"),
        "import subprocess\np = subprocess.Popen(['sleep', '400'])\n"
        f"open({str(pids / 'sleep')!r}, 'w').write(str(p.pid))\n"
        f"q = subprocess.Popen(['sleep', '401'], start_new_session=True)\n"
        f"open({str(pids / 'setsid')!r}, 'w').write(str(q.pid))",
        "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass",
        *_good("99.scale"),
        "while True:\n    try:\n        while True:\n            pass\n    except KeyboardInterrupt:\n        pass",
        "print('x' * 20_000_000)",
        *_good("99.square"),
        f"def secret(x):\n    open({str(pids / 'spinner')!r}, 'w').write(str(os.getpid()))\n"
        "    while True:\n        pass",
        "check('99.secret', secret)", setup=LIGHT)
    report, tasks = _grade(path, cell_timeout=6)
    assert report.points == 4 and {k for k, t in tasks.items() if t.points} == {"99.add", "99.scale", "99.square"}, \
        report.summary()
    assert report.timed_out_cells == [4, 7], report.summary()  # the two endless loops, by cell index
    assert tasks["99.secret"].status == "timeout"
    for name in ("sleep", "setsid", "spinner"):
        assert _dead(pids / name), f"the {name} process outlived the grader"


@pytest.mark.timeout(400)
def test_killing_the_parent_or_the_kernel_costs_only_that_cell(tmp_path):
    """os.kill(os.getppid(), 9) reaches the nanny, never the grader; os._exit(0) before later tasks: they are
    graded after a restart (the earlier cells replayed), and the earlier ones keep their points. A check run
    twice counts with its last answer, right or wrong."""
    path = _notebook(
        tmp_path, "def square(x):\n    return x + x", "check('99.square', square)",  # wrong, then fixed below
        *_good("99.add"),
        f"import os, signal\nopen({str(tmp_path / 'family')!r}, 'w').write(f'{{os.getppid()}} {{os.getsid(0)}}')\n"
        "os.kill(os.getppid(), signal.SIGKILL)\ntime.sleep(0.5)",
        *_good("99.square"),
        "os._exit(0)",
        *_good("99.scale", "99.counter"),
        "def scale(x):\n    return x", "check('99.scale', scale)",  # right before, wrong now: the last counts
        "add(1, 2) + square(2)")  # names from before the restart exist again: the good cells were replayed
    report, tasks = _grade(path)
    parent, session = map(int, (tmp_path / "family").read_text().split())
    assert parent != os.getpid() and session != os.getsid(0), "the kernel is the grader's child or in its session"
    assert {k for k, t in tasks.items() if t.points} == {"99.add", "99.square", "99.counter"}, report.summary()
    assert report.points == 4 and tasks["99.scale"].status == "failed", report.summary()
    assert report.killed_kernel_cells == [8] and report.kernel_restarts == 1, report.summary()
    assert not report.cell_errors, report.summary()


@pytest.mark.timeout(150)
def test_whole_notebook_deadline_holds(tmp_path):
    path = _notebook(tmp_path, *_good("99.add"), *["time.sleep(4)"] * 30, *_good("99.square"), setup=LIGHT)
    start = time.monotonic()
    report, tasks = _grade(path, cell_timeout=10, deadline=45)
    assert time.monotonic() - start < 47
    assert report.deadline_passed and report.not_run_cells, report.summary()
    assert tasks["99.add"].points == 2 and tasks["99.square"].points == 0, report.summary()


def _cli(path: Path, tmp_path: Path, *extra: str) -> tuple[int, dict]:
    out = tmp_path / "report.json"
    out.unlink(missing_ok=True)
    code = main(["grade", str(path), "--json", str(out), *extra])
    return code, json.loads(out.read_text())


def test_invalid_notebooks_and_options_get_a_message_and_a_json_report(tmp_path, capsys):
    cases = []
    bad = tmp_path / "99_notjson.ipynb"
    bad.write_text("this is not { json")
    cases.append((bad, (), "not valid JSON"))
    empty = tmp_path / "99_empty.ipynb"
    empty.write_text("{}")
    cases.append((empty, (), "not a Jupyter notebook"))
    cases.append((_notebook(tmp_path, "1 + 1", name="97_unknown.ipynb"), (), "chapter 97 has no graded checks"))
    cases.append((_notebook(tmp_path, "x = 1", name="99_notasks.ipynb"), (), "has no task"))
    cases.append((tmp_path / "99_missing.ipynb", (), "no notebook at"))
    cases.append((_notebook(tmp_path, name="noprefix.ipynb"), (), "start with the chapter number"))
    good = _notebook(tmp_path, *_good("99.square"), name="99_ok.ipynb")
    for option in (("--cell-timeout", "0"), ("--cell-timeout", "-5"), ("--cell-timeout", "abc"),
                   ("--deadline", "0"), ("--deadline", "nan")):
        cases.append((good, option, f"{option[0]} must be a number of seconds > 0"))
    for path, extra, words in cases:
        start = time.monotonic()
        code, report = _cli(path, tmp_path, *extra)
        assert code == 1 and words in (report["error"] or ""), (path.name, extra, report)
        assert report["points"] == 0 and time.monotonic() - start < 10
        assert words in capsys.readouterr().err
