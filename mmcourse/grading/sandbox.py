"""The sandbox: a fresh Python process where ``mmcourse grade`` runs the learner's answers on the tests' inputs.

The grader keeps the hidden tests — reference values and comparisons — in its own process, and never runs the
learner's code there. For each call a test makes (``fn(x, w)`` or ``fn.probe(...)``, see
:mod:`mmcourse.grading.answers`) :class:`RemoteAnswer` sends the arguments to this sandbox over a pipe the
grader owns; the sandbox calls the learner's function (unpickled from the bytes the kernel captured) and sends
back the envelope, serialised with ``torch.save``. The grader reads it with ``torch.load(weights_only=True)``,
checks every type is exactly a plain one, and compares. So nothing in the sandbox — or in the notebook's
kernel — can replace a test, a reference or ``torch.testing``: those live only in the grader, and a frame the
learner's code inspects holds the test's inputs at most.

The sandbox runs under a nanny in its own session (:mod:`mmcourse.grading.isolate`); a call that does not
return within the check's time limit, or that ends the process, costs that check only: the grader kills the
sandbox and starts a new one for the next check. Run as ``python -m mmcourse.grading.sandbox REQ_FD REP_FD
[MODULE ...]`` (modules are imported before any learner code: the probes of the chapter).
"""

from __future__ import annotations

import io
import os
import pickle
import select
import struct
import sys
import threading
import time
from typing import Any

import torch

from mmcourse.grading.answers import (
    Answer,
    AnswerCrashed,
    AnswerTimeout,
    check_plain,
    execute,
    import_probe,
    unpack,
)
from mmcourse.grading.isolate import Isolated, StartError

HEADER = struct.Struct("!Q")
MAX_REPLY = 512 * 2**20


class ProtocolError(RuntimeError):
    """The sandbox sent something that is not a well-formed reply."""


def _write_all(fd: int, data: bytes, deadline: float) -> None:
    view = memoryview(HEADER.pack(len(data)) + data)
    while view:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AnswerTimeout("the sandbox stopped reading")
        _, ready, _ = select.select([], [fd], [], left)
        if ready:
            view = view[os.write(fd, view[: 1 << 16]):]


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes:
    chunks, got = [], 0
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AnswerTimeout("no reply in time")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            raise AnswerCrashed("the sandbox process ended")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _read_frame(fd: int, deadline: float | None, limit: int) -> bytes:
    (size,) = HEADER.unpack(_read_exact(fd, HEADER.size, deadline))
    if size > limit:
        raise ProtocolError(f"a reply of {size} bytes (more than {limit})")
    return _read_exact(fd, size, deadline)


# ---------------------------------------------------------------- inside the sandbox (the learner's side)

def _reply(fd: int, envelope: dict) -> None:
    buf = io.BytesIO()
    try:
        torch.save(envelope, buf)
    except Exception as e:  # noqa: BLE001 - e.g. a tensor that cannot be serialised
        buf = io.BytesIO()
        torch.save({"kind": "wrongtype", "message": f"the result could not be sent back: {e}"[:500]}, buf)
    _write_all(fd, buf.getvalue(), time.monotonic() + 600)


def serve(req_fd: int, rep_fd: int) -> None:
    """Answer requests until the grader closes the pipe: load an answer, call it, run a probe on it."""
    answers: dict[str, Any] = {}
    _reply(rep_fd, {"kind": "value", "value": "ready"})
    while True:
        try:
            request = pickle.loads(_read_frame(req_fd, None, 1 << 40))  # from the grader: trusted
        except AnswerCrashed:
            return
        _reply(rep_fd, _handle(request, answers))


def _handle(request: dict, answers: dict[str, Any]) -> dict:
    """The envelope answering one request (``load`` an answer, ``call`` it, or run a probe on it)."""
    check_id = request["check_id"]
    if request["op"] == "load":
        envelope = execute(lambda blob: answers.__setitem__(check_id, pickle.loads(blob)), (request["blob"],), {})
        if envelope["kind"] == "raised":
            envelope = {"kind": "wrongtype", "forbidden": [], "message": "the grader could not load your answer out "
                        f"of the notebook ({envelope['type']}: {envelope['message']})"}
        return envelope
    args, kwargs = pickle.loads(request["args"])
    obj = answers[check_id]
    if request.get("probe"):
        probe = import_probe(*request["probe"])
        return execute(lambda *a, **k: probe(obj, *a, **k), args, kwargs, request["forbid"])
    return execute(obj, args, kwargs, request["forbid"])


def main(argv: list[str]) -> int:
    req_fd, rep_fd = int(argv[0]), int(argv[1])
    for module in argv[2:]:
        __import__(module)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # the learner's prints go nowhere; the protocol has its own pipes
        os.dup2(devnull, fd)
    serve(req_fd, rep_fd)
    return 0


