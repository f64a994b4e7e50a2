"""Keep the course notebooks uniform: Colab badge, Colab-only install cell, no outputs, python3 kernel, and
the book's rules (glue, tables: see :mod:`mmcourse.authoring.book_rules`).

``python -m mmcourse.authoring.notebook_tools fix`` rewrites ``book/`` and ``solutions/`` notebooks in place
(after ``ruff format`` with the notebooks' 88-column setting, when ruff is installed); ``check`` (used by the
tests) lists what ``fix`` would change. It is safe to re-run. The repository URL comes from one setting,
``repository.url`` in ``_config.yml``; the install cell pins the tag ``v<mmcourse version>``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from mmcourse import __version__
from mmcourse.authoring.book_rules import rewrite_cells

BADGE_IMG = "colab-badge.svg"  # a local copy under book/images/, so the HTML needs no internet
INSTALL_TAG = "colab-install"
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}
BADGE_RE = re.compile(r"^\[!\[Open in Colab\].*$\n?", re.M)


def repo_url(root: Path) -> str:
    """``repository.url`` from ``_config.yml`` (read with a tiny parser: no YAML dependency needed)."""
    text = (root / "_config.yml").read_text(encoding="utf-8")
    m = re.search(r"^repository:\s*\n(?:[ \t]+.*\n)*?[ \t]+url:\s*(\S+)", text, re.M)
    if not m:
        raise ValueError("_config.yml has no repository.url; the Colab badges and install cells need it")
    return m.group(1).rstrip("/")


def colab_link(url: str, relpath: str) -> str:
    gh = url.removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{gh}/blob/v{__version__}/{relpath}"


def badge_line(url: str, relpath: str) -> str:
    """Markdown for the Colab badge(s) of a notebook at ``relpath`` (book chapters also link their exercises)."""
    img = ("images/" if relpath.startswith("book/") else "../book/images/") + BADGE_IMG
    line = f"[![Open in Colab]({img})]({colab_link(url, relpath)})"
    if relpath.startswith("book/"):
        ex = relpath.replace("book/", "exercises/", 1)
        line += f" · [Exercises in Colab]({colab_link(url, ex)}) · exercises in JupyterLab: `{ex}`"
    return line


INSTALL_SPEC = "mmcourse[pretrained]"  # what the install cell installs (the Colab test installs the same)


def install_source(url: str) -> str:
    """The Colab-only install cell; its lines fit the book's 88-column code blocks whatever the URL."""
    return ("# Runs only in Google Colab: installs mmcourse at the version this book was built from.\n"
            "import sys\n\n"
            "if \"google.colab\" in sys.modules:\n"
            f"    repo = \"{url}\"\n"
            f"    %pip install -q \"{INSTALL_SPEC} @ git+{{repo}}@v{__version__}\"")


def _src(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def fixed(nb: dict, url: str, relpath: str) -> dict:
    """The notebook with badge, install cell, cleared outputs and python3 kernel metadata."""
    cells = nb["cells"]
    if not cells or cells[0]["cell_type"] != "markdown" or not _src(cells[0]).lstrip().startswith("# "):
        raise ValueError(f"{relpath}: the first cell must be markdown starting with '# NN · Title'")
    head = BADGE_RE.sub("", _src(cells[0]))
    title, _, rest = head.partition("\n")
    body = rest.strip("\n")
    cells[0]["source"] = f"{title}\n\n{badge_line(url, relpath)}" + (f"\n\n{body}" if body else "")
    install = {"cell_type": "code", "execution_count": None, "id": "colab-install",
               "metadata": {"tags": [INSTALL_TAG, "hide-input"]}, "outputs": [], "source": install_source(url)}
    if len(cells) > 1 and INSTALL_TAG in cells[1].get("metadata", {}).get("tags", []):
        cells[1] = install
    else:
        cells.insert(1, install)
    rewrite_cells(cells)
    for i, cell in enumerate(cells):
        cell.setdefault("id", f"cell-{i}")
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
        if isinstance(cell["source"], list):
            cell["source"] = "".join(cell["source"])
    meta = nb.setdefault("metadata", {})
    meta["kernelspec"] = KERNELSPEC
    meta.setdefault("language_info", {"name": "python"})
    nb["nbformat"], nb["nbformat_minor"] = 4, max(int(nb.get("nbformat_minor", 5)), 5)
    return nb


def dumps(nb: dict) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


def notebooks(root: Path) -> list[Path]:
    return sorted([*root.glob("book/*.ipynb"), *root.glob("solutions/*.ipynb")])


def run_fix(root: Path, write: bool) -> list[str]:
    """Fix (or, with ``write=False``, only list) the notebooks that differ from their fixed form."""
    url = repo_url(root)
    changed = []
    for path in notebooks(root):
        text = path.read_text(encoding="utf-8")
        new = dumps(fixed(json.loads(text), url, path.relative_to(root).as_posix()))
        if new != text:
            changed.append(path.relative_to(root).as_posix())
            if write:
                path.write_text(new, encoding="utf-8")
    return changed


def ruff_format(root: Path) -> None:
    """``ruff format`` the notebooks (each folder's ruff.toml sets 88 columns); lines it cannot shorten
    (long strings, comments) are left for a person: ``ruff check book solutions`` lists them (E501)."""
    ruff = shutil.which("ruff") or shutil.which("ruff", path=str(Path(sys.executable).parent))
    if ruff is None:
        print("ruff is not installed: notebooks not reformatted (pip install ruff)", file=sys.stderr)
        return
    subprocess.run([ruff, "format", "-q", *map(str, notebooks(root))], cwd=root, check=False)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in ("fix", "check"):
        print("usage: python -m mmcourse.authoring.notebook_tools fix|check [ROOT]", file=sys.stderr)
        return 2
    root = Path(argv[1]) if len(argv) > 1 else Path.cwd()
    changed = run_fix(root, write=argv[0] == "fix")
    if argv[0] == "fix":  # format what the rules rewrote, then normalise the JSON again
        ruff_format(root)
        changed = sorted(set(changed) | set(run_fix(root, write=True)))
    print(f"{len(changed)} notebook(s) {'fixed' if argv[0] == 'fix' else 'need fixing'}: {', '.join(changed)}")
    return 1 if (argv[0] == "check" and changed) else 0


if __name__ == "__main__":
    sys.exit(main())
