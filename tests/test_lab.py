"""`make lab`: JupyterLab starts headless (also as root) and serves a chapter through its REST API."""

import json
import os
import secrets
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from mmcourse.authoring.lab import is_root, lab_command

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = "book/01_fully_connected.ipynb"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_lab_command_allows_root_only_for_root(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert "--allow-root" in lab_command(ROOT)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert "--allow-root" not in lab_command(ROOT)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert "--no-browser" in lab_command(ROOT, ["--port=1"])[-2:]


def test_lab_serves_a_chapter_through_the_rest_api(tmp_path):
    port, token = _free_port(), secrets.token_hex(16)
    cmd = lab_command(ROOT, [f"--port={port}", "--port-retries=0", "--ip=127.0.0.1",
                             f"--IdentityProvider.token={token}", "--ServerApp.open_browser=False"])
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "config")}
    log = (tmp_path / "lab.log").open("w")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/api/contents/{CHAPTER}?token={token}"
    try:
        body, deadline = None, time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(url, timeout=10) as r:
                    body = json.loads(r.read())
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.5)
        out = (tmp_path / "lab.log").read_text()
        assert proc.poll() is None, f"JupyterLab exited ({proc.returncode}; root: {is_root()}):\n{out[-3000:]}"
        assert body is not None, f"JupyterLab did not answer on port {port} in 120 s:\n{out[-3000:]}"
        assert body["type"] == "notebook" and body["path"] == CHAPTER
        assert body["content"]["cells"][0]["source"].startswith("# 01 ·")
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/shutdown", method="POST",
                                     headers={"Authorization": f"token {token}"})
        urllib.request.urlopen(req, timeout=10).close()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)
        log.close()
