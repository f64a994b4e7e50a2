"""Execute a notebook for ``mmcourse grade``: cell by cell in a :class:`~mmcourse.grading.kernel.Kernel`,
capture each task's answer after its ``check(...)`` cell, and judge it in the grader's own process while the
next cells run.

- A cell that times out is interrupted, then its kernel is killed (whole process group).
- A kernel that dies or is killed costs only what it was running: the grader starts a new kernel, replays the
  cells that ran before without killing it (their outputs dropped), skips the cell that killed it and goes on.
  A cell that kills the kernel again on replay is skipped from then on; after ``MAX_RESTARTS`` restarts the
  remaining cells are not run.
- Answers are judged by a :class:`Checker` thread: :func:`~mmcourse.grading.registry.judge` with a
  :class:`~mmcourse.grading.sandbox.RemoteAnswer`, so the learner's code runs in the sandbox only.
"""

from __future__ import annotations

import ast
import inspect
import queue
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from mmcourse.grading import capture
from mmcourse.grading.isolate import StartError
from mmcourse.grading.kernel import CellOutcome, Kernel
from mmcourse.grading.registry import CheckResult, CheckSpec, judge
from mmcourse.grading.sandbox import RemoteAnswer, Sandbox

MAX_RESTARTS = 5
CAPTURE_TIMEOUT = 60.0
CAPTURE_SOURCE = inspect.getsource(capture)  # read now, before any learner code could edit the file


