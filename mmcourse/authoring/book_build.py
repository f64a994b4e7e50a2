"""Build the HTML book (``make book``): bundle offline assets, run Jupyter Book 1.x, fail on any notebook error.

The book must render with no internet, so MathJax, RequireJS and the Jupyter widget manager are fetched once
from the npm registry (``npm pack``, pinned versions below), unpacked into ``_vendor/vendor`` and served from
the book itself as ``_static/vendor``. Notebooks execute through jupyter-cache (``_build/.jupyter_cache``),
two at a time, before Jupyter Book renders them; a second build re-runs only notebooks whose code changed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

# npm package -> {path inside the package: path under _static/vendor}
VENDOR = {
    "mathjax@3.2.2": {"es5": "mathjax/es5"},
    "requirejs@2.3.7": {"require.js": "require.min.js"},
    "@jupyter-widgets/html-manager@1.0.15": {"dist": "html-manager"},
}


def vendor_assets(root: Path) -> Path:
    """Unpack the pinned npm packages into ``root/_static/vendor`` (once; reused while present)."""
    dest = root / "_vendor" / "vendor"
    stamp = dest / ".versions"
    want = "\n".join(sorted(VENDOR))
    if stamp.exists() and stamp.read_text() == want:
        return dest
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("make book needs `npm` to bundle MathJax and the widget manager for offline HTML "
                         "(Debian: apt-get install npm). Packages: " + ", ".join(VENDOR))
    tmp_dest = Path(tempfile.mkdtemp(prefix=".vendor-", dir=dest.parent if dest.parent.exists() else None))
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([npm, "pack", *VENDOR, "--silent", "--pack-destination", tmp],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"npm pack failed (is the npm registry reachable?):\n{proc.stderr.strip()}")
        tarballs = sorted(Path(tmp).glob("*.tgz"))
        for spec, files in VENDOR.items():
            stem = spec.rsplit("@", 1)[0].lstrip("@").replace("/", "-")
            (tgz,) = [t for t in tarballs if t.name.startswith(stem + "-")]
            with tarfile.open(tgz) as tar:
                tar.extractall(Path(tmp) / stem, filter="data")
            for src, dst in files.items():
                s, d = Path(tmp) / stem / "package" / src, tmp_dest / dst
                d.parent.mkdir(parents=True, exist_ok=True)
                (shutil.copytree if s.is_dir() else shutil.copy2)(s, d)
    (tmp_dest / ".versions").write_text(want)
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp_dest, dest)
    return dest


def toc_notebooks(root: Path) -> list[Path]:
    """The notebooks ``_toc.yml`` lists, in order."""
    names = re.findall(r"(?:file|root):\s*(\S+)", (root / "_toc.yml").read_text(encoding="utf-8"))
    return [root / f"{n}.ipynb" for n in names if (root / f"{n}.ipynb").exists()]


def _execute(path: Path, timeout: int) -> tuple[Path, object, str | None, float]:
    """Run one notebook in a fresh kernel; its kernel starts under the machine-wide kernel-start lock."""
    import time
    import traceback

    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    from mmcourse.authoring.kernels import kernel_start_lock

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, allow_errors=False, resources={"metadata": {"path": str(path.parent)}})
    t0, err = time.perf_counter(), None
    try:
        with kernel_start_lock():  # port choice .. kernel_info reply: no other kernel starts meanwhile
            client.km = client.create_kernel_manager()
            client.start_new_kernel()
            client.start_new_kernel_client()
        client.execute()  # reuses the started kernel, shuts it down at the end
    except (CellExecutionError, CellTimeoutError):
        err = traceback.format_exc()
    for cell in nb.cells:  # nbclient's timestamps would change the cache's hash (it hashes cell metadata):
        cell.metadata.pop("execution", None)  # Jupyter Book would not find the notebook and run it again
    return path, nb, err, time.perf_counter() - t0


def pre_execute(root: Path, workers: int = 2, timeout: int = 1200) -> list[str]:
    """Execute the toc's notebooks that jupyter-cache lacks, ``workers`` at a time, and cache them.

    Jupyter Book then finds every notebook cached and only renders. Returns the failures' messages.
    """
    import nbformat
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    cache = get_cache(str(root / "_build" / ".jupyter_cache"))
    todo = []
    for path in toc_notebooks(root):
        try:
            cache.match_cache_notebook(nbformat.read(path, as_version=4))
        except KeyError:
            todo.append(path)
    failures = []
    if not todo:
        return failures
    print(f"executing {len(todo)} notebook(s), {workers} at a time: {', '.join(p.name for p in todo)}")
    # Parallel kernels each take all cores by default and then fight for them; share the cores out instead.
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for path, nb, err, secs in pool.map(_execute, todo, [timeout] * len(todo)):
            if err:
                failures.append(f"{path.relative_to(root)}:\n{err}")
                continue
            print(f"  {path.relative_to(root)}: {secs:.1f} s")
            cache.cache_notebook_bundle(CacheBundleIn(nb, str(path), data={"execution_seconds": secs}),
                                        check_validity=False, overwrite=True)
    return failures


def build(root: Path) -> int:
    """Build ``root`` into ``root/_build/html``; return a process exit status (0 = every notebook ran)."""
    vendor_assets(root)
    failures = pre_execute(root, workers=int(os.environ.get("MMCOURSE_BOOK_WORKERS", "2")))
    if failures:
        print("\nmake book: notebook(s) failed:\n" + "\n\n".join(failures), file=sys.stderr)
        return 1
    reports = root / "_build" / "html" / "reports"
    if reports.exists():
        shutil.rmtree(reports)
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(root), "--keep-going"]
    status = subprocess.run(cmd).returncode
    failed = sorted(p.name for p in reports.glob("*.err.log")) if reports.exists() else []
    if failed:
        print(f"\nmake book: {len(failed)} notebook(s) failed: {', '.join(failed)}; see {reports}", file=sys.stderr)
        return 1
    if status != 0:
        print(f"\nmake book: jupyter-book exited with status {status}", file=sys.stderr)
        return status
    print(f"\nThe book is in {root / '_build' / 'html' / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(build(Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd()))
