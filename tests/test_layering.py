"""The package's layering is a checked rule (`make lint` runs lint-imports with the contracts in pyproject.toml):
the real package keeps every contract, and a planted import that breaks one makes the check fail, naming it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT.exists(), reason="import-linter is not installed (pip install .[dev])")


def _lint(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT), "--config", str(root / "pyproject.toml"), "--no-cache"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)


def _copy(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "mmcourse", tmp_path / "mmcourse", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_package_keeps_its_layers():
    proc = _lint(ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


@pytest.mark.parametrize("module, planted, contract", [
    ("models/multimodal.py", "from mmcourse.engine import fit", "mmcourse layers"),
    ("data/dataset.py", "from mmcourse.models import MultimodalModel", "data never imports models"),
    ("engine/loop.py", "from mmcourse.fusion import ConcatFusion", "the engine trains any model"),
    ("analysis/plots.py", "import mmcourse.cli", "mmcourse layers"),
])
def test_a_planted_import_breaks_the_check(tmp_path, module, planted, contract):
    root = _copy(tmp_path)
    path = root / "mmcourse" / module
    path.write_text(path.read_text() + f"\n{planted}  # planted by the test\n")
    proc = _lint(root)
    assert proc.returncode != 0, f"lint-imports accepted {planted!r} in {module}:\n{proc.stdout[-2000:]}"
    assert "BROKEN" in proc.stdout and contract in proc.stdout.replace("\n", " "), proc.stdout[-3000:]
    importer = "mmcourse." + module.removesuffix(".py").replace("/", ".")
    assert importer in proc.stdout, proc.stdout[-3000:]
