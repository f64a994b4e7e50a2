"""Start notebook kernels one at a time across processes (the test suite's nbval workers, the book build's
executors and the Colab test all take the same lock).

jupyter_client picks a kernel's five TCP ports by binding to port 0 and closing, and the kernel binds them a
moment later: two processes starting kernels at once can pick the same port, and a kernel then dies ("Kernel
died before replying to kernel_info") or a client talks to the wrong kernel and waits for a reply that never
comes (jupyter/jupyter_client#487; seen in the book build: a client idle for minutes, its kernel idle too).
Holding a machine-wide ``flock`` from port choice until the kernel answers closes that window.
"""

from __future__ import annotations

import fcntl
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

KERNEL_START_LOCK = Path(tempfile.gettempdir()) / "mmcourse-kernel-start.lock"


@contextmanager
def kernel_start_lock() -> Iterator[None]:
    """Hold the machine-wide kernel-start lock (an ``flock``; released when the process dies)."""
    with open(KERNEL_START_LOCK, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
