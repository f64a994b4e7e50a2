"""Deprecated: chapters glue numbers with :func:`mmcourse.display.glue_text` (plain text, no echo).

``python -m mmcourse.authoring.notebook_tools fix`` rewrites ``from mmcourse.notebook import glue`` and its
calls; this alias keeps a chapter that still uses them rendering correctly until then.
"""

from __future__ import annotations

from typing import Any

from mmcourse.display import glue_text


def glue(name: str, value: Any, display: bool = False) -> None:
    """Same as ``glue_text(name, value)`` (``display`` is ignored: a glued value is never a cell output)."""
    glue_text(name, value)
