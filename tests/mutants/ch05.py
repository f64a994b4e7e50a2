"""Wrong answers for chapter 05's checks (projection shortcut, basic block forward, counting parameters, the
fixed residual block)."""

import torch
from torch import nn

from . import Mutant


def shortcut_always_projects(in_ch, out_ch, stride):
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch))


def shortcut_conv_with_bias(in_ch, out_ch, stride):
    if stride == 1 and in_ch == out_ch:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride), nn.BatchNorm2d(out_ch))


def shortcut_3x3(in_ch, out_ch, stride):
    if stride == 1 and in_ch == out_ch:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(out_ch))


def shortcut_no_bn(in_ch, out_ch, stride):
    if stride == 1 and in_ch == out_ch:
        return nn.Identity()
    return nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False)


def shortcut_only_on_channels(in_ch, out_ch, stride):
    if in_ch == out_ch:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch))


def block_no_shortcut(x, conv1, bn1, conv2, bn2, shortcut):
    return torch.relu(bn2(conv2(torch.relu(bn1(conv1(x))))))


def block_relu_before_add(x, conv1, bn1, conv2, bn2, shortcut):
    return torch.relu(bn2(conv2(torch.relu(bn1(conv1(x)))))) + shortcut(x)


def block_no_inner_relu(x, conv1, bn1, conv2, bn2, shortcut):
    return torch.relu(bn2(conv2(bn1(conv1(x)))) + shortcut(x))


def count_frozen_too(model):
    return sum(p.numel() for p in model.parameters())


def count_per_module(model):
    return sum(p.numel() for layer in model for p in layer.parameters() if p.requires_grad)  # lin, lin: twice


class PostBlock(nn.Module):  # the bug itself: no line adds the input back
    def __init__(self, in_ch, out_ch, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)

    def branch(self, x):
        return self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))

    def forward(self, x):
        return torch.relu(self.branch(x))


class SkipAfterRelu(PostBlock):
    def __init__(self, in_ch, out_ch, stride=1):
        super().__init__(in_ch, out_ch, stride)
        self.shortcut = shortcut_conv_with_bias(in_ch, out_ch, stride)
        if isinstance(self.shortcut, nn.Sequential):
            self.shortcut[0] = nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False)

    def forward(self, x):
        return torch.relu(self.branch(x)) + self.shortcut(x)


class ProjectOnlyOnStride(PostBlock):  # 3 -> 16 channels at stride 1 gets no projection
    def __init__(self, in_ch, out_ch, stride=1):
        super().__init__(in_ch, out_ch, stride)
        self.shortcut = shortcut_always_projects(in_ch, out_ch, stride) if stride != 1 else nn.Identity()

    def forward(self, x):
        return torch.relu(self.branch(x) + self.shortcut(x))


class ProjectOnlyOnChannels(ProjectOnlyOnStride):  # 16 -> 16 at stride 2 gets no projection
    def __init__(self, in_ch, out_ch, stride=1):
        super().__init__(in_ch, out_ch, stride)
        self.shortcut = shortcut_only_on_channels(in_ch, out_ch, stride)


class AlwaysProjects(ProjectOnlyOnStride):
    def __init__(self, in_ch, out_ch, stride=1):
        super().__init__(in_ch, out_ch, stride)
        self.shortcut = shortcut_always_projects(in_ch, out_ch, stride)


MUTANTS = {
    "05.projection_shortcut": {"always a projection": Mutant(shortcut_always_projects, "no parameters"),
                               "conv with bias": Mutant(shortcut_conv_with_bias, "no bias"),
                               "3×3 conv": Mutant(shortcut_3x3, "1×1"), "no batch norm": shortcut_no_bn,
                               "ignores the stride": shortcut_only_on_channels},
    "05.basic_block": {"no shortcut": Mutant(block_no_shortcut, "shortcut"), "ReLU before the add":
                       block_relu_before_add, "no inner ReLU": block_no_inner_relu},
    "05.count_params": {"counts frozen parameters": Mutant(count_frozen_too, "frozen"),
                        "counts a shared layer twice": Mutant(count_per_module, "once")},
    "05.fix_residual_block": {"no skip connection (the bug)": Mutant(PostBlock, "skip connection"),
                              "shortcut added after the ReLU": Mutant(SkipAfterRelu, "after the last relu"),
                              "projection only when the stride changes": Mutant(ProjectOnlyOnStride, "1×1 conv"),
                              "projection only when the channels change": Mutant(ProjectOnlyOnChannels, "1×1"),
                              "a projection even when the shape is kept": Mutant(AlwaysProjects, "identity")},
}
