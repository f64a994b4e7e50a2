"""``mmcourse doctor`` reports unwritable folders and bad settings, and exits 1 when it finds a problem.

Notes (the full profile is slow on a CPU, no browser for ``make test``) are printed but keep the status 0.
"""

import pytest

from mmcourse import doctor
from mmcourse.cli import main


@pytest.fixture
def unwritable(tmp_path):
    """A path that cannot be a folder: it sits under a regular file (works for root too)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    return blocker / "sub"


def test_unwritable_home_is_a_problem_and_exits_1(unwritable, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(unwritable))
    monkeypatch.delenv("MMCOURSE_CACHE", raising=False)
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert f"the HOME {unwritable} is not writable" in out and "no problems found" not in out


def test_unwritable_cache_is_a_problem_and_names_the_variable(unwritable, monkeypatch, capsys):
    monkeypatch.setenv("MMCOURSE_CACHE", str(unwritable))
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert f"the cache folder (MMCOURSE_CACHE) {unwritable} is not writable" in out
    assert "fix: export MMCOURSE_CACHE=" in out


def test_unwritable_data_folder_is_a_problem(unwritable, monkeypatch, capsys):
    monkeypatch.setenv("MMCOURSE_DATA", str(unwritable))
    assert main(["doctor"]) == 1
    assert f"the data folder (MMCOURSE_DATA) {unwritable} is not writable" in capsys.readouterr().out


def test_bad_profile_exits_1(monkeypatch, capsys):
    monkeypatch.setenv("MMCOURSE_PROFILE", "turbo")
    assert main(["doctor"]) == 1
    assert "turbo" in capsys.readouterr().out


def test_bad_device_exits_1(monkeypatch, capsys):
    monkeypatch.setenv("MMCOURSE_DEVICE", "tpu")
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "tpu" in out and "fix: unset MMCOURSE_DEVICE" in out


def test_a_note_alone_keeps_status_0(monkeypatch, capsys):
    monkeypatch.setattr(doctor.shutil, "which", lambda name: None)
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "1 note(s):" in out and "no chromium" in out and "no problems found" in out
