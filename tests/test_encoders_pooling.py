"""Tests for the pooling heads of the CNN encoders (mmcourse/encoders/pooling.py) and ``Augmented``
(mmcourse/encoders/augmented.py): what global pooling forgets and what the grid and the bands keep."""

import pytest
import torch
from torch import nn

from mmcourse.data.augment import SpecAugment
from mmcourse.encoders import AudioCNN, SmallCNN
from mmcourse.encoders.augmented import Augmented
from mmcourse.encoders.pooling import BandPool, GridPool


def test_global_pooling_forgets_where_the_grid_remembers():
    torch.manual_seed(0)
    f = torch.randn(3, 8, 4, 4)
    moved = f.roll(2, dims=2)  # the same features, in other places (top half <-> bottom half)
    glob, grid = GridPool(8, 5, grid=1), GridPool(8, 5, grid=2)
    torch.testing.assert_close(glob(moved), glob(f))
    assert (grid(moved) - grid(f)).abs().max() > 1e-2
    assert grid.tokens(f).shape == glob.tokens(f).shape == (3, 16, 5)  # tokens: every position, either way
    assert GridPool(8, 5, grid=(1, 3))(f).shape == (3, 5)
    with pytest.raises(ValueError, match="grid must be"):
        GridPool(8, 5, grid=0)


def test_bands_keep_which_frequency_and_segments_keep_when():
    torch.manual_seed(0)
    f = torch.randn(2, 6, 8, 10)  # [B, C, F, T]
    low_high = f.flip(2)  # the spectrum upside down
    backwards = f.flip(3)  # time reversed
    glob, bands = BandPool(6, 4, bands=1, segments=1), BandPool(6, 4, bands=4, segments=1)
    torch.testing.assert_close(glob(low_high), glob(f))
    assert (bands(low_high) - bands(f)).abs().max() > 1e-2
    torch.testing.assert_close(bands(backwards), bands(f))  # one segment: the order of frames is averaged away
    timed = BandPool(6, 4, bands=4, segments=3)
    assert (timed(backwards) - timed(f)).abs().max() > 1e-2
    assert timed.tokens(f).shape == (2, 10, 4) and timed(f).shape == (2, 4)
    with pytest.raises(ValueError, match="bands and segments"):
        BandPool(6, 4, bands=0)


@pytest.mark.parametrize("build,x", [
    (lambda: SmallCNN(8, width=4), torch.randn(4, 3, 16, 16)),
    (lambda: SmallCNN(8, width=4, grid=(2, 3)), torch.randn(4, 3, 16, 24)),
    (lambda: AudioCNN(8, width=4), torch.randn(4, 1, 32, 48)),
    (lambda: AudioCNN(8, width=4, bands=8, segments=6), torch.randn(4, 1, 32, 48)),
])
def test_every_parameter_gets_a_gradient(build, x):
    m = build()
    (m(x).pow(2).sum() + m.tokens(x).pow(2).sum()).backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing


def test_grid_learns_a_position_task_global_pooling_cannot():
    """Label = is the blob in the top or the bottom half of the map: every map has the same average."""
    torch.manual_seed(0)
    f = torch.zeros(64, 2, 8, 8)
    y = torch.arange(64) % 2
    rows = torch.randint(0, 4, (64,)) + 4 * y
    f[torch.arange(64), 0, rows, torch.randint(0, 8, (64,))] = 16.0
    accs = {}
    for grid in (1, 2):
        torch.manual_seed(0)
        model = nn.Sequential(GridPool(2, 8, grid=grid), nn.ReLU(), nn.Linear(8, 2))
        opt = torch.optim.Adam(model.parameters(), lr=3e-2)
        for _ in range(100):
            loss = nn.functional.cross_entropy(model(f), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        accs[grid] = (model(f).argmax(1) == y).float().mean().item()
    assert accs[2] == 1.0 and accs[1] == 0.5, accs


def test_augmented_only_while_training():
    torch.manual_seed(0)
    enc = AudioCNN(8, width=4).eval()
    aug = Augmented(enc, SpecAugment(freq_width=8, time_width=8, n_freq=2, n_time=2)).eval()
    x = torch.randn(3, 1, 32, 24)
    assert aug.out_dim == 8
    torch.testing.assert_close(aug(x), enc(x))
    torch.testing.assert_close(aug.tokens(x), enc.tokens(x))
    seen = []
    aug.encoder.register_forward_pre_hook(lambda mod, args: seen.append(args[0]))
    aug.train()
    aug(x)
    assert (seen[-1] == 0).sum() > (x == 0).sum()  # stripes were masked

    class Flat(nn.Linear):
        out_dim = 4

    with pytest.raises(AttributeError, match="no tokens"):
        Augmented(Flat(3, 4), lambda x, g: x).tokens(torch.randn(2, 3))
    with pytest.raises(TypeError, match="callable"):
        Augmented(enc, "specaugment")


def test_fast_encoders_take_av_digits_shapes():
    from mmcourse.analysis.fast_encoders import fast_encoders

    enc = fast_encoders(("audio", "image"), dim=8, audio_shape=(1, 32, 48), image_size=16)
    assert enc["image"](torch.randn(2, 3, 16, 16)).shape == (2, 8)
    assert enc["audio"](torch.randn(2, 1, 32, 48)).shape == (2, 8)
    assert enc["audio"].tokens(torch.randn(2, 1, 32, 48)).shape == (2, 24, 8)
    with pytest.raises(RuntimeError):
        fast_encoders(("image",), dim=8)["image"](torch.randn(2, 3, 16, 16))  # sized for the world's 32x32
