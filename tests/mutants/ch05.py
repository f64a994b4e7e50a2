"""Wrong answers for chapter 05's checks (projection shortcut, bottleneck block, counting parameters, the
fixed residual block, deleting a block)."""

import torch
from torch import nn

from mmcourse.grading.ch05 import LESION_ANSWER, LESION_KEYS
from mmcourse.layers.residual import Bottleneck

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
    "05.count_params": {"counts frozen parameters": Mutant(count_frozen_too, "frozen"),
                        "counts a shared layer twice": Mutant(count_per_module, "once")},
    "05.fix_residual_block": {"no skip connection (the bug)": Mutant(PostBlock, "skip connection"),
                              "shortcut added after the ReLU": Mutant(SkipAfterRelu, "after the last relu"),
                              "projection only when the stride changes": Mutant(ProjectOnlyOnStride, "1×1 conv"),
                              "projection only when the channels change": Mutant(ProjectOnlyOnChannels, "1×1"),
                              "a projection even when the shape is kept": Mutant(AlwaysProjects, "identity")},
}


# --- 05.lesion ------------------------------------------------------------------------------------------------


def lesion_all_keep():  # "the other blocks make up for it"
    return {k: "keeps" for k in LESION_KEYS}


def lesion_residual_keeps_both():  # every residual block is optional
    return {**LESION_ANSWER, "residual, first block": "keeps"}


def lesion_swapped():  # plain and residual the other way round
    return {"plain, first block": "loses", "plain, last block": "keeps",
            "residual, first block": "loses", "residual, last block": "loses"}


def lesion_missing_case():
    return {k: v for k, v in LESION_ANSWER.items() if k != "plain, first block"}


def lesion_made_up_word():
    return {**LESION_ANSWER, "plain, last block": "chance"}


MUTANTS["05.lesion"] = {"nothing is lost": Mutant(lesion_all_keep, "1 of 4"),
                        "residual blocks are all optional": Mutant(lesion_residual_keeps_both, "3 of 4"),
                        "plain and residual swapped": lesion_swapped,
                        "a case left out": Mutant(lesion_missing_case, "missing"),
                        "an unknown answer": Mutant(lesion_made_up_word, "one of")}


# --- 05.bottleneck_block --------------------------------------------------------------------------------------


class BottleneckBase(nn.Module):  # the right block; each mutant below changes one thing
    expansion = 4
    conv_bias = False

    def __init__(self, in_ch, mid_ch, stride=1):
        super().__init__()
        out_ch = mid_ch * self.expansion
        s1, s2 = self.strides(stride)
        self.conv1 = nn.Conv2d(in_ch, mid_ch, 1, stride=s1, bias=self.conv_bias)
        self.bn1 = nn.BatchNorm2d(mid_ch)
        self.conv2 = nn.Conv2d(mid_ch, mid_ch, 3, stride=s2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid_ch)
        self.conv3 = nn.Conv2d(mid_ch, out_ch, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.shortcut = self.make_shortcut(in_ch, out_ch, stride)

    def strides(self, stride):
        return 1, stride

    def make_shortcut(self, in_ch, out_ch, stride):
        if stride == 1 and in_ch == out_ch:
            return nn.Identity()
        return shortcut_always_projects(in_ch, out_ch, stride)

    def branch(self, x):
        h = torch.relu(self.bn1(self.conv1(x)))
        h = torch.relu(self.bn2(self.conv2(h)))
        return self.bn3(self.conv3(h))

    def forward(self, x):
        return torch.relu(self.branch(x) + self.shortcut(x))


class BottleneckNoExpansion(BottleneckBase):  # out = mid_ch: a "bottleneck" that never widens again
    expansion = 1


class BottleneckReluBeforeAdd(BottleneckBase):
    def forward(self, x):
        return torch.relu(self.branch(x)) + self.shortcut(x)


class BottleneckNoFinalRelu(BottleneckBase):
    def forward(self, x):
        return self.branch(x) + self.shortcut(x)


class BottleneckStrideOnConv1(BottleneckBase):  # the original ResNet v1: the stride on the first 1×1 conv
    def strides(self, stride):
        return stride, 1


class BottleneckProjectOnlyOnStride(BottleneckBase):  # 8 -> 16 channels at stride 1 gets no projection
    def make_shortcut(self, in_ch, out_ch, stride):
        return shortcut_always_projects(in_ch, out_ch, stride) if stride != 1 else nn.Identity()


class BottleneckConvBias(BottleneckBase):
    conv_bias = True


def library_bottleneck(in_ch, mid_ch, stride=1):  # the library's block, not the learner's
    return Bottleneck(in_ch, mid_ch, stride)


MUTANTS["05.bottleneck_block"] = {
    "no expansion": Mutant(BottleneckNoExpansion, "expansion"),
    "ReLU before the addition": Mutant(BottleneckReluBeforeAdd, "before the addition"),
    "no ReLU after the addition": Mutant(BottleneckNoFinalRelu, "after the addition"),
    "stride on the first 1×1 conv": Mutant(BottleneckStrideOnConv1, "stride goes on the 3×3 conv"),
    "projection only when the stride changes": Mutant(BottleneckProjectOnlyOnStride, "1×1 conv"),
    "convs with a bias": Mutant(BottleneckConvBias, "bias=false"),
    "mmcourse's Bottleneck": Mutant(library_bottleneck, "yourself"),
}
