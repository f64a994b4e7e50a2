"""Small helpers for notebooks: ``glue`` numbers into the prose (myst-nb when present), and static figures.

Numbers quoted in a chapter's prose come from the run through ``glue``; outside a book build (Colab,
JupyterLab without myst-nb) ``glue`` simply shows the value.
"""

from __future__ import annotations

from typing import Any


def glue(name: str, value: Any, display: bool = False) -> Any:
    """Make ``value`` available to the prose as ``{glue:}`name```; returns ``value``."""
    try:
        from myst_nb import glue as _glue
    except ImportError:  # Colab / plain Jupyter: nothing to glue into
        return value
    _glue(name, value, display=display)
    return value
