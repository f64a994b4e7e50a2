"""Tests for ``mmcourse data`` (mmcourse/data/cli.py), offline."""

from __future__ import annotations

import argparse

import pytest

from mmcourse.data import cli


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    cli.add_parser(sub)
    args = parser.parse_args(["data", *argv])
    return args._run(args)


@pytest.fixture(autouse=True)
def _offline(tmp_path, monkeypatch):
    monkeypatch.setenv("MMCOURSE_DATA", str(tmp_path))
    monkeypatch.setenv("MMCOURSE_OFFLINE", "1")


def test_list_and_info(capsys):
    assert _run(["list"]) == 0
    out = capsys.readouterr().out
    assert "cifar10" in out and "not cached" in out and "digits" in out and "bundled" in out
    assert _run(["info", "fsdd"]) == 0
    assert "CC BY-SA 4.0" in capsys.readouterr().out


def test_verify_and_download_offline_fail_clearly(capsys, tmp_path):
    assert _run(["verify", "mnist"]) == 1
    assert "missing" in capsys.readouterr().out
    assert _run(["download", "cifar10"]) == 1
    err = capsys.readouterr().err
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in err and str(tmp_path) in err


def test_unknown_name(capsys):
    assert _run(["info", "imagenet"]) == 2
    assert "unknown dataset 'imagenet'" in capsys.readouterr().err