def check_calls(source: str) -> list[tuple[str, str]]:
    """The ``(check_id, answer expression)`` of every ``check("NN.name", expr)`` call in a cell's source."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        source = TransformerManager().transform_cell(source)
    except Exception:  # noqa: BLE001 - no IPython, or an odd cell: parse it as it is
        pass
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return [(m.group(1), m.group(2).strip()) for m in
                re.finditer(r"""\bcheck\(\s*["'](\d\d\.\w+)["']\s*,\s*([A-Za-z_][\w.]*)\s*\)""", source)]
    out = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and len(node.args) >= 2 and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
                and getattr(node.func, "id", getattr(node.func, "attr", None)) == "check"):
            try:
                out.append((node.args[0].value, ast.unparse(node.args[1])))
            except Exception:  # noqa: BLE001 - an expression ast cannot print back: no answer to copy
                continue
    return out


class Checker(threading.Thread):
    """Judges captured answers one after another, in the grader's process; the last capture of an id counts."""

    def __init__(self, specs: dict[str, CheckSpec], sandbox: Sandbox, end: float):
        super().__init__(daemon=True, name="mmcourse-checker")
        self.specs, self.sandbox, self.end = specs, sandbox, end
        self.inbox: queue.Queue = queue.Queue()
        self.results: dict[str, CheckResult] = {}
        self.results_lock = threading.Lock()
        self.latest: dict[str, int] = {}
        self.count = 0

    def submit(self, check_id: str, blob: bytes | None, error: str = "") -> None:
        """Queue an answer (``blob``) or the reason it could not be captured (``error``)."""
        self.count += 1
        self.latest[check_id] = self.count
        self.inbox.put((self.count, check_id, blob, error))

    def run(self) -> None:
        try:  # start the sandbox now: its imports overlap with the kernel's
            self.sandbox.start(min(time.monotonic() + 120.0, self.end))
        except StartError:
            pass  # tried again, and reported, with the first answer
        while True:
            item = self.inbox.get()
            if item is None:
                return
            n, check_id, blob, error = item
            if n != self.latest[check_id]:
                continue  # a later capture of the same check supersedes this one
            result = self._grade(self.specs[check_id], blob, error, f"{check_id}#{n}")
            with self.results_lock:
                self.results[check_id] = result

    def snapshot(self) -> dict[str, CheckResult]:
        """The results so far (a copy; the thread may still be judging after a missed deadline)."""
        with self.results_lock:
            return dict(self.results)

    def _grade(self, spec: CheckSpec, blob: bytes | None, error: str, key: str) -> CheckResult:
        hint = f" Hint: {spec.hint}" if spec.hint else ""
        if blob is None:
            return CheckResult(spec.check_id, 0, spec.points, "error", f"{error}.{hint}", 0.0)
        try:
            if self.sandbox.proc is None or not self.sandbox.proc.alive():
                self.sandbox.start(min(time.monotonic() + 120.0, self.end))
        except StartError as e:
            return CheckResult(spec.check_id, 0, spec.points, "error", f"not graded: {e}", 0.0)
        deadline = min(time.monotonic() + spec.timeout, self.end)
        answer = _LazyAnswer(self.sandbox, spec, blob, deadline, key)
        return judge(spec, answer)

    def finish(self, end: float) -> None:
        """Stop after the queued answers, or at ``end``, then shut the sandbox down for good (a check still
        running fails, and none starts after this); unfinished checks count as timeouts."""
        self.inbox.put(None)
        self.join(max(0.0, end - time.monotonic()))
        self.sandbox.shutdown()


class _LazyAnswer(RemoteAnswer):
    """A remote answer that loads the captured bytes into the sandbox on its first call."""

    def __init__(self, sandbox: Sandbox, spec: CheckSpec, blob: bytes, deadline: float, key: str):
        super().__init__(sandbox, key, spec.forbid, spec.forbid_note, deadline)  # one key per capture
        self.blob = blob

    def _envelope(self, probe, args, kwargs):
        self.sandbox.ensure(self.check_id, self.blob, self.deadline, self.deadline)
        return super()._envelope(probe, args, kwargs)


@dataclass
class Execution:
    """What happened to the cells (indices are the notebook's cell indices)."""

    errors: list[str] = field(default_factory=list)
    timed_out: list[int] = field(default_factory=list)
    killed_kernel: list[int] = field(default_factory=list)
    not_run: list[int] = field(default_factory=list)
    restarts: int = 0
    output_bytes: int = 0
    deadline_passed: bool = False


def execute_notebook(cells: list[tuple[int, str]], specs: dict[str, CheckSpec], *, cwd: str, env: dict[str, str],
                     work_dir: str, cell_timeout: float, end: float, checker: Checker) -> Execution:
    """Run the code cells ``[(index, source)]`` until ``end``, feeding captured answers to ``checker``."""
    run = Execution()
    good: list[int] = []  # positions in `cells` that ran without killing the kernel: replayed after a restart
    kernel: Kernel | None = None
    captures = 0

    def left() -> float:
        return end - time.monotonic()

    def fresh_kernel() -> Kernel | None:
        """A new kernel with the good cells replayed; a cell that kills it on replay is dropped from them."""
        while run.restarts <= MAX_RESTARTS and left() > 1:
            k = Kernel(cwd, env, work_dir, start_timeout=max(1.0, min(120.0, left())))
            for pos in list(good):
                if left() <= 1:
                    k.kill()
                    run.deadline_passed = True
                    return None
                k.execute(cells[pos][1], min(cell_timeout, max(0.1, left() - 1)), hard_end=end)
                if not k.alive:
                    k.kill()
                    good.remove(pos)
                    run.killed_kernel.append(cells[pos][0])
                    run.restarts += 1
                    break
            else:
                return k
        return None

    try:
        for pos, (index, source) in enumerate(cells):
            if left() <= 1:
                run.not_run += [i for i, _ in cells[pos:]]
                run.deadline_passed = True
                break
            if kernel is None or not kernel.alive:
                if kernel is not None:
                    kernel.kill()
                    run.restarts += 1
                try:
                    kernel = fresh_kernel()
                except StartError as e:
                    run.errors.append(f"the kernel did not start: {e}")
                    kernel = None
                if kernel is None:
                    run.not_run += [i for i, _ in cells[pos:]]
                    break
            outcome: CellOutcome = kernel.execute(source, min(cell_timeout, max(0.1, left() - 1)), hard_end=end)
            run.output_bytes += outcome.output_bytes
            if outcome.status == "error":
                run.errors += [f"cell {index}: {e}" for e in outcome.errors[:1]]
            elif outcome.status == "timeout":
                run.timed_out.append(index)
            elif outcome.status == "died":
                run.killed_kernel.append(index)
            if kernel.alive:  # partial effects of an interrupted cell count too: replayed, interrupted again
                good.append(pos)
            if kernel.alive:
                calls = [(i, e) for i, e in check_calls(source) if i in specs]
                if calls:
                    captures += 1
                    _capture(kernel, calls, Path(work_dir) / f"capture-{captures}-{secrets.token_hex(4)}", checker,
                             min(CAPTURE_TIMEOUT, max(0.1, left() - 1)), end)
    finally:
        if kernel is not None:
            kernel.kill()
    return run


def _capture(kernel: Kernel, calls: list[tuple[str, str]], folder: Path, checker: Checker, timeout: float,
             end: float) -> None:
    """Have the kernel pickle each answer into ``folder`` (the capture code is sent, not imported: no torch).

    The folder is the learner's to write too (same user): what is read from it is only ever an answer, unpickled
    in the sandbox; its size is checked first, and nothing there can stop the grader.
    """
    try:
        folder.mkdir(parents=True)
    except OSError as e:
        for cid, _ in calls:
            checker.submit(cid, None, f"the grader could not prepare to copy your answer ({e})")
        return
    getters = "{" + ", ".join(f"{cid!r}: (lambda: ({expr}))" for cid, expr in calls) + "}"
    code = (f"exec({CAPTURE_SOURCE!r} + '\\nsave_answers(GETTERS, FOLDER)\\n', "
            f"{{'GETTERS': {getters}, 'FOLDER': {str(folder)!r}, '__name__': 'mmcourse_capture'}})")
    outcome = kernel.execute(code, timeout, silent=True, hard_end=end)
    for cid, expr in calls:
        blob, err = folder / f"{cid}.pkl", folder / f"{cid}.err"
        try:
            if blob.is_file() and blob.stat().st_size <= capture.MAX_BYTES:
                checker.submit(cid, blob.read_bytes()[: capture.MAX_BYTES])
            elif blob.is_file():
                checker.submit(cid, None, f"your answer `{expr}` pickles to more than {capture.MAX_BYTES >> 20} MB")
            elif err.is_file():
                with open(err, encoding="utf-8", errors="replace") as f:
                    checker.submit(cid, None, f"the grader could not copy `{expr}` out of the notebook ({f.read(300)})")
            else:
                checker.submit(cid, None, f"copying `{expr}` out of the notebook failed ({outcome.status}"
                                          f"{': ' + outcome.errors[0] if outcome.errors else ''})")
        except OSError as e:
            checker.submit(cid, None, f"the grader could not read your answer `{expr}` ({e})")
