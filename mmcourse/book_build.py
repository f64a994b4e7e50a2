"""Build the HTML book (``make book``): bundle offline assets, run Jupyter Book 1.x, fail on any notebook error.

The book must render with no internet, so MathJax, RequireJS and the Jupyter widget manager are fetched once
from the npm registry (``npm pack``, pinned versions below), unpacked into ``_static/vendor`` and served from
the book itself. Notebooks execute through jupyter-cache (``_build/.jupyter_cache``): a second build re-runs
only notebooks whose code changed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

# npm package -> {path inside the package: path under _static/vendor}
VENDOR = {
    "mathjax@3.2.2": {"es5": "mathjax/es5"},
    "requirejs@2.3.7": {"require.js": "require.min.js"},
    "@jupyter-widgets/html-manager@1.0.15": {"dist": "html-manager"},
}


def vendor_assets(root: Path) -> Path:
    """Unpack the pinned npm packages into ``root/_static/vendor`` (once; reused while present)."""
    dest = root / "_static" / "vendor"
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


def build(root: Path) -> int:
    """Build ``root`` into ``root/_build/html``; return a process exit status (0 = every notebook ran)."""
    vendor_assets(root)
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
