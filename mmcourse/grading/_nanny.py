"""The nanny: the disposable parent of one process that runs a learner's code for ``mmcourse grade``.

Run by path (``python _nanny.py REPORT_FD GRADER_PID CMD...``), so it imports nothing of mmcourse and starts in
milliseconds. The grader starts it as the leader of a new session (``start_new_session=True``); the nanny forks
``CMD`` (the Jupyter kernel, or the sandbox that runs the hidden tests' calls), writes the child's pid to
``REPORT_FD`` and waits. So the learner's ``os.kill(os.getppid(), 9)`` kills this nanny, never the grader, and
the child stays in the nanny's process group and session, where the grader's ``killpg`` reaches it.

The nanny is a child subreaper (Linux): processes the learner's code daemonises are re-parented to it, not to
init. When its child exits, when the grader sends SIGTERM, or when the grader itself dies, it kills every
descendant (SIGKILL) and exits. Used by :mod:`mmcourse.grading.isolate`.
"""

import ctypes
import os
import signal
import sys
import time

PR_SET_CHILD_SUBREAPER = 36


def _stat(pid: str) -> tuple[int, int] | None:
    """(ppid, session id) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return int(fields[1]), int(fields[3])
    except (OSError, IndexError, ValueError):
        return None


def descendants(root: int) -> list[int]:
    """Every process below ``root`` in the process tree, and every other process of ``root``'s session."""
    parent: dict[int, int] = {}
    session: dict[int, int] = {}
    try:
        names = os.listdir("/proc")
    except OSError:  # no /proc (macOS): the grader's killpg is the only net
        return []
    for name in names:
        if name.isdigit():
            st = _stat(name)
            if st is not None:
                parent[int(name)], session[int(name)] = st
    found, frontier = set(), {root}
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier and p not in found}
        found |= frontier
    found |= {p for p, s in session.items() if s == root and p != root}
    return sorted(found)


def kill_all(root: int) -> None:
    """SIGKILL the descendants of ``root`` (and its session) until none is left; reap what is ours."""
    for _ in range(50):
        victims = descendants(root)
        if not victims:
            return
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        _reap()
        time.sleep(0.02)


def _reap() -> int | None:
    """Reap finished children; return the exit status of the last one reaped (None when none was)."""
    last = None
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return last
        if pid == 0:
            return last
        last = (pid, status)


def main(argv: list[str]) -> int:
    report_fd, grader, cmd = int(argv[0]), int(argv[1]), argv[2:]
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the grader's killpg is the only net
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # interrupts are meant for the child
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    child = os.fork()
    if child == 0:
        os.close(report_fd)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        try:
            os.execvp(cmd[0], cmd)
        finally:
            os._exit(127)
    os.write(report_fd, f"{child}\n".encode())
    os.close(report_fd)
    code = 0
    while not stop and os.getppid() == grader:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                pid = 0
            if pid == 0:
                break
            if pid == child:
                code = os.waitstatus_to_exitcode(status)
                stop.append(1)
        if not stop:
            time.sleep(0.05)
    kill_all(os.getpid())
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
