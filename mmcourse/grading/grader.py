"""``mmcourse grade NOTEBOOK``: execute a notebook and score it with points only the grader can give.

How a grade is made, and why the notebook's code cannot forge it:

1. Before any of the notebook's code runs, the grader imports the chapter's hidden tests
   (``mmcourse/grading/chNN.py``) into its own process. The tests, the reference values they compute and the
   comparisons (``torch.testing`` included) live there and nowhere else.
2. The notebook runs cell by cell in a Jupyter kernel started under a nanny in its own session
   (:mod:`mmcourse.grading.kernel`, :mod:`mmcourse.grading.isolate`), with a timeout per cell and a deadline
   for the whole run. A cell past its timeout is interrupted, then the kernel's whole process group is killed;
   a kernel that dies (``os._exit``, a crash, out of memory) is restarted, the earlier good cells are replayed
   and the grade goes on after the cell that killed it (:mod:`mmcourse.grading.runner`).
3. After each cell that calls ``check("NN.name", expr)``, the grader has the kernel pickle the value of
   ``expr`` (cloudpickle, by value) into bytes (:mod:`mmcourse.grading.capture`). Inside the kernel ``check``
   itself runs nothing under the grader: replacing it, the registry or ``torch.testing`` there changes nothing.
4. The grader's checker thread runs each hidden test in the grader's process; every call the test makes to the
   learner's answer goes to a separate sandbox process (:mod:`mmcourse.grading.sandbox`) that unpickled the
   answer, runs it on the test's inputs and sends back only plain data. The grader loads it with
   ``torch.load(weights_only=True)`` and accepts exact types only (an ``int`` subclass whose ``==`` is always
   true, or a tensor subclass, fails), and a call to a function the task forbids (``F.conv2d`` in 03.conv2d)
   fails the task. The learner's code never runs in the process that holds the expected values: reading its
   caller's frame finds the test's inputs at most.
5. Points are the registered maximum of each passed check of the notebook's chapter, 0 otherwise; nothing the
   notebook writes to disk is read as a grade. After the run every process of the kernel and the sandbox is
   killed, then the report is returned (and written with ``--json``).

The grader runs the learner's code as the user who runs it, with that user's rights and no more: the code can
do anything that user can (kill every process of the user, edit the installed package on disk). Grade
untrusted notebooks in a container or as a throw-away user.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

NOTICE = ("mmcourse grade runs the code in {path} in a new Python kernel as user {user}, with that user's "
          "rights: grade only notebooks you trust.")
DEFAULT_CELL_TIMEOUT = 120.0
DEFAULT_DEADLINE = 1800.0
MAX_NOTEBOOK_BYTES = 64 * 2**20


@dataclass
class TaskScore:
    check_id: str
    points: int
    max_points: int
    status: str
    message: str


@dataclass
class GradeReport:
    notebook: str
    points: int
    max_points: int
    tasks: list[TaskScore]
    error: str | None = None
    cell_errors: list[str] = field(default_factory=list)
    timed_out_cells: list[int] = field(default_factory=list)
    killed_kernel_cells: list[int] = field(default_factory=list)
    not_run_cells: list[int] = field(default_factory=list)
    kernel_restarts: int = 0
    kernel_died: bool = False
    deadline_passed: bool = False
    seconds: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def summary(self) -> str:
        lines = [f"{self.notebook}: {self.points}/{self.max_points} points ({self.seconds:.1f} s)"]
        if self.error:
            lines.append(f"  error: {self.error}")
        lines += [f"  {t.check_id:<28} {t.points}/{t.max_points}  {t.status}: {t.message}" for t in self.tasks]
        if self.timed_out_cells:
            lines.append(f"  cells stopped by the timeout: {self.timed_out_cells}")
        if self.killed_kernel_cells:
            lines.append(f"  cells that killed the kernel (skipped after a restart): {self.killed_kernel_cells}")
        if self.not_run_cells:
            lines.append(f"  cells not run ({'deadline' if self.deadline_passed else 'kernel lost'}): "
                         f"{self.not_run_cells}")
        return "\n".join(lines)


def _load(path: Path) -> tuple[str, list[tuple[int, str]]]:
    """The chapter (``"03"``) and the code cells ``[(index, source)]`` of ``path``; ValueError says what is wrong."""
    if not path.is_file():
        raise ValueError(f"no notebook at {path}")
    if path.stat().st_size > MAX_NOTEBOOK_BYTES:
        raise ValueError(f"{path.name} is {path.stat().st_size >> 20} MB: not a notebook the grader reads "
                         f"(at most {MAX_NOTEBOOK_BYTES >> 20} MB; clear its outputs)")
    if not (len(path.name) > 3 and path.name[:2].isdigit() and path.name[2] == "_"):
        raise ValueError(f"{path.name}: notebook names start with the chapter number, e.g. 03_convolution.ipynb")
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path.name} is not a notebook: not valid JSON ({e})") from e
    cells = nb.get("cells") if isinstance(nb, dict) else None
    if not isinstance(cells, list) or not all(isinstance(c, dict) for c in cells):
        raise ValueError(f"{path.name} is not a Jupyter notebook: it has no list of cells (nbformat 4 expected)")
    code = []
    for i, c in enumerate(cells):
        if c.get("cell_type") == "code":
            src = c.get("source", "")
            code.append((i, "".join(map(str, src)) if isinstance(src, list) else str(src)))
    return path.name[:2], code


def _positive(value: float, name: str) -> float:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a number of seconds > 0, got {value!r}")
    return float(value)


def grade_notebook(path: str | os.PathLike, *, cell_timeout: float = DEFAULT_CELL_TIMEOUT,
                   deadline: float = DEFAULT_DEADLINE, env: dict[str, str] | None = None) -> GradeReport:
    """Execute ``path`` and return its report, within ``deadline`` seconds; never raises for a bad notebook."""
    from mmcourse.grading.kernel import learner_env
    from mmcourse.grading.registry import CheckResult, chapters, checks_of_chapter
    from mmcourse.grading.runner import Checker, Execution, check_calls, execute_notebook
    from mmcourse.grading.sandbox import Sandbox

    start = time.monotonic()
    path = Path(path)
    report = GradeReport(notebook=str(path), points=0, max_points=0, tasks=[])
    try:
        _positive(cell_timeout, "--cell-timeout")
        _positive(deadline, "--deadline")
        chapter, cells = _load(path)
        specs = {s.check_id: s for s in checks_of_chapter(chapter)}
        if not specs:
            raise ValueError(f"chapter {chapter} has no graded checks (no mmcourse.grading.ch{chapter}); "
                             f"chapters with checks: {', '.join(chapters())}")
        report.max_points = sum(s.points for s in specs.values())
        report.tasks = [TaskScore(s.check_id, 0, s.points, "not reached", "check() was never run")
                        for s in specs.values()]
        if not any(cid in specs for _, src in cells for cid, _ in check_calls(src)):
            raise ValueError(f"{path.name} has no task: no cell calls check(\"{chapter}.…\", …) with a check of "
                             f"chapter {chapter} ({', '.join(specs)})")
    except ValueError as e:
        report.error = str(e)
        report.seconds = time.monotonic() - start
        return report

    _warm_up()
    end = start + deadline
    learner = learner_env(env)
    with tempfile.TemporaryDirectory(prefix="mmcourse-grade-", ignore_cleanup_errors=True) as work:
        sandbox = Sandbox([f"mmcourse.grading.ch{chapter}"] if f"mmcourse.grading.ch{chapter}" in sys.modules
                          else [], cwd=str(path.parent.resolve()), env=learner)
        checker = Checker(specs, sandbox, end - 1.0)
        checker.start()
        try:
            run = execute_notebook(cells, specs, cwd=str(path.parent.resolve()), env=learner, work_dir=work,
                                   cell_timeout=cell_timeout, end=end - 1.5, checker=checker)
        except Exception as e:  # noqa: BLE001 - a report always comes back; what was judged still counts
            run = Execution(errors=[f"the grader failed while running the notebook: {type(e).__name__}: {e}"])
            report.error = run.errors[0]
        finally:
            checker.finish(end - 1.0)
    results: dict[str, CheckResult] = checker.snapshot()
    report.deadline_passed = run.deadline_passed or time.monotonic() >= end - 1.0
    for task in report.tasks:
        res = results.get(task.check_id)
        if res is not None:
            task.points = min(res.points, task.max_points) if res.status == "passed" else 0
            task.status, task.message = res.status, res.message
        elif task.check_id in checker.latest:
            task.status, task.message = "timeout", "not graded: the grading deadline passed first"
        else:
            task.message = ("check() was never run: its cell did not run (the kernel died, or the deadline "
                            "passed), or the notebook has no check(\"" + task.check_id + "\", ...) cell")
    report.points = sum(t.points for t in report.tasks)
    report.cell_errors, report.timed_out_cells = run.errors, run.timed_out
    report.killed_kernel_cells, report.not_run_cells = run.killed_kernel, run.not_run
    report.kernel_restarts, report.kernel_died = run.restarts, bool(run.killed_kernel) or run.restarts > 0
    report.seconds = time.monotonic() - start
    return report


def _warm_up() -> None:
    """Import what the hidden tests use lazily, before any learner code could change it on disk."""
    import torch

    torch.testing.assert_close(torch.zeros(2), torch.zeros(2))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("notebook", type=Path, help="the notebook to grade, e.g. exercises/03_convolution.ipynb")
    parser.add_argument("--json", type=Path, default=None, help="also write the report as JSON here")
    parser.add_argument("--cell-timeout", default=str(DEFAULT_CELL_TIMEOUT),
                        help=f"seconds per cell (default {DEFAULT_CELL_TIMEOUT:.0f})")
    parser.add_argument("--deadline", default=str(DEFAULT_DEADLINE),
                        help=f"seconds for the whole grade (default {DEFAULT_DEADLINE:.0f})")


def _seconds(text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return float("nan")


def run(args: argparse.Namespace) -> int:
    user = os.environ.get("USER") or os.environ.get("USERNAME") or str(os.getuid())
    print(NOTICE.format(path=args.notebook, user=user), file=sys.stderr)
    report = grade_notebook(args.notebook, cell_timeout=_seconds(args.cell_timeout), deadline=_seconds(args.deadline))
    print(report.summary())
    if report.error:
        print(f"mmcourse grade: {report.error}", file=sys.stderr)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(report.to_json() + "\n", encoding="utf-8")
    return 1 if report.error else 0
