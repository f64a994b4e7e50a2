"""Generate student exercise notebooks (``exercises/``) from the single-source ``solutions/`` notebooks.

Solution code sits inside function (or method) bodies between ``# BEGIN SOLUTION`` and ``# END SOLUTION``;
it is replaced by ``raise NotImplementedError()``. Outputs are cleared, and every cell that calls a blanked
function or class — or uses a name made by such a cell — is tagged ``raises-exception``, so the untouched
exercise notebook runs to the end (under nbval too) and scores zero.

Run: ``mmcourse exercises`` or ``python -m mmcourse.authoring.exercises`` (``--check`` only compares).
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import sys
from pathlib import Path

BEGIN, END = "# BEGIN SOLUTION", "# END SOLUTION"
RAISES = "raises-exception"
STUB = "raise NotImplementedError()"


class SolutionMarkerError(ValueError):
    """The BEGIN/END SOLUTION markers of a cell are unbalanced or not inside a function body."""


def blank_source(source: str, where: str = "cell") -> str:
    """Replace each BEGIN/END SOLUTION block of ``source`` by ``raise NotImplementedError()``."""
    out: list[str] = []
    inside = False
    for i, line in enumerate(source.splitlines(), 1):
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise SolutionMarkerError(f"{where}, line {i}: nested {BEGIN!r}")
            indent = line[: len(line) - len(line.lstrip())]
            if not indent:
                raise SolutionMarkerError(f"{where}, line {i}: {BEGIN!r} must be inside a function body")
            out.append(f"{indent}{STUB}")
            inside = True
        elif stripped == END:
            if not inside:
                raise SolutionMarkerError(f"{where}, line {i}: {END!r} without {BEGIN!r}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise SolutionMarkerError(f"{where}: {BEGIN!r} is never closed by {END!r}")
    return "\n".join(out)


def _defined_with_solution(source: str) -> set[str]:
    """Top-level function/class names in ``source`` whose body holds a solution block."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    lines = source.splitlines()
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = lines[node.lineno - 1: node.end_lineno]
            if any(line.strip() == BEGIN for line in body):
                names.add(node.name)
    return names


def _defs_using(source: str, names: set[str]) -> set[str]:
    """Top-level functions/classes in ``source`` whose bodies refer to one of ``names`` (calling them raises)."""
    try:
        tree = ast.parse(_strip_magics(source))
    except SyntaxError:
        return set()
    found = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if any(isinstance(n, ast.Name) and n.id in names for n in ast.walk(node)):
                found.add(node.name)
    return found


def _module_level_names(source: str) -> tuple[set[str], set[str]]:
    """(names loaded, names stored) by a cell's statements, not counting function/class bodies."""
    try:
        tree = ast.parse(_strip_magics(source))
    except SyntaxError:
        return set(), set()
    loaded: set[str] = set()
    stored: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            if not isinstance(node, ast.Lambda):
                stored.add(node.name)
            for d in getattr(node, "decorator_list", []):
                visit(d)
            return
        if isinstance(node, ast.Name):
            (stored if isinstance(node.ctx, ast.Store) else loaded).add(node.id)
        for child in ast.iter_child_nodes(node):
            visit(child)

    for stmt in tree.body:
        visit(stmt)
    return loaded, stored


def _strip_magics(source: str) -> str:
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def _calls(source: str, names: set[str]) -> bool:
    """Does the cell call one of ``names`` at module level (outside function/class bodies), or hand one to a
    call that will (``DataLoader(..., collate_fn=blank)``, ``map(blank, xs)``)? ``check(id, blank)`` is exempt:
    the grader catches the error and scores zero."""
    try:
        tree = ast.parse(_strip_magics(source))
    except SyntaxError:
        return False

    def visit(node: ast.AST) -> bool:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            return False
        if isinstance(node, ast.Call):
            func = node.func.id if isinstance(node.func, ast.Name) else None
            if func in names:
                return True
            passed = [*node.args, *(k.value for k in node.keywords)]
            if func != "check" and any(isinstance(a, ast.Name) and a.id in names for a in passed):
                return True
        return any(visit(c) for c in ast.iter_child_nodes(node))

    return any(visit(stmt) for stmt in tree.body)


def make_exercise(nb: dict, name: str = "notebook") -> dict:
    """Return the exercise version of a solutions notebook (a dict in nbformat 4 layout)."""
    nb = copy.deepcopy(nb)
    blanked: set[str] = set()
    tainted: set[str] = set()
    n_blocks = 0
    for idx, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") == "markdown":  # Colab badge and links point at the exercise copy
            md = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            cell["source"] = md.replace(f"solutions/{name}", f"exercises/{name}")
        if cell.get("cell_type") != "code":
            continue
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        tags = [t for t in cell.get("metadata", {}).get("tags", []) if t != RAISES]
        if BEGIN in src:
            blanked |= _defined_with_solution(src)
            n_blocks += src.count(BEGIN)
            src = blank_source(src, f"{name}, cell {idx}")
        blanked |= _defs_using(src, blanked)  # a helper that calls a blank function raises too
        loaded, stored = _module_level_names(src)
        if _calls(src, blanked) or loaded & tainted:
            tags.append(RAISES)
            tainted |= stored
        cell["source"] = src
        cell["outputs"] = []
        cell["execution_count"] = None
        meta = cell.setdefault("metadata", {})
        if tags:
            meta["tags"] = tags
        else:
            meta.pop("tags", None)
    if n_blocks == 0:
        raise SolutionMarkerError(f"{name}: no {BEGIN!r} block found; a solutions notebook needs at least one")
    nb.setdefault("metadata", {})["mmcourse"] = {"generated_from": f"solutions/{name}"}
    return nb


def dumps(nb: dict) -> str:
    """Serialise a notebook the way Jupyter does (1-space indent, trailing newline)."""
    return json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


def generate(root: Path, check_only: bool = False) -> list[str]:
    """Write ``exercises/*.ipynb`` from ``solutions/*.ipynb`` under ``root``; return the names out of date.

    With ``check_only`` nothing is written; the names whose committed copy differs are returned.
    """
    src_dir, dst_dir = root / "solutions", root / "exercises"
    if not src_dir.is_dir():
        raise FileNotFoundError(f"no solutions/ folder under {root}")
    stale = []
    wanted = set()
    for path in sorted(src_dir.glob("*.ipynb")):
        text = dumps(make_exercise(json.loads(path.read_text(encoding="utf-8")), path.name))
        target = dst_dir / path.name
        wanted.add(path.name)
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            stale.append(path.name)
            if not check_only:
                dst_dir.mkdir(exist_ok=True)
                target.write_text(text, encoding="utf-8")
    for extra in sorted(p.name for p in dst_dir.glob("*.ipynb")) if dst_dir.is_dir() else []:
        if extra not in wanted:
            stale.append(extra)
            if not check_only:
                (dst_dir / extra).unlink()
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mmcourse exercises", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, default=Path("."), help="the course folder (default: .)")
    parser.add_argument("--check", action="store_true", help="only report notebooks that are out of date")


def run(args: argparse.Namespace) -> int:
    stale = generate(args.root, check_only=args.check)
    verb = "out of date" if args.check else "written"
    print(f"{len(stale)} exercise notebook(s) {verb}" + (f": {', '.join(stale)}" if stale else ""))
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
