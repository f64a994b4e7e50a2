"""Grade a notebook: execute it (errors allowed, a timeout per cell), collect its ``check`` results, report.

``mmcourse grade exercises/03_convolution.ipynb --json report.json``. The notebook's code runs in a fresh
Jupyter kernel as the user who runs the grader — the learner's own code with the learner's own rights, never
more. Each ``check`` call writes its result to a private folder (``MMCOURSE_RECORDS``), which the grader
reads back; the maximum comes from the chapter's registered checks, so a task never reached counts 0.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat

from mmcourse.grading.registry import checks_of_chapter

NOTICE = ("mmcourse grade runs the code in {path} in a new Python kernel as user {user}, with that user's "
          "rights: grade only notebooks you trust.")


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
    cell_errors: list[str] = field(default_factory=list)
    timed_out_cells: list[int] = field(default_factory=list)
    kernel_died: bool = False
    seconds: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def summary(self) -> str:
        lines = [f"{self.notebook}: {self.points}/{self.max_points} points ({self.seconds:.1f} s)"]
        lines += [f"  {t.check_id:<28} {t.points}/{t.max_points}  {t.status}: {t.message}" for t in self.tasks]
        if self.timed_out_cells:
            lines.append(f"  cells stopped by the timeout: {self.timed_out_cells}")
        if self.kernel_died:
            lines.append("  the kernel died; cells after that point did not run")
        return "\n".join(lines)


def _chapter_of(path: Path) -> str:
    prefix = path.name[:2]
    if not prefix.isdigit():
        raise ValueError(f"{path.name}: notebook names start with the chapter number, e.g. 03_convolution.ipynb")
    return prefix


def _read_records(folder: Path) -> dict[str, dict]:
    latest: dict[str, dict] = {}
    for f in sorted(folder.glob("grades-*.jsonl")):
        for line in f.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rec = json.loads(line)
                latest[rec["check_id"]] = rec  # a re-run check counts with its last result
    return latest


def grade_notebook(path: str | os.PathLike, *, cell_timeout: float = 120.0, kernel_name: str = "python3",
                   env: dict[str, str] | None = None) -> GradeReport:
    """Execute ``path`` and return its score report. Never raises for errors inside the notebook."""
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no notebook at {path}")
    chapter = _chapter_of(path)
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mmcourse-grade-") as rec_dir:
        kernel_env = {**os.environ, **(env or {}), "MMCOURSE_RECORDS": rec_dir}
        client = NotebookClient(nb, timeout=cell_timeout, allow_errors=True, interrupt_on_timeout=True,
                                kernel_name=kernel_name, resources={"metadata": {"path": str(path.parent)}})
        timed_out: list[int] = []
        died = False
        with client.setup_kernel(env=kernel_env, cwd=str(path.parent)):
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                t0 = time.perf_counter()
                try:
                    client.execute_cell(cell, index)
                except DeadKernelError:
                    died = True
                    break
                if time.perf_counter() - t0 >= cell_timeout and _interrupted(cell):
                    timed_out.append(index)
        records = _read_records(Path(rec_dir))
    errors = [f"cell {i}: {o.get('ename')}: {o.get('evalue')}" for i, c in enumerate(nb.cells)
              if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]
    tasks = []
    for spec in checks_of_chapter(chapter):
        rec = records.get(spec.check_id)
        if rec is None:
            tasks.append(TaskScore(spec.check_id, 0, spec.points, "not reached", "check() was never called"))
        else:
            tasks.append(TaskScore(spec.check_id, rec["points"], spec.points, rec["status"], rec["message"]))
    return GradeReport(notebook=str(path), points=sum(t.points for t in tasks),
                       max_points=sum(t.max_points for t in tasks), tasks=tasks, cell_errors=errors,
                       timed_out_cells=timed_out, kernel_died=died, seconds=time.perf_counter() - start)


def _interrupted(cell) -> bool:
    return any(o.get("output_type") == "error" and o.get("ename") == "KeyboardInterrupt"
               for o in cell.get("outputs", []))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("notebook", type=Path, help="the notebook to grade, e.g. exercises/03_convolution.ipynb")
    parser.add_argument("--json", type=Path, default=None, help="also write the report as JSON here")
    parser.add_argument("--cell-timeout", type=float, default=120.0, help="seconds per cell (default 120)")


def run(args: argparse.Namespace) -> int:
    user = os.environ.get("USER") or os.environ.get("USERNAME") or str(os.getuid())
    print(NOTICE.format(path=args.notebook, user=user), file=sys.stderr)
    report = grade_notebook(args.notebook, cell_timeout=args.cell_timeout)
    print(report.summary())
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(report.to_json() + "\n", encoding="utf-8")
    return 0
