"""The built book in a real headless browser (Debian's chromium): every toc page loads, math renders,
widgets render, no cell shows an error, and nothing is fetched from the internet (offline assets only)."""

import functools
import http.server
import re
import shutil
import subprocess
import tempfile
import threading

import pytest
from records import ROOT

HTML = ROOT / "_build" / "html"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
         "--virtual-time-budget=20000", "--dump-dom"]


def _toc_pages() -> list[str]:
    toc = (ROOT / "_toc.yml").read_text()
    root = re.search(r"^root:\s*(\S+)", toc, re.M).group(1)
    return [root, *re.findall(r"file:\s*(\S+)", toc)]


@pytest.fixture(scope="module")
def server():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "chromium is not installed: `make test` installs it (`bash .ci/install-chromium.sh`)"
    assert (HTML / "index.html").exists(), f"no built book at {HTML}: run `make book` first"
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield chromium, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _render(chromium: str, url: str) -> str:
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile}", url], capture_output=True,
                              text=True, timeout=120)
    assert proc.returncode == 0, f"chromium failed on {url}: {proc.stderr[-2000:]}"
    return proc.stdout


@pytest.mark.parametrize("page", _toc_pages())
def test_page_renders_offline(server, page):
    chromium, base = server
    static = HTML / f"{page}.html"
    assert static.exists(), f"{page} is in _toc.yml but {static} was not built"
    raw = static.read_text(encoding="utf-8")
    external = re.findall(r"<(?:script|link)[^>]+(?:src|href)=\"(https?://[^\"]+)\"", raw)
    assert not external, f"{page} loads assets from the internet: {external}"
    dom = _render(chromium, f"{base}/{page}.html")
    assert "<main" in dom or "bd-main" in dom, f"{page}: the page did not load"
    assert "Traceback (most recent call last)" not in dom and 'class="output traceback' not in dom, \
        f"{page} shows an error output"
    if 'class="math' in raw:
        assert "<mjx-container" in dom, f"{page}: math did not render (MathJax missing?)"
        assert "<mjx-merror" not in dom, f"{page}: MathJax reports a TeX error"
    notebook = ROOT / f"{page}.ipynb"
    if re.match(r"book/\d\d_", page):  # the chapter header is a list, one field a line, not one run-on paragraph
        fields = re.findall(r"<li>\s*(?:<p>)?<strong>(\w+):</strong>", raw)
        assert fields[:5] == ["Goals", "Prerequisites", "Time", "Hardware", "Challenges"], f"{page}: header {fields}"
    if notebook.exists() and re.search(r"plt\.|\.plot\(|subplots\(", notebook.read_text(encoding="utf-8")):
        figures = re.findall(r"<img[^>]+src=\"[^\"]*_images/[^\"]+\.(?:png|svg)\"", raw)
        assert len(figures) > 1, f"{page} draws plots but the page shows no figure (matplotlib backend?)"
    if "application/vnd.jupyter.widget-view+json" in raw:
        assert "widget-" in re.sub(r"<script.*?</script>", "", dom, flags=re.S), f"{page}: widgets did not render"
