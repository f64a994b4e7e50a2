"""Wrong answers for chapter 03's checks (output-shape formula, conv2d as unfold + matmul, max-pooling)."""

import torch.nn.functional as F

from . import Mutant


def shape_no_dilation(size, kernel, stride=1, padding=0, dilation=1):
    return (size + 2 * padding - kernel) // stride + 1


def shape_rounds_up(size, kernel, stride=1, padding=0, dilation=1):
    return -(-(size + 2 * padding - dilation * (kernel - 1) - 1) // stride) + 1


def shape_float(size, kernel, stride=1, padding=0, dilation=1):
    return (size + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1


def _out(size, k, stride, padding):
    return (size + 2 * padding - k) // stride + 1


def conv_h_w_swapped(x, w, stride=1, padding=0):
    n, _, h, wd = x.shape
    c_out, _, k, _ = w.shape
    cols = F.unfold(x, k, stride=stride, padding=padding)
    return (w.reshape(c_out, -1) @ cols).reshape(n, c_out, _out(wd, k, stride, padding), _out(h, k, stride, padding))


def conv_ignores_padding(x, w, stride=1, padding=0):
    n, _, h, wd = x.shape
    c_out, _, k, _ = w.shape
    cols = F.unfold(x, k, stride=stride)
    return (w.reshape(c_out, -1) @ cols).reshape(n, c_out, _out(h, k, stride, 0), _out(wd, k, stride, 0))


def conv_with_F(x, w, stride=1, padding=0):
    return F.conv2d(x, w, stride=stride, padding=padding)


def conv_flipped_kernel(x, w, stride=1, padding=0):  # true convolution, not torch's cross-correlation
    n, _, h, wd = x.shape
    c_out, _, k, _ = w.shape
    cols = F.unfold(x, k, stride=stride, padding=padding)
    out = w.flip(-1, -2).reshape(c_out, -1) @ cols
    return out.reshape(n, c_out, _out(h, k, stride, padding), _out(wd, k, stride, padding))


def pool_with_F(x, k):
    return F.max_pool2d(x, k)


def pool_average(x, k):
    n, c, h, w = x.shape
    return x[:, :, : h // k * k, : w // k * k].reshape(n, c, h // k, k, w // k, k).mean(dim=(3, 5))


def pool_no_crop(x, k):
    n, c, h, w = x.shape
    return x.reshape(n, c, h // k, k, w // k, k).amax(dim=(3, 5))


MUTANTS = {
    "03.output_shape": {"forgets dilation": shape_no_dilation, "rounds up": shape_rounds_up,
                        "true division": shape_float},
    "03.conv2d": {"H and W swapped": Mutant(conv_h_w_swapped, "swapped"), "ignores padding": conv_ignores_padding,
                  "calls F.conv2d": Mutant(conv_with_F, "calls conv2d"), "flips the kernel": conv_flipped_kernel},
    "03.maxpool": {"calls F.max_pool2d": Mutant(pool_with_F, "calls max_pool2d"), "average pooling": pool_average,
                   "no crop": pool_no_crop},
}
