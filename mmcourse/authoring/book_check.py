"""The built HTML book as a reader sees it: defects found in a page after headless Chromium rendered it.

Used by the after-build browser test (``tests/after/test_browser.py``) and on the command line:
``python -m mmcourse.authoring.book_check [HTML_DIR [ROOT [CACHE_DIR]]]`` prints the defect counts of every toc
page (defaults: ``_build/html`` of the current checkout and its ``_build/.jupyter_cache``).

Each check is a function over one page: its static HTML as built, its DOM after Chromium ran the page's
scripts (MathJax, widgets), and layout metrics that the script :mod:`mmcourse.authoring.book_browser` adds to
each page measured in that DOM (code blocks at desktop width, the page and its images at phone width, table
contrast in the dark theme). The test plants one instance of each defect in a tiny page to show each check can fail.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bs4 import BeautifulSoup

from mmcourse.authoring.book_browser import BookServer, find_chromium, render

__all__ = ["KINDS", "BookServer", "check_book", "check_page", "executed_notebook", "expected_figures",
           "find_chromium", "render", "toc_pages"]

MIN_CONTRAST = 4.5  # WCAG AA for body text
QUOTES = "'\"‘’“”"
KINDS = ("raw_glue", "quoted_glue", "pipe_table", "wide_code", "missing_figures", "no_alt", "mathjax_error",
         "widget_no_fallback", "phone_overflow", "dark_table_contrast")

def _soup(html: str) -> BeautifulSoup:
    return BeautifulSoup(html, "html.parser")


def _article(soup: BeautifulSoup) -> Any:
    return soup.find("article") or soup.find("main") or soup.body or soup


def _text(el: Any) -> str:
    return " ".join(el.get_text(" ").split())


def raw_glue(dom: BeautifulSoup) -> list[str]:
    """``{glue`` markup a reader sees (a role the build did not resolve, e.g. one inside inline code)."""
    body = _article(dom)
    for s in body.find_all(["script", "style"]):
        s.decompose()
    text = _text(body)
    return [text[max(0, m.start() - 30):m.end() + 30] for m in re.finditer(r"\{glue", text)]


def quoted_glue(dom: BeautifulSoup) -> list[str]:
    """Glued values (inline ``span`` outputs in prose) printed inside quotes, e.g. ``‘80.2%’``."""
    out = []
    for span in _article(dom).select("span.text_plain, span.pasted-text, span.pasted-inline"):
        t = span.get_text().strip()
        if len(t) >= 2 and t[0] in QUOTES and t[-1] in QUOTES:
            out.append(t)
    return out


def pipe_tables(dom: BeautifulSoup) -> list[str]:
    """Paragraphs made of Markdown pipe rows (a table that was not rendered as a table)."""
    out = []
    for p in _article(dom).find_all("p"):
        t = p.get_text().strip()
        if t.startswith("|") and (t.count("|") >= 4 or re.search(r"\|\s*[-—–:]{1,}\s*\|", t)):
            out.append(t[:80])
    return out


def images_without_alt(dom: BeautifulSoup) -> list[str]:
    """Images in the article with no alt text, or Sphinx's default one (the image's own path).

    Images a widget draws live (inside ``.jupyter-widgets``) are left out: the static figure next to the widget
    carries the alt text, see :func:`widgets_without_fallback`."""
    out = []
    for img in _article(dom).find_all("img"):
        if img.find_parent(class_="jupyter-widgets"):
            continue
        src, alt = img.get("src", ""), (img.get("alt") or "").strip()
        if not alt or alt == src or re.search(r"\.(png|svg|jpe?g|gif)$", alt) or alt.startswith("data:"):
            out.append(src[-60:])
    return out


def mathjax_errors(dom: BeautifulSoup, static: BeautifulSoup | None = None) -> list[str]:
    """TeX MathJax could not typeset, or math on the page that MathJax never rendered."""
    out = [_text(e)[:80] or "mjx-merror" for e in dom.find_all("mjx-merror")]
    out += [e.get("data-mjx-error", "")[:80] for e in dom.find_all(attrs={"data-mjx-error": True})]
    if static is not None and _article(static).select(".math") and not dom.find("mjx-container"):
        out.append("the page has math but MathJax rendered none (MathJax missing?)")
    return list(dict.fromkeys(out))


def widgets_without_fallback(static: BeautifulSoup) -> list[str]:
    """Widgets with no static figure next to them: neither their own cell nor the cell just before shows an
    image outside a widget (what the HTML shows without a kernel, and all a reader without JavaScript sees)."""
    def has_static_image(cell: Any) -> bool:
        return any(not i.find_parent(class_="jupyter-widgets") for i in cell.select("div.cell_output img"))

    out = []
    for cell in _article(static).select("div.cell"):
        widgets = cell.select('div.cell_output script[type="application/vnd.jupyter.widget-view+json"]')
        if not widgets:
            continue
        before = cell.find_previous_sibling()
        if has_static_image(cell) or (before is not None and "cell" in before.get("class", [])
                                      and has_static_image(before)):
            continue
        out.append(json.loads(widgets[0].string or "{}").get("model_id", "widget"))
    return out


def static_figures(static: BeautifulSoup) -> int:
    """Figures the page shows in cell outputs (images outside widgets)."""
    return sum(1 for i in _article(static).select("div.cell_output img") if not i.find_parent(class_="jupyter-widgets"))


def expected_figures(executed_nb: dict) -> int:
    """Image outputs an executed notebook makes (what its page should show), not counting hidden outputs."""
    n = 0
    for cell in executed_nb.get("cells", []):
        tags = set(cell.get("metadata", {}).get("tags", []))
        if cell.get("cell_type") != "code" or tags & {"remove-output", "remove-cell"}:
            continue
        for o in cell.get("outputs", []):
            if o.get("output_type") in ("display_data", "execute_result") and any(
                    k.startswith("image/") for k in o.get("data", {})):
                n += 1
    return n


def missing_figures(static: BeautifulSoup, expected: int | None) -> list[str]:
    shown = static_figures(static)
    return [f"the page shows {shown} figure(s), its notebook makes {expected}"] if expected and shown < expected else []


def wide_code(metrics: dict) -> list[str]:
    """Code blocks wider than their column at desktop width (the reader scrolls sideways)."""
    return [f"{sw}px in {cw}px: {line!r}" for sw, cw, line in metrics.get("pre", []) if sw > cw + 1]


def phone_overflow(metrics: dict) -> list[str]:
    """At phone width: the page scrolls sideways, or a figure sticks out of the screen."""
    phone = metrics.get("phone")
    if not phone:
        return ["the phone-width view did not load"]
    out = []
    if phone["scroll"] > phone["width"] + 1:
        out.append(f"page is {phone['scroll']}px wide on a {phone['width']}px screen")
        out += [f"sticks out: {w}" for w in phone.get("wide", [])]
    return out + [f"image {src} ends at {right}px" for src, right in phone["img"] if right > phone["width"] + 1]


def dark_table_contrast(metrics: dict) -> list[str]:
    """Table cells whose text is hard to read in the dark theme (contrast below WCAG AA)."""
    return [f"{text!r} contrast {ratio}" for ratio, text in metrics.get("dark", []) if ratio < MIN_CONTRAST]


def check_page(static_html: str, dom_html: str, expected: int | None = None) -> dict[str, list[str]]:
    """All the defects of one page: kind -> findings (an empty list when none)."""
    static, dom = _soup(static_html), _soup(dom_html)
    m = dom.find("script", id="mmcheck")
    metrics = json.loads(m.string) if m and m.string else {}
    checks: dict[str, Callable[[], list[str]]] = {
        "raw_glue": lambda: raw_glue(_soup(dom_html)),
        "quoted_glue": lambda: quoted_glue(dom),
        "pipe_table": lambda: pipe_tables(dom),
        "wide_code": lambda: wide_code(metrics) if metrics else ["no layout metrics (the page script did not run)"],
        "missing_figures": lambda: missing_figures(static, expected),
        "no_alt": lambda: images_without_alt(dom),
        "mathjax_error": lambda: mathjax_errors(dom, static),
        "widget_no_fallback": lambda: widgets_without_fallback(static),
        "phone_overflow": lambda: phone_overflow(metrics),
        "dark_table_contrast": lambda: dark_table_contrast(metrics),
    }
    return {k: checks[k]() for k in KINDS}


def toc_pages(root: Path) -> list[str]:
    toc = (root / "_toc.yml").read_text(encoding="utf-8")
    first = re.search(r"^root:\s*(\S+)", toc, re.M)
    return [*([first.group(1)] if first else []), *re.findall(r"file:\s*(\S+)", toc)]


def executed_notebook(root: Path, page: str, cache_dir: Path | None = None) -> dict | None:
    """The executed copy of ``root/page.ipynb`` that the book was rendered from (jupyter-cache), if cached."""
    import nbformat
    from jupyter_cache import get_cache

    path = root / f"{page}.ipynb"
    cache_dir = cache_dir or root / "_build" / ".jupyter_cache"
    if not path.exists() or not cache_dir.exists():
        return None
    cache = get_cache(str(cache_dir))
    try:
        record = cache.match_cache_notebook(nbformat.read(path, as_version=4))
    except KeyError:
        return None
    return cache.get_cache_bundle(record.pk).nb


def check_book(html_dir: Path, root: Path, chromium: str, cache_dir: Path | None = None,
               pages: list[str] | None = None) -> dict[str, dict[str, list[str]]]:
    """Every toc page (or ``pages``) of the book built in ``html_dir`` from ``root``: page -> kind -> findings."""
    report = {}
    with BookServer(html_dir) as server:
        for page in pages or toc_pages(root):
            static = (html_dir / f"{page}.html").read_text(encoding="utf-8")
            nb = executed_notebook(root, page, cache_dir)
            report[page] = check_page(static, render(chromium, f"{server.base}/{page}.html"),
                                      expected_figures(nb) if nb else None)
    return report


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    root = Path(argv[1]).resolve() if len(argv) > 1 else Path.cwd()
    html_dir = Path(argv[0]).resolve() if argv else root / "_build" / "html"
    cache_dir = Path(argv[2]).resolve() if len(argv) > 2 else None
    chromium = find_chromium()
    if chromium is None:
        print("chromium is not installed (bash .ci/install-chromium.sh)", file=sys.stderr)
        return 2
    report = check_book(html_dir, root, chromium, cache_dir)
    totals = {k: sum(len(r[k]) for r in report.values()) for k in KINDS}
    for page, r in report.items():
        found = {k: len(v) for k, v in r.items() if v}
        print(f"{page}: {found or 'no defects'}")
    print("total: " + ", ".join(f"{k} {n}" for k, n in totals.items()))
    print(json.dumps(report, ensure_ascii=False, indent=1), file=sys.stderr)
    return 1 if any(totals.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
