"""Headless Chromium on a built book: a local server that adds a measuring script to each page, and a render.

Used by :mod:`mmcourse.authoring.book_check` (and so by ``tests/after/test_browser.py``). The script
(``METRICS_JS``) measures, in the page Chromium laid out: code blocks at the book's desktop width, the page and
its images at phone width (the same page in a narrow iframe), and the contrast of table cells in the dark theme;
it writes the numbers into the DOM as ``<script id="mmcheck" type="application/json">``.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

DESKTOP = (1440, 900)  # the book's normal desktop width (pydata-sphinx-theme: 3 columns)
PHONE_WIDTH = 390
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic", "--hide-scrollbars",
         f"--window-size={DESKTOP[0]},{DESKTOP[1]}", "--virtual-time-budget=30000", "--dump-dom"]

# Runs in the page after it settled; writes its measurements into the DOM as <script id="mmcheck">.
METRICS_JS = """<script>(function () {
  if (location.search.indexOf('mmphone') >= 0) return;
  function lum(c) {
    var m = c.match(/[\\d.]+/g); if (!m) return null;
    var a = m.length > 3 ? parseFloat(m[3]) : 1;
    var v = m.slice(0, 3).map(function (x) {
      x = x / 255; return x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4);
    });
    return {l: 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2], a: a};
  }
  function bg(el) {
    for (var e = el; e; e = e.parentElement) {
      var c = lum(getComputedStyle(e).backgroundColor); if (c && c.a > 0.5) return c.l;
    }
    return 1;
  }
  function done(out) {
    var s = document.createElement('script'); s.type = 'application/json'; s.id = 'mmcheck';
    s.textContent = JSON.stringify(out); document.body.appendChild(s);
  }
  window.addEventListener('load', function () { setTimeout(function () {
    var out = {width: window.innerWidth, pre: [], phone: null, dark: []};
    document.querySelectorAll('pre').forEach(function (p) {
      if (p.offsetParent === null || p.closest('.cell_output')) return;
      var longest = p.textContent.split('\\n').reduce(function (a, b) {
        return b.length > a.length ? b : a;
      }, '');
      out.pre.push([p.scrollWidth, p.clientWidth, longest.slice(0, 100)]);
    });
    document.documentElement.setAttribute('data-theme', 'dark');
    document.querySelectorAll('article td, article th').forEach(function (c) {
      if (!c.textContent.trim() || c.offsetParent === null) return;
      var f = lum(getComputedStyle(c).color).l, b = bg(c);
      var r = (Math.max(f, b) + 0.05) / (Math.min(f, b) + 0.05);
      out.dark.push([Math.round(r * 100) / 100, c.textContent.trim().slice(0, 40)]);
    });
    document.documentElement.setAttribute('data-theme', 'light');
    var f = document.createElement('iframe');
    f.style.width = '""" + str(PHONE_WIDTH) + """px'; f.style.height = '800px'; f.style.border = '0';
    f.src = location.pathname + '?mmphone';
    f.onload = function () { setTimeout(function () {
      var w = f.contentWindow, d = f.contentDocument;
      out.phone = {width: w.innerWidth, scroll: d.documentElement.scrollWidth, img: [], wide: []};
      d.querySelectorAll('article *').forEach(function (e) {
        var r = e.getBoundingClientRect();
        if (r.right > w.innerWidth + 1 && r.width > 0 && !e.closest('pre, .highlight, table, mjx-container')
            && e.children.length === 0 && out.phone.wide.length < 5) {
          out.phone.wide.push(e.tagName.toLowerCase() + ': ' + e.textContent.trim().slice(0, 50));
        }
      });
      d.querySelectorAll('article img').forEach(function (i) {
        var r = i.getBoundingClientRect(); out.phone.img.push([i.getAttribute('src').slice(-40), Math.round(r.right)]);
      });
      f.remove(); done(out);
    }, 2000); };
    document.body.appendChild(f);
  }, 2000); });
})();</script>"""


class BookServer:
    """Serve a built book on a free local port; HTML pages get :data:`METRICS_JS` before ``</body>``."""

    def __init__(self, html_dir: Path) -> None:
        root = Path(html_dir)

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                path = root / self.path.split("?")[0].lstrip("/")
                if path.suffix == ".html" and path.is_file():
                    body = path.read_text(encoding="utf-8").replace("</body>", METRICS_JS + "</body>").encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                super().do_GET()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> BookServer:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def render(chromium: str, url: str, timeout: int = 180) -> str:
    """The DOM of ``url`` after headless Chromium ran its scripts."""
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile}", url], capture_output=True, text=True,
                              timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"chromium failed on {url}: {proc.stderr[-2000:]}")
    return proc.stdout
