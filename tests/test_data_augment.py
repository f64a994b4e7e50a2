"""Tests for mmcourse/data/augment.py: crops are shifts of the padded image, flips mirror about p of the batch,
time/frequency masks blank whole stripes of bounded width, everything is reproducible from a generator."""

import pytest
import torch
import torch.nn.functional as F

from mmcourse.batch import Batch
from mmcourse.data.augment import (
    BatchAugment,
    ImageAugment,
    SpecAugment,
    default_augment,
    freq_mask,
    random_crop,
    random_flip,
    time_mask,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate"])
def test_random_crop_is_a_window_of_the_padded_image(mode):
    x = torch.randn(16, 3, 9, 7, generator=_gen(1))
    p = 3
    out = random_crop(x, p, generator=_gen(2), mode=mode)
    assert out.shape == x.shape
    padded = F.pad(x, (p,) * 4, mode=mode)
    for i in range(len(x)):  # the test may loop; the function does not
        windows = [(dy, dx) for dy in range(2 * p + 1) for dx in range(2 * p + 1)
                   if torch.equal(padded[i, :, dy:dy + 9, dx:dx + 7], out[i])]
        assert windows, f"sample {i} is not a {9}x{7} window of its padded image"


def test_random_crop_draws_different_offsets_per_sample_and_covers_all():
    x = torch.arange(64.0).reshape(1, 1, 8, 8).expand(400, 1, 8, 8).contiguous()
    out = random_crop(x, 2, generator=_gen(0))
    # the value at the centre of a window tells its offset (the shift)
    centre = out[:, 0, 4, 4]
    assert len(torch.unique(centre)) == 25, "offsets should cover all 5x5 shifts"
    assert not torch.equal(out[0], out[1]) or not torch.equal(out[1], out[2])


def test_random_crop_same_shift_for_every_frame_of_a_video():
    frame = torch.randn(1, 3, 1, 8, 8, generator=_gen(3))
    video = frame.expand(5, 3, 4, 8, 8).contiguous()  # four identical frames per clip
    out = random_crop(video, 2, generator=_gen(4))
    assert out.shape == video.shape
    for t in range(1, 4):
        torch.testing.assert_close(out[:, :, t], out[:, :, 0])


def test_random_crop_zero_padding_is_identity_and_errors_are_clear():
    x = torch.randn(2, 1, 4, 4)
    assert random_crop(x, 0) is x
    with pytest.raises(ValueError, match="padding must be >= 0"):
        random_crop(x, -1)
    with pytest.raises(ValueError, match="mode="):
        random_crop(x, 1, mode="wrap")
    with pytest.raises(ValueError, match="reflect padding 4"):
        random_crop(x, 4, mode="reflect")
    with pytest.raises(ValueError, match="float tensor"):
        random_crop(torch.zeros(2, 1, 4, 4, dtype=torch.int64), 1)


def test_random_flip_mirrors_about_p_of_the_batch():
    x = torch.randn(2000, 1, 3, 5, generator=_gen(5))
    out = random_flip(x, 0.3, generator=_gen(6))
    flipped = (out == x.flip(-1)).flatten(1).all(1)
    kept = (out == x).flatten(1).all(1)
    assert bool((flipped | kept).all()), "every sample is either unchanged or mirrored"
    assert 0.25 < flipped.float().mean().item() < 0.35
    assert torch.equal(random_flip(x, 0.0, generator=_gen(0)), x)
    assert torch.equal(random_flip(x, 1.0, generator=_gen(0)), x.flip(-1))
    with pytest.raises(ValueError, match="batch dimension"):
        random_flip(x, 0.5, dim=0)


@pytest.mark.parametrize("fn,dim", [(time_mask, -1), (freq_mask, -2)])
def test_masks_blank_one_stripe_of_bounded_width(fn, dim):
    x = torch.randn(500, 1, 12, 20, generator=_gen(7)) + 10.0  # never 0 by chance
    out = fn(x, 5, 1, generator=_gen(8))
    zero = out == 0
    other = -2 if dim == -1 else -1
    line = zero.all(other)[:, 0]  # [B, size]: whole columns (time) / rows (freq) blanked
    assert torch.equal(zero.any(other)[:, 0], line), "a mask blanks whole stripes, never single pixels"
    widths = line.sum(1)
    assert int(widths.max()) <= 5 and int(widths.min()) == 0
    assert set(widths.tolist()) == set(range(6)), "widths 0..max_width should all occur"
    # one contiguous stripe: the positions blanked form one run
    idx = [torch.nonzero(r).flatten() for r in line if r.any()]
    assert all(int(i[-1] - i[0] + 1) == len(i) for i in idx)
    torch.testing.assert_close(out[~zero], x[~zero])


def test_masks_several_stripes_value_and_errors():
    x = torch.ones(300, 1, 8, 30)
    out = time_mask(x, 3, n_masks=3, value=-1.0, generator=_gen(9))
    blanked = (out == -1.0).all(-2)[:, 0].sum(1)
    assert int(blanked.max()) <= 9 and float(blanked.float().mean()) > 3.0
    assert torch.equal(time_mask(x, 0, generator=_gen(0)), x)
    with pytest.raises(ValueError, match="exceeds the 8 positions"):
        freq_mask(x, 9)
    with pytest.raises(ValueError, match=">= 0"):
        time_mask(x, 2, n_masks=-1)


def test_same_generator_same_result_and_different_seeds_differ():
    x = torch.randn(32, 3, 8, 8, generator=_gen(10))
    aug = ImageAugment(padding=2)
    assert torch.equal(aug(x, _gen(1)), aug(x, _gen(1)))
    assert not torch.equal(aug(x, _gen(1)), aug(x, _gen(2)))
    spec = torch.randn(32, 1, 16, 24, generator=_gen(11))
    sa = SpecAugment(freq_width=4, n_freq=2, time_width=5, n_time=2)
    assert torch.equal(sa(spec, _gen(3)), sa(spec, _gen(3)))
    assert not torch.equal(sa(spec, _gen(3)), sa(spec, _gen(4)))


def test_batch_augment_touches_only_its_modalities_and_is_seeded():
    inputs = {"image": torch.randn(8, 3, 8, 8, generator=_gen(12)), "audio": torch.randn(8, 1, 16, 16) + 5,
              "text": torch.randint(1, 9, (8, 6), generator=_gen(13))}
    batch = Batch(inputs, {"label": torch.arange(8)})
    aug = default_augment(["image", "audio", "text"], seed=5)
    assert aug is not None and set(aug.transforms) == {"image", "audio"}
    out = aug(batch)
    assert out.inputs["text"] is inputs["text"] and out.targets is batch.targets
    assert not torch.equal(out.inputs["image"], inputs["image"])
    assert (out.inputs["audio"] == 0).any()
    again = default_augment(["image", "audio"], seed=5)(batch)
    assert torch.equal(again.inputs["image"], out.inputs["image"])
    assert torch.equal(again.inputs["audio"], out.inputs["audio"])
    second = aug(batch)  # the owned generator moves on: the next batch is augmented differently
    assert not torch.equal(second.inputs["image"], out.inputs["image"])
    assert default_augment(["text"]) is None
    with pytest.raises(ValueError, match="at least one"):
        BatchAugment({})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_augment_runs_on_the_gpu_with_a_gpu_generator():
    x = torch.randn(64, 3, 16, 16, device="cuda")
    g = torch.Generator(device="cuda").manual_seed(0)
    out = ImageAugment()(x, g)
    assert out.device.type == "cuda" and out.shape == x.shape
    spec = SpecAugment()(torch.randn(64, 1, 32, 32, device="cuda"), torch.Generator().manual_seed(0))
    assert spec.device.type == "cuda"
