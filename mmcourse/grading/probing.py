"""Building and running the learner's module inside a probe, with every failure turned into a report.

A probe (see :mod:`mmcourse.grading.answers`) must not raise on a learner's mistake: it reports
``{"error": "..."}`` and the check turns that into feedback. ``NotImplementedError`` is let through, because
it means a blank exercise ("not implemented"), not a wrong answer.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


def build_module(cls: Any, args: tuple, seed: int, what: str) -> nn.Module | dict:
    """``cls(*args)`` built after ``torch.manual_seed(seed)``, or ``{"error": ...}`` saying why it failed."""
    torch.manual_seed(seed)
    try:
        module = cls(*args)
    except NotImplementedError:  # a blank exercise: "not implemented", not a failure
        raise
    except Exception as e:  # noqa: BLE001 - reported to the check
        return {"error": f"{what} raised {type(e).__name__}: {e}"}
    if not isinstance(module, nn.Module):
        return {"error": f"{what} is a {type(module).__name__}, not an nn.Module"}
    return module


def run_module(cls: Any, args: tuple, seed: int, x: Tensor, what: str, *, eval_mode: bool = True,
               on: str = "") -> dict:
    """Build ``cls(*args)`` (see :func:`build_module`) and run it without gradients on ``x``.

    Returns ``{"out": output, "state": a copy of its state_dict}``, or ``{"error": ...}``; ``on`` describes the
    input in the error of a failed run (" on a batch [2, 3, 8, 8]").
    """
    module = build_module(cls, args, seed, what)
    if isinstance(module, dict):
        return module
    try:
        if eval_mode:
            module.eval()
        with torch.no_grad():
            out = module(x)
    except NotImplementedError:  # a blank exercise: "not implemented", not a failure
        raise
    except Exception as e:  # noqa: BLE001 - reported to the check
        return {"error": f"{what}{on} raised {type(e).__name__}: {e}"}
    return {"out": out, "state": {k: v.detach().clone() for k, v in module.state_dict().items()}}