# ---------------------------------------------------------------- in the grader

class Sandbox:
    """The grader's handle on a sandbox process; restarted after a timeout or a crash.

    Args:
        modules: modules to import before any learner code (the chapter's grading module, for its probes).
        cwd, env: where and with which environment the learner's code runs (the notebook's folder).
    """

    def __init__(self, modules: list[str], cwd: str | None = None, env: dict[str, str] | None = None):
        self.modules, self.cwd, self.env = modules, cwd, env
        self.proc: Isolated | None = None
        self.loaded: set[str] = set()
        self.starts = 0
        self.lock = threading.RLock()
        self.closed = False

    def start(self, deadline: float) -> None:
        """Start a fresh sandbox and wait (until ``deadline``) for it to be ready.

        Only spawning holds the lock: :meth:`shutdown` never waits for a slow start, it kills it.
        """
        with self.lock:
            if self.closed:
                raise StartError("the grading sandbox was shut down (the deadline passed)")
            self.close()
            req_r, req_w = os.pipe()
            rep_r, rep_w = os.pipe()
            try:
                self.proc = Isolated([sys.executable, "-m", "mmcourse.grading.sandbox", str(req_r), str(rep_w),
                                      *self.modules], cwd=self.cwd, env=self.env, pass_fds=(req_r, rep_w),
                                     start_timeout=max(1.0, deadline - time.monotonic()))
            except BaseException:
                os.close(req_w)
                os.close(rep_r)
                raise
            finally:
                os.close(req_r)
                os.close(rep_w)
            self.req_fd, self.rep_fd = req_w, rep_r
            os.set_blocking(self.req_fd, False)
            self.loaded = set()
            self.starts += 1
        try:
            self._receive(deadline)
        except (AnswerTimeout, AnswerCrashed, ProtocolError, OSError) as e:
            self.close()
            raise StartError(f"the grading sandbox did not start: {e}") from e

    def _receive(self, deadline: float) -> dict:
        data = _read_frame(self.rep_fd, deadline, MAX_REPLY)
        try:
            envelope = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
        except Exception as e:  # noqa: BLE001 - anything but plain data is refused
            raise ProtocolError(f"a reply that is not plain data ({type(e).__name__})") from e
        check_plain(envelope)
        if type(envelope) is not dict or envelope.get("kind") not in ("value", "raised", "wrongtype"):
            raise ProtocolError("a malformed reply")
        return envelope

    def request(self, request: dict, deadline: float) -> dict:
        """Send ``request`` and return the reply's envelope; kill the sandbox on timeout, crash or garbage."""
        if self.proc is None or not self.proc.alive():
            raise AnswerCrashed("the sandbox is not running")
        try:
            _write_all(self.req_fd, pickle.dumps(request), deadline)
            return self._receive(deadline)
        except (AnswerTimeout, AnswerCrashed, ProtocolError, OSError):
            self.close()
            raise

    def ensure(self, check_id: str, blob: bytes, deadline: float, start_deadline: float) -> None:
        """Make sure the sandbox runs and holds the answer of ``check_id`` (raises what loading it raised)."""
        if self.proc is None or not self.proc.alive():
            self.start(start_deadline)
        if check_id not in self.loaded:
            envelope = self.request({"op": "load", "check_id": check_id, "blob": blob}, deadline)
            if envelope["kind"] != "value":
                unpack(envelope)
            self.loaded.add(check_id)

    def shutdown(self) -> None:
        """Kill the sandbox and refuse to start another one."""
        with self.lock:
            self.closed = True
            self.close()

    def close(self) -> None:
        """Kill the sandbox and everything it started (safe to call twice, from two threads)."""
        with self.lock:
            proc, self.proc = self.proc, None
            if proc is None:
                return
            proc.kill()
            for fd in (self.req_fd, self.rep_fd):
                try:
                    os.close(fd)
                except OSError:
                    pass


class RemoteAnswer(Answer):
    """The learner's answer living in a :class:`Sandbox` under the key ``check_id`` (loaded with
    :meth:`Sandbox.ensure`); every call has to return before ``deadline``."""

    def __init__(self, sandbox: Sandbox, check_id: str, forbid: tuple[str, ...], forbid_note: str, deadline: float):
        self.sandbox, self.check_id, self.deadline = sandbox, check_id, deadline
        self.forbid, self.forbid_note = forbid, forbid_note

    def _envelope(self, probe, args: tuple, kwargs: dict) -> dict:
        request = {"op": "call", "check_id": self.check_id, "args": pickle.dumps((args, kwargs)),
                   "forbid": list(self.forbid), "probe": (probe.__module__, probe.__qualname__) if probe else None}
        return self.sandbox.request(request, self.deadline)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
