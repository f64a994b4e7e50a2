"""Tests for mmcourse/encoders/audio.py and mmcourse/encoders/video.py."""

import pytest
import torch
from torch import nn

from mmcourse.encoders.audio import AudioCNN
from mmcourse.encoders.image import count_params
from mmcourse.encoders.video import Video2Plus1D, Video3DCNN, conv2plus1d_block, conv2plus1d_mid_channels, conv3d_block


def test_audio_shapes_tokens_over_time():
    m = AudioCNN(out_dim=16, width=4).eval()
    x = torch.randn(2, 1, 32, 20)  # [B, 1, n_mels, frames]
    assert m(x).shape == (2, 16) and m.out_dim == 16
    t = m.tokens(x)
    assert t.shape == (2, 10, 16)  # one token per two frames
    assert m(torch.randn(2, 1, 13, 21)).shape == (2, 16)  # MFCC-sized input, odd frame count
    flat = AudioCNN(16, width=4, bands=1, segments=1).eval()  # global average pooling
    torch.testing.assert_close(flat.tokens(x).mean(1), flat(x), atol=1e-5, rtol=1e-4)
    with pytest.raises(TypeError):
        AudioCNN(16, 4)  # width is keyword-only


@pytest.mark.parametrize("bad", [torch.randn(2, 2, 32, 20), torch.randn(2, 32, 20)])
def test_audio_bad_input(bad):
    with pytest.raises(ValueError, match=r"audio encoder expects \[B, 1, n_mels, frames\], got"):
        AudioCNN(width=4)(bad)


@pytest.mark.parametrize("cls", [Video3DCNN, Video2Plus1D])
def test_video_shapes_tokens_over_frames(cls):
    m = cls(out_dim=16, width=4).eval()
    x = torch.randn(2, 3, 6, 16, 16)
    assert m(x).shape == (2, 16)
    t = m.tokens(x)
    assert t.shape == (2, 6, 16)
    torch.testing.assert_close(t.mean(1), m(x), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("bad", [torch.randn(2, 3, 16, 16), torch.randn(2, 1, 4, 16, 16)])
def test_video_bad_input(bad):
    with pytest.raises(ValueError, match=r"video encoder \(Video3DCNN\) expects \[B, 3, T, H, W\], got"):
        Video3DCNN(width=4)(bad)


def test_2plus1d_matches_3d_params_and_factorises():
    assert conv2plus1d_mid_channels(64, 64) == 144  # Tran et al.'s M for t = d = 3
    p3 = count_params(conv3d_block(16, 32))
    p21 = count_params(conv2plus1d_block(16, 32))
    assert abs(p21 - p3) / p3 < 0.05
    kinds = [m.kernel_size for m in conv2plus1d_block(4, 8) if isinstance(m, nn.Conv3d)]
    assert kinds == [(1, 3, 3), (3, 1, 1)]
    assert count_params(conv2plus1d_block(16, 32, mid_ch=32)) < p3


def test_video_sees_temporal_order():
    """A 3-D conv is not invariant to reversing time; an average over frames of a 2-D feature would be."""
    torch.manual_seed(0)
    m = Video3DCNN(out_dim=8, width=4).eval()
    x = torch.randn(2, 3, 5, 16, 16)
    assert not torch.allclose(m(x), m(x.flip(2)), atol=1e-4)


@pytest.mark.parametrize("build,x", [
    (lambda: AudioCNN(8, width=4), torch.randn(2, 1, 16, 12)),
    (lambda: Video3DCNN(8, width=4), torch.randn(2, 3, 4, 16, 16)),
    (lambda: Video2Plus1D(8, width=4), torch.randn(2, 3, 4, 16, 16)),
])
def test_bf16_autocast_channels_last_and_grads(build, x):
    m = build().eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = m(x)
    assert torch.isfinite(y.float()).all()
    fmt = torch.channels_last if x.dim() == 4 else torch.channels_last_3d
    torch.testing.assert_close(m(x.to(memory_format=fmt)), m(x), atol=1e-4, rtol=1e-4)
    m.train()
    m(x).sum().backward()
    assert all(p.grad is not None for p in m.parameters())


def test_tiny_video_overfits_small_batch():
    torch.manual_seed(0)
    model = nn.Sequential(Video2Plus1D(out_dim=8, width=4), nn.Linear(8, 2))
    x, y = torch.randn(8, 3, 4, 8, 8), torch.arange(8) % 2
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(30):
        loss = nn.functional.cross_entropy(model(x), y)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.3 * first


def test_audio_compiles_aot_eager():
    m = AudioCNN(8, width=4).eval()
    x = torch.randn(2, 1, 16, 12)
    torch.testing.assert_close(torch.compile(m, backend="aot_eager")(x), m(x), atol=1e-5, rtol=1e-4)
