"""Start a process that runs a learner's code in its own session, under a nanny, and kill all of it reliably.

Used by the grader (:mod:`mmcourse.grading.grader`) for the Jupyter kernel and for the sandbox that runs the
hidden tests' calls. The tree is ``grader → nanny → process → whatever the learner's code spawns``:

- the nanny (``_nanny.py``) leads a new session, so signals to the learner's process group or session never
  reach the grader, and ``os.kill(os.getppid(), 9)`` kills the nanny, not the grader;
- :meth:`Isolated.kill` asks the nanny to kill every descendant (it is their subreaper), then SIGKILLs the
  whole process group and every process left in the session: a loop that ignores SIGINT, a handler that
  catches ``KeyboardInterrupt`` and a spawned ``sleep 400`` all end there.

Linux and macOS (on macOS, without /proc, only the process group is swept). What this cannot stop: the
learner's code runs as the same user as the grader, so a process that leaves the
session *and* kills the nanny first, or code that kills every process of the user (``kill -1``), gets past it.
Grade untrusted notebooks in a container or as a throw-away user.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

NANNY = Path(__file__).with_name("_nanny.py")
PROC = os.path.isdir("/proc/self")


class StartError(RuntimeError):
    """The isolated process did not start (the nanny reported no child pid in time)."""


def _state(pid: int) -> str | None:
    """The one-letter state of ``pid`` (``None`` when it does not exist); without /proc (macOS) "R" or None."""
    if not PROC:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except OSError:
            pass
        return "R"
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0].decode()
    except (OSError, IndexError):
        return None


def _session_members(sid: int) -> list[int]:
    """Live processes of session ``sid`` (Linux; elsewhere the process-group kill is the only sweep)."""
    out = []
    for name in os.listdir("/proc") if PROC else []:
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
                if int(fields[3]) == sid and fields[0] not in (b"Z", b"X"):
                    out.append(int(name))
            except (OSError, IndexError, ValueError):
                pass
    return out


class Isolated:
    """A process started under a nanny in a new session; ``pid`` is the process itself, ``pgid`` its group."""

    def __init__(self, cmd: list[str], *, cwd: str | os.PathLike | None = None, env: dict[str, str] | None = None,
                 pass_fds: tuple[int, ...] = (), start_timeout: float = 30.0):
        read_end, write_end = os.pipe()
        try:
            self.nanny = subprocess.Popen(
                [sys.executable, str(NANNY), str(write_end), str(os.getpid()), *cmd], cwd=cwd, env=env,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True, pass_fds=(write_end, *pass_fds), close_fds=True)
        finally:
            os.close(write_end)
        self.pgid = self.nanny.pid  # the nanny leads the new session and its process group
        try:
            ready, _, _ = select.select([read_end], [], [], start_timeout)
            line = os.read(read_end, 64).decode().strip() if ready else ""
        finally:
            os.close(read_end)
        if not line.isdigit():
            self.kill()
            raise StartError(f"could not start {cmd[:3]}: no process id from the nanny within {start_timeout:.0f} s")
        self.pid = int(line)

    def alive(self) -> bool:
        """Whether the process itself (not the nanny) still runs."""
        return _state(self.pid) not in (None, "Z", "X")

    def interrupt(self) -> None:
        """Send SIGINT to the process (what Jupyter's "interrupt" does)."""
        try:
            os.kill(self.pid, signal.SIGINT)
        except OSError:
            pass

    def kill(self) -> None:
        """Kill the process and everything it started; returns within about a second."""
        if self.nanny.poll() is None:
            try:
                self.nanny.send_signal(signal.SIGTERM)  # the nanny kills its whole subtree, then exits
                self.nanny.wait(timeout=1.0)
            except (OSError, subprocess.TimeoutExpired):
                pass
        for _ in range(3):
            try:
                os.killpg(self.pgid, signal.SIGKILL)
            except OSError:
                pass
            members = _session_members(self.pgid)
            for pid in members:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            if not members:
                break
            time.sleep(0.02)
        try:
            self.nanny.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            pass
