"""How a hidden test sees the learner's answer: a handle it calls, whose results come back as plain values.

A check (``mmcourse/grading/chNN.py``) is written once, against :class:`Answer`:

- ``fn(x, w, stride=2)`` calls the learner's function on copies of the arguments and returns a plain copy of
  the result;
- ``fn.probe(probe_fn, *args)`` runs ``probe_fn(answer, *args)`` beside the learner's code and returns its
  plain observations — for answers that are classes, or that must be watched from inside (gradients, calls
  counted, parameters frozen). A probe is a module-level function of the grading module; it builds inputs,
  calls the answer and reports what it saw, and never computes an expected value.

Both run through :func:`execute` and come back as an *envelope*: the value converted by :func:`to_plain`
(exact ``torch.Tensor``, ``int``, ``float``, ``bool``, ``str``, ``None``, and lists, tuples and dicts of
them — an ``int`` subclass whose ``==`` is always true, or a tensor subclass, is refused), the learner's
exception (type name and message) or the calls to functions the task forbids (recorded by a
``TorchFunctionMode`` while the learner's code runs). :func:`unpack` turns the envelope back into a value or
an exception. :class:`LocalAnswer` does this in the current process (``check()`` in a notebook: feedback while
working); :class:`mmcourse.grading.sandbox.RemoteAnswer` does it in the sandbox process of ``mmcourse grade``
and checks the envelope again with :func:`check_plain` after a ``weights_only`` load.
"""

from __future__ import annotations

import builtins
import collections
import copy
import sys
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

SCALARS = (type(None), bool, int, float, str)
MAX_ITEMS = 200_000
MAX_TENSOR_BYTES = 256 * 2**20
MAX_MESSAGE = 2000


class WrongType(AssertionError):
    """The answer returned a value a hidden test cannot accept (a subclass, an object, far too much data)."""


class ForbiddenCall(AssertionError):
    """The answer called a function its task does not allow (``F.conv2d`` in 03.conv2d, ...)."""


class AnswerRaised(Exception):
    """The learner's code raised an exception that is not a built-in one; the message names its type."""


class AnswerTimeout(Exception):
    """The learner's code did not return within the check's time limit."""


class AnswerCrashed(Exception):
    """The process running the learner's code ended (``os._exit``, a crash, out of memory)."""


def from_answer(exc: BaseException) -> bool:
    """Whether ``exc`` was raised by the learner's code (rebuilt by :func:`unpack`), not by the hidden test."""
    return bool(getattr(exc, "_mmcourse_from_answer", False))


def _short(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + " …"


def _plain(value: Any, depth: int, budget: list[int], strict: bool) -> Any:
    budget[0] -= 1
    if budget[0] < 0 or depth > 32:
        raise WrongType(f"the result is too large or too deeply nested (more than {MAX_ITEMS} items)")
    kind = type(value)
    if kind in SCALARS:
        return value
    if kind is torch.Tensor or (not strict and kind is torch.nn.Parameter):
        if value.numel() * value.element_size() > MAX_TENSOR_BYTES:
            raise WrongType(f"a returned tensor holds {value.numel() * value.element_size() / 2**20:.0f} MB")
        return value if strict else value.detach().cpu().clone()
    if kind in (tuple, list):
        return kind(_plain(v, depth + 1, budget, strict) for v in value)
    if kind is dict:
        out = {}
        for k, v in value.items():
            if type(k) not in (str, int):
                raise WrongType(f"dict keys must be str or int, got {type(k).__name__}")
            out[k] = _plain(v, depth + 1, budget, strict)
        return out
    if not strict:  # harmless stand-ins, converted to the plain value they stand for
        if kind is torch.Size or kind.__module__ == "torch.return_types":
            return tuple(_plain(v, depth + 1, budget, strict) for v in value)
        if kind in (collections.OrderedDict, collections.defaultdict):
            return _plain(dict(value), depth, budget, strict)
        if kind.__module__ == "numpy" and hasattr(value, "item") and getattr(value, "ndim", None) == 0:
            return _plain(value.item(), depth, budget, strict)
    base = next((b.__name__ for b in (bool, int, float, str, tuple, list, dict, torch.Tensor)
                 if isinstance(value, b)), None)
    if base is not None:
        raise WrongType(f"your code returned a {kind.__name__}, a subclass of {base}; return a plain {base}")
    raise WrongType(f"your code returned a {kind.__module__}.{kind.__name__} where a tensor, a number, a "
                    "string or a list/tuple/dict of them was expected")


def to_plain(value: Any) -> Any:
    """A plain copy of ``value`` (tensors detached, cloned, on the CPU); raises :class:`WrongType` otherwise."""
    return _plain(value, 0, [MAX_ITEMS], strict=False)


def check_plain(value: Any) -> Any:
    """Return ``value`` unchanged if it holds only exact plain types (after a ``weights_only`` load)."""
    return _plain(value, 0, [MAX_ITEMS], strict=True)


class _Recorder(TorchFunctionMode):
    """Records which forbidden torch functions (by name: ``conv2d``, ``log_softmax``, ...) are called."""

    def __init__(self, names: Iterable[str]):
        super().__init__()
        self.names = frozenset(names)
        self.called: set[str] = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "").split(".")[0]
        if name in self.names:
            self.called.add(name)
        return func(*args, **(kwargs or {}))


