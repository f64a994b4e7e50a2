"""The built book in a real headless browser (Debian's chromium), as a reader sees it: every toc page loads
offline (no asset from the internet), math and widgets render, no cell shows an error, and none of the defects
of mmcourse.authoring.book_check shows: raw {glue markup, glued values in quotes, pipe-table paragraphs, code
wider than its column, fewer figures than the notebook makes, images without alt text, MathJax errors,
widgets without a static figure, sideways scrolling at phone width, unreadable tables in the dark theme.
The last test plants one of each defect in a copy of a built chapter and shows that every check fails on it."""

import json
import os
import re

import pytest
from records import ROOT

from mmcourse.authoring.book_check import (
    KINDS,
    BookServer,
    check_page,
    executed_notebook,
    expected_figures,
    find_chromium,
    render,
    toc_pages,
)

HTML = ROOT / "_build" / "html"
PLANT_IN = "book/01_fully_connected"


@pytest.fixture(scope="module")
def server():
    chromium = find_chromium()
    assert chromium, "chromium is not installed: `make test` installs it (`bash .ci/install-chromium.sh`)"
    assert (HTML / "index.html").exists(), f"no built book at {HTML}: run `make book` first"
    with BookServer(HTML) as srv:
        yield chromium, srv


@pytest.mark.parametrize("page", toc_pages(ROOT))
def test_page_as_a_reader_sees_it(server, page):
    chromium, srv = server
    static = HTML / f"{page}.html"
    assert static.exists(), f"{page} is in _toc.yml but {static} was not built"
    raw = static.read_text(encoding="utf-8")
    external = re.findall(r"<(?:script|link)[^>]+(?:src|href)=\"(https?://[^\"]+)\"", raw)
    assert not external, f"{page} loads assets from the internet: {external}"
    dom = render(chromium, f"{srv.base}/{page}.html")
    assert "<main" in dom or "bd-main" in dom, f"{page}: the page did not load"
    assert "Traceback (most recent call last)" not in dom and 'class="output traceback' not in dom, \
        f"{page} shows an error output"
    if re.match(r"book/\d\d_", page):  # the chapter header is a list, one field a line, not one run-on paragraph
        fields = re.findall(r"<li>\s*(?:<p>)?<strong>(\w+):</strong>", raw)
        assert fields[:5] == ["Goals", "Prerequisites", "Time", "Hardware", "Challenges"], f"{page}: header {fields}"
    if "application/vnd.jupyter.widget-view+json" in raw:
        assert "widget-" in re.sub(r"<script.*?</script>", "", dom, flags=re.S), f"{page}: widgets did not render"
    nb = executed_notebook(ROOT, page)
    if (ROOT / f"{page}.ipynb").exists():
        assert nb is not None, f"{page}: no executed copy in _build/.jupyter_cache (built from other sources?)"
    defects = {k: v for k, v in check_page(raw, dom, expected_figures(nb) if nb else None).items() if v}
    assert not defects, f"{page} as a reader sees it:\n{json.dumps(defects, indent=1, ensure_ascii=False)}"


def _plant(html: str) -> str:
    """One instance of every defect kind, each marked PLANTED where the finding can show it."""
    imgs = re.findall(r'<img [^>]*src="(\.\./_images/[0-9a-f]{16,}\.png)"', html)
    assert len(imgs) >= 2, "the page to plant in has too few figures"
    # missing_figures: drop the last figure; no_alt: blank the first figure's alt text
    last = html.rfind(f'src="{imgs[-1]}"')
    start, end = html.rfind("<img", 0, last), html.find(">", last) + 1
    html = html[:start] + html[end:]
    html = re.sub(r'<img alt="[^"]*"([^>]*src="' + re.escape(imgs[0]) + '")', r'<img alt=""\1', html, count=1)
    planted = f"""
<p>PLANTED raw role {{glue}}`planted_key` and a value <span class="output text_plain">‘PLANTED%’</span>.</p>
<p>| PLANTED | pipes |
|—|—|
| a | b |</p>
<div class="cell docutils container"><div class="cell_input docutils container"><div class="highlight">
<pre>PLANTED = "{'x' * 150}"</pre></div></div></div>
<p><span class="math notranslate nohighlight">\\(x^1^2 \\mathrm{{PLANTED}}\\)</span></p>
<p>Prose between the figure and the widget.</p>
<div class="cell docutils container"><div class="cell_output docutils container">
<script type="application/vnd.jupyter.widget-view+json">
{{"model_id": "PLANTED", "version_major": 2, "version_minor": 0}}</script></div></div>
<p><img src="{imgs[0]}" alt="PLANTED wide figure" style="width: 900px; max-width: none"></p>
<div class="mmcourse-table"><table><tbody><tr><td style="color: #222">PLANTED dark</td></tr></tbody></table></div>
"""
    return html.replace("</article>", planted + "</article>", 1)


def test_every_check_fails_on_a_planted_defect(server, tmp_path):
    chromium, _ = server
    copy = tmp_path / "html"
    copy.mkdir()
    for entry in os.listdir(HTML):  # the built book by symlinks; the chapter folder holds the planted page
        if entry != "book":
            (copy / entry).symlink_to(HTML / entry)
    (copy / "book").mkdir()
    static = _plant((HTML / f"{PLANT_IN}.html").read_text(encoding="utf-8"))
    (copy / f"{PLANT_IN}.html").write_text(static, encoding="utf-8")
    expected = expected_figures(executed_notebook(ROOT, PLANT_IN))
    with BookServer(copy) as srv:
        dom = render(chromium, f"{srv.base}/{PLANT_IN}.html")
    found = check_page(static, dom, expected)
    missed = [k for k in KINDS if not found[k]]
    assert not missed, f"checks that did not catch their planted defect: {missed}\n{json.dumps(found, indent=1)}"
    text = json.dumps(found, ensure_ascii=False)
    for marker in ("planted_key", "PLANTED%", "| PLANTED", "PLANTED =", "PLANTED dark"):
        assert marker in text, f"{marker!r} not among the findings:\n{text}"
