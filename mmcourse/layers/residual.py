"""Residual blocks: the basic (two 3×3 convs) and bottleneck (1×1, 3×3, 1×1) blocks with projection shortcuts.

Chapter 5 builds ResNets from these blocks (``mmcourse.encoders.resnet``) and switches the skip connection
off with ``plain=True`` to reproduce the degradation problem: the same layers, without the identity path.

A block computes ``relu(F(x) + S(x))`` where ``F`` is the residual branch and ``S`` the shortcut: the identity
when input and output have the same shape, else a projection (1×1 conv with the block's stride, then batch
norm). With ``plain=True`` it computes ``relu(F(x))``.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn


def conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    """A 3×3 convolution with padding 1 and no bias (a batch norm follows it)."""
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)


def projection_shortcut(in_ch: int, out_ch: int, stride: int = 1) -> nn.Module:
    """The shortcut ``S``: identity if the shape is kept, else a 1×1 conv (stride ``stride``) + batch norm."""
    if stride == 1 and in_ch == out_ch:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(out_ch))


def _check_input(x: Tensor, in_ch: int, who: str) -> None:
    if x.dim() != 4 or x.shape[1] != in_ch:
        raise ValueError(f"{who} expects [B, {in_ch}, H, W], got {list(x.shape)}")


class ResidualBlock(nn.Module):
    """``relu(F(x) + S(x))``: subclasses build ``conv*``/``bn*``, ``self.shortcut`` (None when ``plain``) and
    define the branch ``residual(x)`` = ``F(x)``."""

    in_ch: int
    shortcut: nn.Module | None

    def residual(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        _check_input(x, self.in_ch, type(self).__name__)
        out = self.residual(x)  # [B, out_ch, H/s, W/s]
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return torch.relu(out)


class BasicBlock(ResidualBlock):
    """Two 3×3 conv–BN layers plus a shortcut (ResNet-18/20/56 use it).

    Args:
        in_ch: input channels.
        out_ch: output channels.
        stride: stride of the first conv (2 halves height and width; the shortcut then projects).
        plain: drop the shortcut (a "plain" network for the degradation experiment).
    """

    expansion = 1

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, plain: bool = False):
        super().__init__()
        self.in_ch, self.out_ch, self.stride, self.plain = in_ch, out_ch, stride, plain
        self.conv1 = conv3x3(in_ch, out_ch, stride)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = conv3x3(out_ch, out_ch)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.shortcut = None if plain else projection_shortcut(in_ch, out_ch, stride)

    def residual(self, x: Tensor) -> Tensor:
        """The branch ``F(x)`` (before the addition and the last ReLU)."""
        h = torch.relu(self.bn1(self.conv1(x)))  # [B, out_ch, H/s, W/s]
        return self.bn2(self.conv2(h))


class Bottleneck(ResidualBlock):
    """1×1 (reduce) → 3×3 (stride) → 1×1 (expand ×4) conv–BN layers plus a shortcut (ResNet-50 and deeper).

    Args:
        in_ch: input channels.
        mid_ch: channels of the 3×3 conv; the block outputs ``mid_ch * expansion`` channels.
        stride: stride of the 3×3 conv.
        plain: drop the shortcut.
    """

    expansion = 4

    def __init__(self, in_ch: int, mid_ch: int, stride: int = 1, plain: bool = False):
        super().__init__()
        out_ch = mid_ch * self.expansion
        self.in_ch, self.out_ch, self.stride, self.plain = in_ch, out_ch, stride, plain
        self.conv1 = nn.Conv2d(in_ch, mid_ch, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid_ch)
        self.conv2 = conv3x3(mid_ch, mid_ch, stride)
        self.bn2 = nn.BatchNorm2d(mid_ch)
        self.conv3 = nn.Conv2d(mid_ch, out_ch, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.shortcut = None if plain else projection_shortcut(in_ch, out_ch, stride)

    def residual(self, x: Tensor) -> Tensor:
        """The branch ``F(x)``."""
        h = torch.relu(self.bn1(self.conv1(x)))
        h = torch.relu(self.bn2(self.conv2(h)))  # [B, mid_ch, H/s, W/s]
        return self.bn3(self.conv3(h))


def zero_init_last_bn(blocks: Iterable[nn.Module]) -> None:
    """Set the last BN scale of each residual branch to zero, so every block starts as the identity."""
    for b in blocks:
        last = getattr(b, "bn3", None) if isinstance(b, Bottleneck) else getattr(b, "bn2", None)
        if isinstance(last, nn.BatchNorm2d):
            nn.init.zeros_(last.weight)


def grad_norms(modules: Iterable[nn.Module]) -> list[float]:
    """The gradient norm of each module's parameters (after ``loss.backward()``), e.g. one per block."""
    norms = []
    for m in modules:
        grads = [p.grad.detach().flatten() for p in m.parameters() if p.grad is not None]
        norms.append(float(torch.cat(grads).norm()) if grads else 0.0)
    return norms
