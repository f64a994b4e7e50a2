"""Tests for mmcourse/encoders/image.py and mmcourse/encoders/resnet.py."""

import pytest
import torch
from torch import nn

from mmcourse.encoders.image import SmallCNN, count_params, frame_batch, patchify
from mmcourse.encoders.resnet import (
    ResNet,
    ResNetSpec,
    StageSpec,
    cifar_spec,
    resnet18_cifar,
    resnet20,
    resnet56,
    torchvision_resnet,
)


def test_small_cnn_shapes_and_tokens():
    m = SmallCNN(16, width=8, grid=1).eval()  # global average pooling: one token per position
    x = torch.randn(2, 3, 32, 32)
    assert m.out_dim == 16 and m(x).shape == (2, 16)
    t = m.tokens(x)
    assert t.shape == (2, 64, 16)
    torch.testing.assert_close(t.mean(1), m(x), atol=1e-5, rtol=1e-4)
    g = SmallCNN(16, width=8, grid=2).eval()  # a 2x2 grid of cells for forward; tokens unchanged
    assert g(x).shape == (2, 16) and g.tokens(x).shape == (2, 64, 16)
    quadrants = g.tokens(x).reshape(2, 2, 4, 2, 4, 16).mean(dim=(2, 4)).reshape(2, 4, 16)  # [B, cells, D]
    torch.testing.assert_close(g.pool.merge(quadrants.flatten(1)), g(x), atol=1e-5, rtol=1e-4)
    assert SmallCNN(16, width=8).pool.grid == (4, 4)
    with pytest.raises(TypeError):
        SmallCNN(16, 8)  # width is keyword-only: SmallCNN(out_dim, width=...) like AudioCNN and the video encoders


@pytest.mark.parametrize("bad", [torch.randn(2, 6, 32, 32), torch.randn(3, 32, 32)])
def test_image_bad_input(bad):
    with pytest.raises(ValueError, match=r"image encoder expects \[B, 3, H, W\], got"):
        SmallCNN(width=4)(bad)
    with pytest.raises(ValueError, match=r"expects \[B, 3, H, W\]"):
        resnet20()(bad)


@pytest.mark.parametrize("build,expected", [(resnet20, 0.27e6), (resnet56, 0.85e6)])
def test_cifar_resnet_param_counts(build, expected):
    n = count_params(build(10))  # standard width 16, 10-way output as in He et al.
    assert abs(n - expected) / expected < 0.03, n


def test_resnet_shapes_tokens_and_spec():
    m = resnet20(out_dim=32).eval()
    x = torch.randn(2, 3, 32, 32)
    assert m(x).shape == (2, 32) and m.tokens(x).shape == (2, 64, 32)
    assert resnet20().out_dim == 64
    assert len(m.blocks) == 9 and cifar_spec(56).stages[0].n_blocks == 9
    with pytest.raises(ValueError, match="6n\\+2"):
        cifar_spec(21)
    r18 = resnet18_cifar(width=8)
    assert len(r18.blocks) == 8 and r18(x).shape == (2, 64)
    bottle = ResNet(ResNetSpec(8, (StageSpec(1, 4, 1, "bottleneck"), StageSpec(1, 8, 2, "bottleneck"))))
    assert bottle(x).shape == (2, 32)


def test_plain_resnet_has_no_shortcuts():
    plain = resnet20(plain=True)
    assert all(b.shortcut is None for b in plain.blocks)
    assert count_params(plain) < count_params(resnet20())


def test_gradient_flows_to_every_parameter():
    m = resnet20(out_dim=10, width=4)
    m(torch.randn(4, 3, 16, 16)).logsumexp(-1).mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())


def test_tiny_cnn_overfits_small_batch():
    torch.manual_seed(0)
    enc = SmallCNN(width=8, out_dim=16)
    model = nn.Sequential(enc, nn.ReLU(), nn.Linear(16, 4))
    x, y = torch.randn(16, 3, 16, 16), torch.arange(16) % 4
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0], losses[::10]


@pytest.mark.parametrize("build", [lambda: SmallCNN(width=4, out_dim=8), lambda: resnet20(8, width=4)])
def test_bf16_autocast_and_channels_last(build):
    m = build().eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = m(x)
    assert torch.isfinite(y.float()).all()
    torch.testing.assert_close(m(x.to(memory_format=torch.channels_last)), m(x), atol=1e-4, rtol=1e-4)
    m_cl = m.to(memory_format=torch.channels_last)
    torch.testing.assert_close(m_cl(x.to(memory_format=torch.channels_last)), m(x), atol=1e-4, rtol=1e-4)


def test_torch_compile_aot_eager():
    m = SmallCNN(width=4, out_dim=8).eval()
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(torch.compile(m, backend="aot_eager")(x), m(x), atol=1e-5, rtol=1e-4)


def test_patchify_and_frame_batch():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    p = patchify(x, 2)
    assert p.shape == (2, 4, 12)
    torch.testing.assert_close(p[0, 1].reshape(3, 2, 2), x[0, :, 0:2, 2:4])
    with pytest.raises(ValueError, match="divisible"):
        patchify(x, 3)
    v = torch.randn(2, 3, 5, 8, 8)
    torch.testing.assert_close(frame_batch(v), v[:, :, 2])


def test_torchvision_resnet_offline_and_random(monkeypatch):
    pytest.importorskip("torchvision")
    m = torchvision_resnet("resnet18", pretrained=False, out_dim=16).eval()
    x = torch.randn(1, 3, 64, 64)
    assert m(x).shape == (1, 16) and m.tokens(x).shape == (1, 4, 16)

    def offline(*a, **k):
        raise OSError("no network")
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(RuntimeError, match="Offline\\?.*pretrained=False"):
        torchvision_resnet("resnet18", pretrained=True)
    with pytest.raises(ValueError, match="unknown torchvision ResNet"):
        torchvision_resnet("vgg16")
