"""``make lab``: JupyterLab on the course, also where the user is root (containers, cloud machines).

JupyterLab refuses to start as root unless told ``--allow-root``; this adds it when the user id is 0. Without a
display (a server, a container) it does not try to open a browser: open the URL with the token it prints.
Extra JupyterLab options come from the arguments (``make lab LAB_ARGS="--ip=0.0.0.0 --port=8899"``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path


def headless() -> bool:
    """True when no browser can be opened here (Linux without ``DISPLAY``/``WAYLAND_DISPLAY``)."""
    if sys.platform in ("darwin", "win32"):
        return False
    return not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def lab_command(root: Path, extra: Sequence[str] = ()) -> list[str]:
    """The JupyterLab command line for the course at ``root`` (this Python's JupyterLab)."""
    exe = Path(sys.executable).with_name("jupyter-lab")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "jupyterlab"]
    cmd.append(f"--notebook-dir={root}")
    if is_root():
        cmd.append("--allow-root")
    if headless():
        cmd.append("--no-browser")
    return [*cmd, *extra]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cmd = lab_command(Path.cwd(), argv)
    print(" ".join(cmd), flush=True)
    os.execv(cmd[0], cmd)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
