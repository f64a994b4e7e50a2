"""Tests for mmcourse/analysis/calibration.py (ECE, reliability bins, temperature) and analysis/plots.py."""

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

from mmcourse.analysis.calibration import (  # noqa: E402
    expected_calibration_error,
    fit_temperature,
    plot_reliability,
    reliability_bins,
)
from mmcourse.analysis.plots import PALETTE, image_grid, line_plot, use_palette  # noqa: E402


def _ece_by_loops(probs, labels, n_bins):
    conf, pred = probs.max(1)
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        inside = [i for i in range(len(conf)) if (lo < conf[i] <= hi) or (b == 0 and conf[i] == 0)]
        if inside:
            acc = sum(float(pred[i] == labels[i]) for i in inside) / len(inside)
            c = sum(float(conf[i]) for i in inside) / len(inside)
            total += len(inside) / len(conf) * abs(acc - c)
    return total


@pytest.mark.parametrize("n_bins", [1, 5, 15])
def test_ece_matches_definition(n_bins):
    g = torch.Generator().manual_seed(n_bins)
    probs = torch.softmax(torch.randn(200, 4, generator=g) * 2, -1)
    labels = torch.randint(0, 4, (200,), generator=g)
    assert expected_calibration_error(probs, labels, n_bins) == pytest.approx(_ece_by_loops(probs, labels, n_bins),
                                                                              abs=1e-6)
    bins = reliability_bins(probs, labels, n_bins)
    assert int(bins.count.sum()) == 200 and bins.edges.shape == (n_bins + 1,)


def test_perfectly_calibrated_and_overconfident():
    g = torch.Generator().manual_seed(0)
    n = 20000
    conf = torch.rand(n, generator=g) * 0.5 + 0.5  # binary: top probability in [0.5, 1]
    correct = torch.rand(n, generator=g) < conf  # right with exactly the stated probability
    probs = torch.stack([conf, 1 - conf], 1)
    labels = torch.where(correct, 0, 1)
    assert expected_calibration_error(probs, labels) < 0.02
    always_sure = torch.tensor([[1.0, 0.0]]).repeat(100, 1)
    half_right = torch.arange(100) % 2
    assert expected_calibration_error(always_sure, half_right) == pytest.approx(0.5)


def test_temperature_scaling_recovers_and_lowers_ece():
    g = torch.Generator().manual_seed(1)
    true_logits = torch.randn(4000, 5, generator=g) * 2
    labels = torch.multinomial(torch.softmax(true_logits, -1), 1, generator=g).squeeze(1)
    overconfident = true_logits * 3  # a model 3x too sure
    t = fit_temperature(overconfident, labels)
    assert t == pytest.approx(3.0, rel=0.1)
    before = expected_calibration_error(torch.softmax(overconfident, -1), labels)
    after = expected_calibration_error(torch.softmax(overconfident / t, -1), labels)
    assert after < before / 2


def test_bad_inputs():
    with pytest.raises(ValueError, match="did you pass logits"):
        expected_calibration_error(torch.randn(5, 3) * 5, torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"probs \[N, C\] and labels \[N\]"):
        reliability_bins(torch.rand(5, 3), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="logits"):
        fit_temperature(torch.randn(5), torch.zeros(5, dtype=torch.long))


def test_plots_draw():
    use_palette()
    assert len(PALETTE) == 8 and all(c.startswith("#") for c in PALETTE)
    probs = torch.softmax(torch.randn(50, 3), -1)
    ax = plot_reliability(reliability_bins(probs, torch.randint(0, 3, (50,))))
    assert ax.get_xlabel().startswith("confidence")
    ax2 = line_plot({"a": [1, 2, 3], "b": [3, 2, 1]}, xlabel="layer", ylabel="std", logy=True)
    assert len(ax2.get_lines()) == 2
    fig = image_grid([torch.rand(8, 8)] * 3 + [torch.rand(3, 8, 8)], titles=list("abcd"), ncols=2)
    assert len(fig.axes) == 4
    import matplotlib.pyplot as plt
    plt.close("all")
