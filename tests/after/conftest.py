"""Tests that run after the notebook suite and the book build (`make test`'s last step)."""

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def records_dir() -> Path:
    folder = os.environ.get("MMCOURSE_RECORDS")
    assert folder, "MMCOURSE_RECORDS is not set: run these tests through `make test`"
    path = Path(folder)
    assert path.is_dir(), f"{path} does not exist: the notebook suite did not run first (`make test`)"
    return path
