"""The book's rules for notebook sources (book/ and solutions/): a re-runnable fixer and a checker.

1. Numbers in prose are glued with ``mmcourse.display.glue_text`` and shown with the ``{glue}`key``` role:
   plain text, no quotes, no echo as a cell output. Never a role inside inline code.
2. Tables are shown with ``mmcourse.display.show_table`` (a real HTML table), never ``display(Markdown(...))``.
3. Code fits the book's column: at most ``MAX_LINE`` characters a line (``ruff format`` with book/ruff.toml),
   in code cells and in the prose's fenced code blocks.
4. Every code cell that draws a figure carries alt text: cell metadata ``{"mystnb": {"image": {"alt": ...}}}``.

:func:`rewrite_code` and :func:`rewrite_markdown` apply rules 1–2 mechanically (``notebook_tools fix`` calls
them on every cell); :func:`problems` lists what breaks any rule (the tests call it). Rules 3–4 need a person
(or ``ruff format``) for what the checker reports.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable

MAX_LINE = 88
MIN_ALT_WORDS = 5

GLUE_IMPORT_RE = re.compile(r"^from (?:mmcourse\.notebook|myst_nb) import glue[ \t]*(?:#.*)?$\n?", re.M)
GLUE_CALL_RE = re.compile(r"(?<![\w.])glue\(")
ROLE_IN_CODE_RE = re.compile(r"`\{glue(?::[\w]*)?\}`([^`\s]+)``")
ROLE_ALIAS_RE = re.compile(r"\{glue:(?:any)?\}`")
DISPLAY_MD_RE = re.compile(r"(?<![\w.])display\(\s*Markdown\(")

# Calls that draw a matplotlib figure or an interactive one (by the called name's last part).
PLOT_CALLS = re.compile(r"^(?:show|subplots|subplot|figure|imshow|plot|semilogy|bar|hist|scatter|image_grid|line_plot|"
                        r"interact|plot_\w+|\w+_plot)$")


def _match_paren(src: str, open_at: int) -> int:
    """Index of the ``)`` closing the ``(`` at ``open_at`` (strings and comments respected); -1 if none."""
    depth, i, quote = 0, open_at, None
    while i < len(src):
        ch = src[i]
        if quote:
            if src.startswith(quote, i):
                i += len(quote)
                quote = None
                continue
            i += 2 if ch == "\\" else 1
            continue
        if ch == "#":
            nl = src.find("\n", i)
            i = len(src) if nl < 0 else nl
            continue
        if ch in "\"'":
            quote = src[i:i + 3] if src[i:i + 3] in ('"""', "'''") else ch
            i += len(quote)
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def _rewrite_display_markdown(src: str) -> str:
    """``display(Markdown(X))`` (on one line or split over several) -> ``show_table(X)``."""
    start = 0
    while m := DISPLAY_MD_RE.search(src, start):
        md_open, outer_open = m.end() - 1, m.start() + len("display")
        md_close, outer_close = _match_paren(src, md_open), _match_paren(src, outer_open)
        if md_close < 0 or outer_close < 0 or src[md_close + 1:outer_close].strip(" \n,"):
            start = m.start() + 1  # display(Markdown(x), other) — leave it to a person
            continue
        src = src[:m.start()] + "show_table(" + src[md_open + 1:md_close].strip() + ")" + src[outer_close + 1:]
        start = m.start() + 1
    return src


def _drop_unused_import(src: str, module: str, name: str, elsewhere: str = "") -> str:
    """Remove ``name`` from ``from module import ...`` when neither the rest of ``src`` nor ``elsewhere`` (the
    notebook's other cells) uses it."""
    pat = re.compile(rf"^from {re.escape(module)} import ([^\n(]+)$", re.M)
    m = pat.search(src)
    if not m or name not in [n.strip() for n in m.group(1).split(",")]:
        return src
    rest = src[:m.start()] + src[m.end():] + "\n" + elsewhere
    if re.search(rf"(?<![\w.]){re.escape(name)}\b", rest):
        return src
    names = [n.strip() for n in m.group(1).split(",") if n.strip() != name]
    if names:
        return src[:m.start()] + f"from {module} import {', '.join(names)}" + src[m.end():]
    end = m.end() + 1 if src[m.end():m.end() + 1] == "\n" else m.end()
    return src[:m.start()] + src[end:]


def _statement_end(src: str, start: int) -> int:
    """Index just past the line that ends the import statement starting at ``start``."""
    line_end = src.find("\n", start)
    line_end = len(src) if line_end < 0 else line_end
    paren = src.find("(", start, line_end)
    if paren >= 0:
        close = _match_paren(src, paren)
        line_end = src.find("\n", close)
        line_end = len(src) if line_end < 0 else line_end
    return line_end


def _ensure_display_import(src: str, names: Iterable[str]) -> str:
    """Make ``src`` import ``names`` from ``mmcourse.display`` (merged, sorted, isort's place)."""
    names = set(names)
    if not names:
        return src
    m = re.search(r"^from mmcourse\.display import ([^\n(]+)$", src, re.M)
    if m:
        have = {n.strip() for n in m.group(1).split(",")}
        if names <= have:
            return src
        line = f"from mmcourse.display import {', '.join(sorted(have | names))}"
        return src[:m.start()] + line + src[m.end():]
    line = f"from mmcourse.display import {', '.join(sorted(names))}\n"
    imports = list(re.finditer(r"^from (mmcourse(?:\.[\w.]+)?) import ", src, re.M))
    for imp in imports:
        if imp.group(1) > "mmcourse.display":
            return src[:imp.start()] + line + src[imp.start():]
    if imports:
        end = _statement_end(src, imports[-1].start())
        return src[:end] + "\n" + line.rstrip("\n") + src[end:]
    return line + src


def rewrite_code(src: str) -> tuple[str, set[str]]:
    """Apply rules 1–2 to one code cell; return the new source and the ``mmcourse.display`` names it needs.

    ``glue(...)`` and ``_ = glue(...)`` become ``glue_text(...)``; ``display(Markdown(X))`` becomes
    ``show_table(X)`` (:func:`rewrite_cells` then drops the IPython imports no cell uses any more).
    """
    had_glue_import = bool(GLUE_IMPORT_RE.search(src))
    new = GLUE_IMPORT_RE.sub("", src)
    new = re.sub(r"^([ \t]*)_\s*=\s*glue\(", r"\1glue_text(", new, flags=re.M)
    new = GLUE_CALL_RE.sub("glue_text(", new)
    new = _rewrite_display_markdown(new)
    needs = {n for n in ("glue_text", "show_table") if re.search(rf"(?<![\w.]){n}\(", new)}
    if had_glue_import:
        needs.add("glue_text")
    return new, needs


def rewrite_markdown(src: str) -> str:
    """Rule 1 in prose: ```{glue:}`k``` inside inline code becomes ``{glue}`k```; ``{glue:}``/``{glue:any}``
    become ``{glue}``."""
    src = ROLE_IN_CODE_RE.sub(lambda m: "{glue}`" + m.group(1) + "`", src)
    return ROLE_ALIAS_RE.sub("{glue}`", src)


def _mark_code(src: str, keys: set[str]) -> str:
    """Add ``code=True`` to the ``glue_text("key", ...)`` calls of ``keys`` (their role sat in inline code)."""
    for key in keys:
        for m in reversed(list(re.finditer(rf"glue_text(\()\s*[\"']{re.escape(key)}[\"']\s*,", src))):
            close = _match_paren(src, m.start(1))
            if close > 0 and "code=" not in src[m.start():close]:
                src = src[:close].rstrip().rstrip(",") + ", code=True" + src[close:]
    return src


def rewrite_cells(cells: list[dict]) -> list[dict]:
    """Rules 1–2 on every cell of a notebook; the ``mmcourse.display`` import goes to the first cell that
    imports from ``mmcourse`` (or the first code cell). A value whose role sat inside inline code is glued
    with ``code=True`` instead, so it keeps its code font."""
    needs: set[str] = set()
    for cell in cells:
        cell["source"] = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
    in_code = {m.group(1) for c in cells if c["cell_type"] == "markdown" for m in ROLE_IN_CODE_RE.finditer(c["source"])}
    for cell in cells:
        src = cell["source"]
        if cell["cell_type"] == "code":
            src, n = rewrite_code(src)
            src = _mark_code(src, in_code)
            needs |= n
        elif cell["cell_type"] == "markdown":
            src = rewrite_markdown(src)
        cell["source"] = src
    code = [c for c in cells
            if c["cell_type"] == "code" and "colab-install" not in c.get("metadata", {}).get("tags", [])]
    for c in code:
        if "from IPython.display import" in c["source"]:
            others = "\n".join(o["source"] for o in code if o is not c)
            for name in ("Markdown", "display"):
                c["source"] = _drop_unused_import(c["source"], "IPython.display", name, others)
    if needs and code:
        defined = "\n".join(c["source"] for c in code)
        missing = {n for n in needs if not re.search(rf"^from mmcourse\.display import [^\n]*\b{n}\b", defined, re.M)}
        if missing:
            target = next((c for c in code if re.search(r"^from mmcourse", c["source"], re.M)), code[0])
            target["source"] = _ensure_display_import(target["source"], missing)
    return cells


def _strip_magics(src: str) -> str:
    return "\n".join("pass" if ln.lstrip().startswith(("%", "!")) else ln for ln in src.splitlines())


def _call_name(node: ast.Call) -> str:
    f = node.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""


def _calls(nodes: Iterable[ast.AST], skip_defs: bool) -> set[str]:
    """Names of the functions called in ``nodes`` (not inside function/class bodies when ``skip_defs``)."""
    out, stack = set(), list(nodes)
    while stack:
        node = stack.pop()
        if skip_defs and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            stack.extend(node.decorator_list)
            continue
        if isinstance(node, ast.Call):
            out.add(_call_name(node))
        stack.extend(ast.iter_child_nodes(node))
    return out


def plotting_cells(cells: list[dict]) -> list[int]:
    """Indices of the code cells that draw a figure when run: they call a plotting function (by name, see
    ``PLOT_CALLS``) or a function the notebook defines that does, outside any ``def``."""
    trees: dict[int, ast.Module] = {}
    for i, c in enumerate(cells):
        if c["cell_type"] == "code":
            try:
                src = c["source"] if isinstance(c["source"], str) else "".join(c["source"])
                trees[i] = ast.parse(_strip_magics(src))
            except SyntaxError:
                continue
    defs = {n.name: n for t in trees.values() for n in ast.walk(t) if isinstance(n, ast.FunctionDef)}
    plotting: set[str] = set()
    changed = True
    while changed:  # a function plots if it calls a plotting call or a plotting function
        changed = False
        for name, node in defs.items():
            if name not in plotting and any(PLOT_CALLS.match(c) or c in plotting for c in _calls(node.body, False)):
                plotting.add(name)
                changed = True
    return [i for i, t in trees.items()
            if any(PLOT_CALLS.match(c) or c in plotting for c in _calls(t.body, True))]


def alt_text(cell: dict) -> str:
    """The cell's figure alt text (``metadata.mystnb.image.alt``), or ``""``."""
    alt = cell.get("metadata", {}).get("mystnb", {}).get("image", {}).get("alt", "")
    return alt.strip() if isinstance(alt, str) else ""


def problems(nb: dict, name: str = "notebook") -> list[str]:
    """Every break of the book's rules in ``nb``, one message each (empty when the notebook complies)."""
    out = []
    cells = nb["cells"]
    for i, c in enumerate(cells):
        src = "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
        where = f"{name} cell {i}"
        if c["cell_type"] == "markdown":
            if re.search(r"`\{glue", src):
                out.append(f"{where}: a glue role inside inline code (renders as raw markup): "
                           f"{re.search(r'.{0,30}`[{]glue.{0,30}', src).group(0)!r}")
            for role in sorted(set(re.findall(r"\{glue:[\w]*\}", src))):
                out.append(f"{where}: use the {{glue}} role, not {role} (glue_text formats the value already)")
            fenced = False
            for line in src.splitlines():
                if line.lstrip().startswith(("```", "~~~")):
                    fenced = not fenced
                elif fenced and len(line) > MAX_LINE:
                    out.append(f"{where}: a code block line of {len(line)} > {MAX_LINE} characters: {line[:60]!r}…")
            continue
        if c["cell_type"] != "code":
            continue
        if GLUE_CALL_RE.search(src) or GLUE_IMPORT_RE.search(src):
            out.append(f"{where}: glue numbers with mmcourse.display.glue_text, not glue()")
        if "Markdown(" in src:
            out.append(f"{where}: show tables with mmcourse.display.show_table, not display(Markdown(...))")
        for ln, line in enumerate(src.splitlines(), 1):
            if len(line) > MAX_LINE:
                out.append(f"{where} line {ln}: {len(line)} > {MAX_LINE} characters: {line[:60]!r}…")
    for i in plotting_cells(cells):
        if len(alt_text(cells[i]).split()) < MIN_ALT_WORDS:
            out.append(f"{name} cell {i} draws a figure but has no alt text (≥ {MIN_ALT_WORDS} words) in "
                       'its metadata {"mystnb": {"image": {"alt": "what the figure shows"}}}')
    return out
