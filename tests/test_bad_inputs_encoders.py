"""Bad inputs entering an encoder are refused before any layer sees them, in words (mmcourse/encoders/checks.py).

Each case asserts the error type and that the message names the encoder, the shape or dtype it got, and the
fix (the conversion, the minimum size).
"""

import pytest
import torch
from torch import nn

from mmcourse.encoders import AudioCNN, SmallCNN, Video2Plus1D, Video3DCNN, resnet20
from mmcourse.encoders.checks import check_encoder_input, min_input_size


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    return SmallCNN(width=4, out_dim=8)


def test_uint8_image_names_the_conversion(small):
    with pytest.raises(TypeError, match=r"image encoder.*uint8.*x.float\(\) / 255"):
        small(torch.zeros(2, 3, 8, 8, dtype=torch.uint8))


def test_int64_image_is_refused(small):
    with pytest.raises(TypeError, match=r"image encoder.*float tensor.*int64"):
        small(torch.zeros(2, 3, 8, 8, dtype=torch.int64))


def test_float64_image_for_float32_weights_names_both(small):
    with pytest.raises(TypeError, match=r"image encoder.*float64 but the weights are torch.float32.*x.to"):
        small(torch.zeros(2, 3, 8, 8, dtype=torch.float64))


def test_float64_is_refused_under_autocast_too_but_float32_is_fine(small):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert small(torch.randn(2, 3, 8, 8)).shape == (2, 8)
        with pytest.raises(TypeError, match=r"image encoder.*float64.*x.to\(torch.float32\)"):
            small(torch.randn(2, 3, 8, 8, dtype=torch.float64))


def test_image_smaller_than_the_encoder_takes_states_the_minimum(small):
    with pytest.raises(ValueError, match=r"image encoder needs inputs of at least 4 x 4 \(H x W.*got \[2, 3, 3, 4\]"):
        small(torch.randn(2, 3, 3, 4))


def test_wrong_channel_count_is_refused(small):
    with pytest.raises(ValueError, match=r"image encoder expects \[B, 3, H, W\], got \[2, 6, 8, 8\]"):
        small(torch.randn(2, 6, 8, 8))


def test_missing_batch_dimension_is_refused(small):
    with pytest.raises(ValueError, match=r"expects \[B, 3, H, W\], got \[3, 8, 8\]"):
        small(torch.randn(3, 8, 8))


def test_not_a_tensor_is_refused(small):
    with pytest.raises(TypeError, match="image encoder.*expects a tensor, got list"):
        small([[0.0]])


def test_single_sample_too_small_for_batch_norm_in_training(small):
    small.train()
    with pytest.raises(ValueError, match=r"batch norm in training mode.*1 input\(s\).*model.eval\(\)"):
        small(torch.randn(1, 3, 4, 4))
    small.eval()
    assert small(torch.randn(1, 3, 4, 4)).shape == (1, 8)
    small.train()


def test_the_minimum_is_computed_from_the_layers():
    assert min_input_size(SmallCNN(width=4, out_dim=8).features, 2) == (4, 4)
    smallest = SmallCNN(width=4, out_dim=8)
    assert smallest(torch.randn(2, 3, 4, 4)).shape == (2, 8)  # the minimum itself works


def test_check_remembers_accepted_inputs_but_rechecks_new_ones(small):
    small(torch.randn(2, 3, 8, 8))
    with pytest.raises(TypeError, match="uint8"):
        small(torch.zeros(2, 3, 8, 8, dtype=torch.uint8))


def test_audio_with_wrong_dtype_is_refused():
    with pytest.raises(TypeError, match=r"audio encoder.*int16"):
        AudioCNN(out_dim=8, width=4)(torch.zeros(2, 1, 8, 8, dtype=torch.int16))


def test_audio_without_its_channel_dimension_is_refused():
    with pytest.raises(ValueError, match=r"audio encoder expects \[B, 1, n_mels, frames\], got \[2, 8, 8\]"):
        AudioCNN(out_dim=8, width=4)(torch.randn(2, 8, 8))


def test_audio_batch_of_one_tiny_clip_in_training_is_refused():
    with pytest.raises(ValueError, match=r"audio encoder: batch norm in training mode"):
        AudioCNN(out_dim=8, width=4)(torch.randn(1, 1, 4, 2))


def test_video_given_as_images_is_refused():
    with pytest.raises(ValueError, match=r"video encoder \(Video3DCNN\) expects \[B, 3, T, H, W\], got \[2, 3, 8, 8\]"):
        Video3DCNN(out_dim=8, width=4)(torch.randn(2, 3, 8, 8))


def test_video_of_uint8_frames_names_the_conversion():
    with pytest.raises(TypeError, match=r"Video2Plus1D.*uint8.*x.float\(\) / 255"):
        Video2Plus1D(out_dim=8, width=4)(torch.zeros(2, 3, 4, 8, 8, dtype=torch.uint8))


def test_resnet_refuses_int_images():
    with pytest.raises(TypeError, match=r"ResNet encoder expects a float tensor.*int64"):
        resnet20(width=4)(torch.zeros(2, 3, 8, 8, dtype=torch.long))


def test_input_on_another_device_than_the_weights():
    with pytest.raises(ValueError, match=r"the input is on meta but the encoder's weights are on cpu"):
        check_encoder_input(torch.empty(2, 3, 8, 8, device="meta"), ("B", 3, "H", "W"), "enc",
                            module=nn.Linear(2, 2))
