"""DDP through ``fit``: 2 CPU processes (gloo, launched by torchrun) equal one process with the same global batch,
rank 0 writes the checkpoint and a distributed run resumes from it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_engine_fit import ToyData, toy_model  # noqa: E402

from mmcourse.engine import evaluate, fit  # noqa: E402
from mmcourse.engine.batches import BatchSource  # noqa: E402
from mmcourse.engine.checkpoint import read_checkpoint  # noqa: E402

TESTS = Path(__file__).resolve().parent

DDP_SCRIPT = """
import json, os, sys
sys.path.insert(0, {tests!r})
import torch
from test_engine_fit import ToyData, toy_model
from mmcourse.engine import Callback, evaluate, fit
from mmcourse.engine.distributed import cleanup, current

class StopAfter(Callback):
    def on_epoch_end(self, state, row):
        state.stop = state.epoch >= {stop}

ckpt, out, resume = sys.argv[1], sys.argv[2], len(sys.argv) > 3
model = toy_model()
hist = fit(model, ToyData(210), ToyData(61, 1), epochs=3, lr=5e-3, batch_size=42, warmup=0.2, clip_grad=1.0,
           seed=5, progress=False, checkpoint=ckpt, resume=ckpt if resume else None,
           callbacks=[] if resume else [StopAfter()])
info = current()
final = evaluate(model, ToyData(61, 1), batch_size=16)
assert info.world == 2, info
if info.rank == 0:
    torch.save(model.state_dict(), out)
    with open(out + ".json", "w") as f:
        json.dump({{"rows": hist.rows, "final": final}}, f)
cleanup()
"""


def _torchrun(script: Path, *args: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
           *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, timeout=400)
    assert proc.returncode == 0, (proc.stdout.decode()[-3000:], proc.stderr.decode()[-5000:])


@pytest.mark.timeout(900)
def test_two_gloo_processes_equal_one_process_and_resume(tmp_path):
    import json

    script = tmp_path / "ddp.py"
    script.write_text(textwrap.dedent(DDP_SCRIPT.format(tests=str(TESTS), stop=1)))
    ckpt, out = tmp_path / "ddp.pt", str(tmp_path / "final.pt")
    _torchrun(script, str(ckpt), out)  # 1 epoch, then stop
    assert read_checkpoint(ckpt)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [], "no temp files left"
    _torchrun(script, str(ckpt), out, "resume")  # epochs 2 and 3, from the checkpoint
    state = read_checkpoint(ckpt)
    assert state["epoch"] == 3 and state["config"]["world_size"] == 2

    single = toy_model()
    hist = fit(single, ToyData(210), ToyData(61, 1), epochs=3, lr=5e-3, batch_size=42, warmup=0.2, clip_grad=1.0,
               seed=5, progress=False)
    ddp = torch.load(out, weights_only=True)
    for name, p in single.state_dict().items():
        torch.testing.assert_close(ddp[name], p, rtol=1e-4, atol=1e-5, msg=lambda m, name=name: f"{name}: {m}")
    record = json.loads(Path(out + ".json").read_text())
    rows = record["rows"]
    assert record["final"] == pytest.approx(evaluate(single, ToyData(61, 1), batch_size=16), rel=1e-4, abs=1e-5)
    for key in ("train_loss", "train_acc/shape", "val_loss", "val_acc"):
        got, want = [r[key] for r in rows], hist[key]
        assert got == pytest.approx(want, rel=1e-4, abs=1e-5), (key, got, want)


@pytest.mark.parametrize("as_batches", [False, True])
def test_rank_slices_of_each_global_batch_cover_it_exactly(as_batches):
    data = ToyData(51)  # last global batch: 3 rows, one per rank
    src = data if not as_batches else type("B", (), {"batches": data.batches, "__len__": data.__len__})()
    one = list(BatchSource(src, torch.device("cpu")).epoch(16, shuffle=True, seed=4))
    ranks = [list(BatchSource(src, torch.device("cpu"), rank=r, world=3).epoch(16, shuffle=True, seed=4))
             for r in range(3)]
    assert all(len(r) == len(one) for r in ranks)
    for i, (batch, n) in enumerate(one):
        parts = [ranks[r][i] for r in range(3)]
        assert all(m == n for _, m in parts), "every rank knows the global batch size"
        for k, v in batch.inputs.items():
            assert torch.equal(torch.cat([p.inputs[k] for p, _ in parts]), v)
