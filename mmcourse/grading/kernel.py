"""A Jupyter kernel the grader can always stop: own session, a nanny as its parent, deadlines on every cell.

``mmcourse grade`` executes a notebook's cells one by one with :class:`Kernel`. The kernel is
``python -m ipykernel_launcher`` with the grader's own interpreter, started under a nanny in a new session
(:mod:`mmcourse.grading.isolate`); the grader talks to it with ``jupyter_client`` over the ZMQ ports of a
connection file it wrote. :meth:`Kernel.execute` waits for the cell until its timeout, then interrupts
(SIGINT) and, when the cell still has not stopped after a short grace, kills the kernel's whole process
group: a cell that ignores SIGINT, catches ``KeyboardInterrupt`` or spawns processes cannot outlive it.
Output is read and dropped as it comes (only the first errors are kept, capped), so a cell that prints
20 MB costs time, not memory.
"""

from __future__ import annotations

import math
import os
import queue
import secrets
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from mmcourse.grading.isolate import Isolated, StartError

GRACE = 3.0  # seconds an interrupted cell gets to stop before the kernel is killed
MAX_ERROR = 500


@dataclass
class CellOutcome:
    """How a cell ended: ``ok``, ``error`` (raised; the kernel lives on), ``timeout`` or ``died``."""

    status: str
    errors: list[str] = field(default_factory=list)
    output_bytes: int = 0
    seconds: float = 0.0


class Kernel:
    """An IPython kernel in its own session under a nanny; ``alive`` is False once it died or was killed."""

    def __init__(self, cwd: str, env: dict[str, str], work_dir: str, start_timeout: float = 60.0):
        from jupyter_client.blocking import BlockingKernelClient
        from jupyter_client.connect import write_connection_file

        conn = str(Path(work_dir) / f"kernel-{secrets.token_hex(4)}.json")
        write_connection_file(conn, ip="127.0.0.1", key=secrets.token_hex(16).encode())
        cmd = [sys.executable, "-m", "ipykernel_launcher", "-f", conn, "--HistoryManager.hist_file=:memory:"]
        deadline = time.monotonic() + start_timeout
        self.proc = Isolated(cmd, cwd=cwd, env=env, start_timeout=start_timeout)
        self.client = BlockingKernelClient(connection_file=conn)
        self.client.load_connection_file()
        self.client.start_channels()
        try:
            self._wait_ready(deadline)
        except Exception:
            self.kill()
            raise

    def _wait_ready(self, deadline: float) -> None:
        while True:
            if not self.proc.alive():
                raise StartError("the Jupyter kernel exited while starting (is ipykernel installed?)")
            left = deadline - time.monotonic()
            if left <= 0:
                raise StartError("the Jupyter kernel did not answer in time")
            try:
                self.client.wait_for_ready(timeout=min(left, 5.0))
                return
            except RuntimeError:
                continue

    @property
    def alive(self) -> bool:
        return self.proc.alive()

    def execute(self, code: str, timeout: float, *, silent: bool = False, hard_end: float = math.inf
                ) -> CellOutcome:
        """Run ``code``; stop it after ``timeout`` seconds (interrupt, then kill the whole process group).

        The grace an interrupted cell gets never runs past ``hard_end`` (a ``time.monotonic()`` value).
        """
        start = time.monotonic()
        msg_id = self.client.execute(code, silent=silent, store_history=not silent, allow_stdin=False,
                                     stop_on_error=False)
        outcome = CellOutcome("ok")
        deadline, interrupted = start + timeout, False
        while True:
            now = time.monotonic()
            if now >= deadline:
                if interrupted or not self.alive:
                    self.kill()
                    outcome.status = "timeout"
                    break
                self.proc.interrupt()
                interrupted, deadline = True, now + max(0.2, min(GRACE, hard_end - now))
            try:
                msg = self.client.get_iopub_msg(timeout=min(0.2, max(0.01, deadline - now)))
            except queue.Empty:
                if not self.alive:
                    outcome.status = "timeout" if interrupted else "died"
                    self.kill()
                    break
                continue
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "error":
                if len(outcome.errors) < 5:
                    outcome.errors.append(f"{content.get('ename')}: {content.get('evalue')}"[:MAX_ERROR])
                if outcome.status == "ok":
                    outcome.status = "error"
            elif kind in ("stream", "display_data", "execute_result", "update_display_data"):
                outcome.output_bytes += len(str(content.get("text", content.get("data", ""))))
            elif kind == "status" and content.get("execution_state") == "idle":
                if interrupted:
                    outcome.status = "timeout"
                break
        self._drain_shell()
        outcome.seconds = time.monotonic() - start
        return outcome

    def _drain_shell(self) -> None:
        while True:
            try:
                self.client.get_shell_msg(timeout=0)
            except (queue.Empty, Exception):  # noqa: BLE001 - nothing left, or the kernel is gone
                return

    def kill(self) -> None:
        """Kill the kernel and every process it started; close the channels."""
        self.proc.kill()
        try:
            self.client.stop_channels()
        except Exception:  # noqa: BLE001 - already closed
            pass


def learner_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of the kernel and the sandbox: the grader's, with ``MMCOURSE_GRADING=1`` and the
    grader's own ``mmcourse`` first on the import path (so both import the package the grader runs)."""
    import mmcourse

    env = {**os.environ, **(extra or {}), "MMCOURSE_GRADING": "1"}
    env.pop("MMCOURSE_RECORDS", None)  # test records are written by the nbval run, never under the grader
    env.pop("JPY_PARENT_PID", None)  # a kernel polling a parent would die with the nanny
    root = str(Path(mmcourse.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(p for p in [root, *env.get("PYTHONPATH", "").split(os.pathsep)]
                                                      if p))
    return env
