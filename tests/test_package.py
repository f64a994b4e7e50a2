"""Importing mmcourse is quiet and cheap: no prints, no CUDA initialisation, no heavy optional imports."""

import subprocess
import sys

CODE = """
import sys, torch
import mmcourse, mmcourse.layers, mmcourse.encoders, mmcourse.engine, mmcourse.data, mmcourse.fusion
assert not torch.cuda.is_initialized(), "CUDA was initialised at import time"
heavy = [m for m in ("transformers", "torchvision", "sentence_transformers") if m in sys.modules]
assert not heavy, f"imported at import time: {heavy}"
"""


def test_import_is_quiet_and_lazy():
    proc = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "", f"import printed: {proc.stdout!r}"
