"""The benchmark: FLOP counting, MFU, tables, and on a CPU the engine is not slower than the plain loop."""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_engine_fit import ToyData, toy_model  # noqa: E402

from mmcourse.bench_cli import BEGIN, END, add_arguments, mfu_table, write_section  # noqa: E402
from mmcourse.engine.bench import Timer, results_table, run_ladder, run_setting, settings  # noqa: E402
from mmcourse.engine.flops import mfu, peak_flops, recurrent_flops, train_step_flops  # noqa: E402


def test_linear_training_step_flops():
    b, i, o = 8, 5, 3
    lin = nn.Linear(i, o, bias=False)
    x = torch.randn(b, i)
    # forward 2·b·i·o; backward 2·b·i·o for the weight's gradient, and 2·b·i·o more if the input needs one
    assert train_step_flops(lin, x, lambda out: out.sum()) == 4 * b * i * o
    assert train_step_flops(lin, x.requires_grad_(), lambda out: out.sum()) == 6 * b * i * o


def test_recurrent_flops_are_counted_analytically():
    gru = nn.GRU(4, 6, batch_first=True)
    x = torch.randn(2, 7, 4)
    got = recurrent_flops(gru, x, lambda: gru(x))
    assert got == 2 * 7 * 3 * (2 * 4 * 6 + 2 * 6 * 6)
    assert train_step_flops(gru, x, lambda out: out[0].sum()) >= 3 * got


def test_mfu_and_peaks():
    assert peak_flops("cpu") == (None, "cpu")
    assert mfu(1e12, 100.0, 989e12) == pytest.approx(100 / 989)
    assert mfu(1e12, 100.0, None) is None


def test_timer_measures_intervals():
    t = Timer(torch.device("cpu"))
    for _ in range(2):
        t.start()
        sum(range(10000))
        t.stop()
    secs = t.seconds()
    assert len(secs) == 2 and all(s > 0 for s in secs)


def test_settings_add_one_technique_at_a_time():
    s = settings(128, 512, "aot_eager")
    assert s[0].plain and not any(x.plain for x in s[1:])
    assert [x.amp for x in s[1:]] == ["off", "bf16", "bf16", "bf16", "bf16"]
    assert s[-1].batch_size == 512 and s[-1].compile == "aot_eager" and s[-1].channels_last


def test_cpu_table_marks_gpu_rows_not_yet_measured():
    r = run_setting(settings(64, 256)[1], toy_model, ToyData(128), ToyData(64, 1), epochs=2, repeats=1, lr=1e-2,
                    device=torch.device("cpu"))
    table = results_table([r], torch.device("cpu"), gpu_rows_missing=True)
    assert table.count("not yet measured") == 4 and "n/a (CPU)" in table
    assert "not yet measured" in mfu_table(None) and "| 512.0 |" in mfu_table(None, 1e9)


def test_engine_is_not_slower_than_the_plain_loop_on_cpu():
    """Same model, data and batch; the engine skips the DataLoader and the per-step host read."""
    from mmcourse.data.world import world_splits
    from mmcourse.recipes.step_bench import world_model

    splits = world_splits(768, 128, 8, seed=0, modalities=("image",))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        results = run_ladder(lambda: world_model(splits, width=4, dim=16), splits.train, splits.val,
                             device=torch.device("cpu"), epochs=2, repeats=3, batch_size=128, clock="process")
    finally:
        torch.set_num_threads(threads)
    plain, engine = results[0], results[1]
    assert plain.setting.plain and not engine.setting.plain and len(results) == 2
    p, e = statistics.median(plain.samples_per_s), statistics.median(engine.samples_per_s)
    # CPU seconds of this single-threaded process (steady under load); margin for the remaining noise.
    # A CPU gains nothing measurable from the engine (issue 20: 0.99× in wall time on an idle 2-core machine);
    # this guards against it becoming slower
    print(f"engine {e:.0f} vs plain loop {p:.0f} samples per CPU second: {e / p:.2f}x")
    assert e >= 0.9 * p, f"engine {e:.0f} samples/s vs plain loop {p:.0f}"
    assert engine.flops_per_sample == pytest.approx(plain.flops_per_sample)


def test_write_section_replaces_the_marked_block(tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text("# Results\n\nintro\n")
    write_section(path, "first")
    write_section(path, "second")
    text = path.read_text()
    assert text.count(BEGIN) == 1 and text.count(END) == 1 and "second" in text and "first" not in text
    assert text.startswith("# Results\n\nintro")


def test_cli_arguments_parse():
    p = argparse.ArgumentParser()
    add_arguments(p)
    args = p.parse_args(["--epochs", "3", "--mfu", "off", "--modalities", "image"])
    assert args.epochs == 3 and args.mfu == "off" and args.big_batch == 512