@contextmanager
def forbidden_calls(names: Iterable[str]):
    """Context that yields the set of forbidden torch functions called inside it (empty names: no recording)."""
    names = tuple(names)
    if not names:
        yield set()
        return
    recorder = _Recorder(names)
    with recorder:
        yield recorder.called


def _message(exc: BaseException) -> str:
    try:
        return _short(str(exc))
    except Exception:  # noqa: BLE001 - a learner's __str__ may raise
        return "(the exception's message could not be read)"


def execute(fn: Callable[..., Any], args: tuple, kwargs: dict, forbid: Iterable[str] = ()) -> dict:
    """Run ``fn(*args, **kwargs)`` (learner's code) and return its envelope; never raises for the learner."""
    with forbidden_calls(forbid) as called:
        try:
            value = fn(*args, **kwargs)
        except BaseException as e:  # noqa: BLE001 - carried back to the hidden test (SystemExit too)
            kind = type(e)
            return {"kind": "raised", "type": kind.__name__, "message": _message(e), "forbidden": sorted(called),
                    "builtin": getattr(builtins, kind.__name__, None) is kind}
    try:
        return {"kind": "value", "value": to_plain(value), "forbidden": sorted(called)}
    except WrongType as e:
        return {"kind": "wrongtype", "message": str(e), "forbidden": sorted(called)}


def unpack(envelope: dict, forbid_note: str = "") -> Any:
    """The value in ``envelope``, or raise what it carries (the learner's exception is rebuilt and marked)."""
    called = envelope.get("forbidden") or []
    if called:
        raise ForbiddenCall(f"your code calls {', '.join(called)}, which this task does not allow"
                            f"{': ' + forbid_note if forbid_note else ''}")
    if envelope["kind"] == "value":
        return envelope["value"]
    if envelope["kind"] == "wrongtype":
        raise WrongType(envelope["message"])
    name, message = str(envelope["type"]), str(envelope["message"])
    kind = getattr(builtins, name, None) if envelope.get("builtin") else None
    if isinstance(kind, type) and issubclass(kind, Exception):
        try:
            exc: Exception = kind(message)
        except Exception:  # noqa: BLE001 - e.g. UnicodeDecodeError needs five arguments
            exc = AnswerRaised(f"{name}: {message}")
    else:
        exc = AnswerRaised(f"{name}: {message}")
    exc._mmcourse_from_answer = True  # type: ignore[attr-defined]
    raise exc


class Answer:
    """The learner's answer as a hidden test sees it. Subclasses say where the learner's code runs."""

    forbid: tuple[str, ...] = ()
    forbid_note: str = ""

    def _envelope(self, probe: Callable[..., Any] | None, args: tuple, kwargs: dict) -> dict:
        raise NotImplementedError

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the learner's function (or class) on copies of the arguments; return a plain result."""
        return unpack(self._envelope(None, args, kwargs), self.forbid_note)

    def probe(self, probe: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``probe(answer, *args, **kwargs)`` beside the learner's code; return its plain observations."""
        if "<locals>" in probe.__qualname__ or probe.__module__ == "__main__":
            raise ValueError(f"probe {probe.__qualname__} must be a module-level function of a grading module")
        return unpack(self._envelope(probe, args, kwargs), self.forbid_note)


class LocalAnswer(Answer):
    """The answer object of this process (a notebook's ``check``): feedback, not a grade."""

    def __init__(self, obj: Any, forbid: Iterable[str] = (), forbid_note: str = ""):
        self.obj, self.forbid, self.forbid_note = obj, tuple(forbid), forbid_note

    def _envelope(self, probe: Callable[..., Any] | None, args: tuple, kwargs: dict) -> dict:
        args, kwargs = copy.deepcopy((args, kwargs))  # as over the wire: the learner gets copies
        fn = self.obj if probe is None else (lambda *a, **k: probe(self.obj, *a, **k))
        return execute(fn, args, kwargs, self.forbid)


def import_probe(module: str, qualname: str) -> Callable[..., Any]:
    """The probe function ``module.qualname`` (imported if needed), as the sandbox finds it."""
    __import__(module)
    obj: Any = sys.modules[module]
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj
