"""ResNets built from block specs (data) and thin builders: CIFAR-style ResNet-20/56, ResNet-18 for 32×32 images,
and a wrapper around torchvision's ImageNet ResNets with their pretrained weights.

Chapter 5 builds them, counts their parameters and switches their shortcuts off (``plain=True``) to show the
degradation problem; later chapters use them as image encoders (``[B, 3, H, W] -> [B, out_dim]``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mmcourse.encoders.checks import check_encoder_input
from mmcourse.layers.residual import BasicBlock, Bottleneck, zero_init_last_bn

BLOCKS: dict[str, type[nn.Module]] = {"basic": BasicBlock, "bottleneck": Bottleneck}


@dataclass(frozen=True)
class StageSpec:
    """One stage: ``n_blocks`` blocks of kind ``block`` at ``width`` channels; the first has ``stride``."""

    n_blocks: int
    width: int
    stride: int = 1
    block: str = "basic"


@dataclass(frozen=True)
class ResNetSpec:
    """A whole ResNet as plain data: a 3×3 stem of ``stem_width`` channels, then the stages."""

    stem_width: int
    stages: tuple[StageSpec, ...]
    in_channels: int = 3


def cifar_spec(depth: int, width: int = 16) -> ResNetSpec:
    """He et al.'s CIFAR ResNet of ``depth = 6n + 2`` layers: 3 stages of ``n`` basic blocks, widths w, 2w, 4w."""
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"a CIFAR ResNet has depth 6n+2 (8, 14, 20, 32, 44, 56, 110, ...), got {depth}")
    n = (depth - 2) // 6
    return ResNetSpec(width, (StageSpec(n, width, 1), StageSpec(n, 2 * width, 2), StageSpec(n, 4 * width, 2)))


def resnet18_spec(width: int = 64) -> ResNetSpec:
    """ResNet-18 adapted to 32×32 inputs: a 3×3 stem (no 7×7 conv, no max-pool), 4 stages of 2 basic blocks."""
    return ResNetSpec(width, tuple(StageSpec(2, width * 2**i, 1 if i == 0 else 2) for i in range(4)))


class ResNet(nn.Module):
    """A ResNet encoder built from a :class:`ResNetSpec`: ``[B, C, H, W] -> [B, out_dim]``.

    Args:
        spec: the architecture as data.
        out_dim: width of the output features; ``None`` keeps the last stage's channels (no projection).
        plain: build every block without its shortcut (a plain network of the same depth).
        zero_init: start each residual branch at zero (last BN scale 0), so each block begins as the identity.
    """

    def __init__(self, spec: ResNetSpec, out_dim: int | None = None, plain: bool = False, zero_init: bool = False):
        super().__init__()
        self.spec, self.plain = spec, plain
        self.stem = nn.Sequential(
            nn.Conv2d(spec.in_channels, spec.stem_width, 3, padding=1, bias=False),
            nn.BatchNorm2d(spec.stem_width), nn.ReLU(inplace=True))
        blocks: list[nn.Module] = []
        ch = spec.stem_width
        for stage in spec.stages:
            if stage.block not in BLOCKS:
                raise ValueError(f"unknown block kind {stage.block!r}; use one of {sorted(BLOCKS)}")
            for i in range(stage.n_blocks):
                block = BLOCKS[stage.block](ch, stage.width, stage.stride if i == 0 else 1, plain=plain)
                blocks.append(block)
                ch = block.out_ch
        self.blocks = nn.Sequential(*blocks)
        self.feature_dim = ch
        self.proj = nn.Identity() if out_dim is None else nn.Linear(ch, out_dim)
        self.out_dim = ch if out_dim is None else out_dim
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if zero_init:
            zero_init_last_bn(self.blocks)

    def feature_map(self, x: Tensor) -> Tensor:
        """The last stage's feature map ``[B, C, h, w]``."""
        check_encoder_input(x, ("B", self.spec.in_channels, "H", "W"), "ResNet encoder", module=self)
        return self.blocks(self.stem(x))

    def tokens(self, x: Tensor) -> Tensor:
        """One token per position of the last feature map: ``[B, h*w, out_dim]``."""
        f = self.feature_map(x)
        return self.proj(f.flatten(2).transpose(1, 2))  # [B, h*w, D]

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(self.feature_map(x).mean(dim=(2, 3)))  # [B, D]


def cifar_resnet(depth: int, out_dim: int | None = None, width: int = 16, plain: bool = False) -> ResNet:
    """A CIFAR-style ResNet of ``depth`` layers (6n+2)."""
    return ResNet(cifar_spec(depth, width), out_dim=out_dim, plain=plain)


def resnet20(out_dim: int | None = None, width: int = 16, plain: bool = False) -> ResNet:
    """ResNet-20 (about 0.27 M parameters at the standard width 16)."""
    return cifar_resnet(20, out_dim, width, plain)


def resnet56(out_dim: int | None = None, width: int = 16, plain: bool = False) -> ResNet:
    """ResNet-56 (about 0.85 M parameters at the standard width 16)."""
    return cifar_resnet(56, out_dim, width, plain)


def resnet18_cifar(out_dim: int | None = None, width: int = 64, plain: bool = False) -> ResNet:
    """ResNet-18 for 32×32 inputs (about 11 M parameters at width 64)."""
    return ResNet(resnet18_spec(width), out_dim=out_dim, plain=plain)


class TorchvisionResNet(nn.Module):
    """A torchvision ResNet as an encoder: the classifier is dropped, features are ``[B, out_dim]``."""

    def __init__(self, net: nn.Module, out_dim: int | None = None):
        super().__init__()
        self.net = net
        feat = net.fc.in_features
        net.fc = nn.Identity()
        self.feature_dim = feat
        self.proj = nn.Identity() if out_dim is None else nn.Linear(feat, out_dim)
        self.out_dim = feat if out_dim is None else out_dim

    def feature_map(self, x: Tensor) -> Tensor:
        check_encoder_input(x, ("B", 3, "H", "W"), "torchvision ResNet encoder", module=self)
        n = self.net
        x = n.maxpool(n.relu(n.bn1(n.conv1(x))))
        return n.layer4(n.layer3(n.layer2(n.layer1(x))))

    def tokens(self, x: Tensor) -> Tensor:
        return self.proj(self.feature_map(x).flatten(2).transpose(1, 2))  # [B, h*w, D]

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(self.feature_map(x).mean(dim=(2, 3)))


def torchvision_resnet(name: str = "resnet18", pretrained: bool = True, out_dim: int | None = None
                       ) -> TorchvisionResNet:
    """torchvision's ``name`` (resnet18/34/50/101/152) with ImageNet weights when ``pretrained``.

    Raises:
        ImportError: torchvision is not installed (``pip install mmcourse[pretrained]``).
        ValueError: ``name`` is not a torchvision ResNet.
        RuntimeError: the weights are neither cached nor downloadable (offline).
    """
    try:
        import torchvision
    except ImportError as e:
        raise ImportError("torchvision_resnet needs torchvision: pip install 'mmcourse[pretrained]'") from e
    known = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
    if name not in known:
        raise ValueError(f"unknown torchvision ResNet {name!r}; use one of {known}")
    net = torchvision.models.get_model(name, weights=None)
    if pretrained:
        weights = torchvision.models.get_model_weights(name).DEFAULT
        try:
            state = torch.hub.load_state_dict_from_url(weights.url, progress=False, check_hash=True)
        except Exception as e:  # URLError, OSError, hash mismatch: all mean "no weights here"
            raise RuntimeError(
                f"could not load the ImageNet weights of {name} from {weights.url} ({type(e).__name__}: {e}). "
                f"Offline? Put the file in {torch.hub.get_dir()}/checkpoints, or use pretrained=False.") from e
        net.load_state_dict(state)
    return TorchvisionResNet(net, out_dim)
