"""Wrong answers for chapter 03's checks (output-shape formula, conv2d's backward pass, max-pooling, the source
post's LeNet with a flatten size for 32x32 images only)."""

import torch
import torch.nn.functional as F
from torch import nn

from . import Mutant


def shape_no_dilation(size, kernel, stride=1, padding=0, dilation=1):
    return (size + 2 * padding - kernel) // stride + 1


def shape_rounds_up(size, kernel, stride=1, padding=0, dilation=1):
    return -(-(size + 2 * padding - dilation * (kernel - 1) - 1) // stride) + 1


def shape_float(size, kernel, stride=1, padding=0, dilation=1):
    return (size + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1


def _backward(x, w, grad_out, stride, padding, output_size=None, fold_padding=None, dw_scale=1.0):
    n, _, h, wd = x.shape
    c_out, _, kh, kw = w.shape
    cols = F.unfold(x, (kh, kw), padding=padding, stride=stride)  # [N, C_in*kh*kw, L]
    g = grad_out.reshape(n, c_out, -1)  # [N, C_out, L]
    dw = (g @ cols.transpose(1, 2)).sum(0).reshape(w.shape) * dw_scale
    dcols = w.reshape(c_out, -1).T @ g
    fp = padding if fold_padding is None else fold_padding
    dx = F.fold(dcols, output_size or (h, wd), (kh, kw), padding=fp, stride=stride)
    return dx, dw


def backward_right(x, w, grad_out, stride=1, padding=0):
    return _backward(x, w, grad_out, stride, padding)


def backward_dw_mean(x, w, grad_out, stride=1, padding=0):
    return _backward(x, w, grad_out, stride, padding, dw_scale=1 / len(x))


def backward_dx_keeps_padding(x, w, grad_out, stride=1, padding=0):
    _, _, h, wd = x.shape
    return _backward(x, w, grad_out, stride, padding, output_size=(h + 2 * padding, wd + 2 * padding), fold_padding=0)


def backward_h_w_swapped(x, w, grad_out, stride=1, padding=0):
    _, _, h, wd = x.shape
    try:
        return _backward(x, w, grad_out, stride, padding, output_size=(wd, h))
    except RuntimeError:  # fold refuses when the block count no longer matches: a transposed result instead
        dx, dw = _backward(x, w, grad_out, stride, padding)
        return dx.transpose(-1, -2), dw


def backward_full_correlation(x, w, grad_out, stride=1, padding=0):
    """dx as the stride-1 rule: correlate the zero-padded grad_out with the flipped, transposed kernel (right for
    stride 1 only: with a stride, grad_out needs zeros between its entries first)."""
    _, dw = _backward(x, w, grad_out, stride, padding)
    n, c_in, h, wd = x.shape
    c_out, _, kh, kw = w.shape
    gp = F.pad(grad_out, (kw - 1, kw - 1, kh - 1, kh - 1))
    cols = F.unfold(gp, (kh, kw))  # [N, C_out*kh*kw, L']
    wt = w.flip(-1, -2).transpose(0, 1).reshape(c_in, -1)
    full = (wt @ cols).reshape(n, c_in, gp.shape[-2] - kh + 1, gp.shape[-1] - kw + 1)
    return full[..., padding: padding + h, padding: padding + wd], dw


def backward_autograd(x, w, grad_out, stride=1, padding=0):
    with torch.enable_grad():
        xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
        F.conv2d(xr, wr, stride=stride, padding=padding).backward(grad_out)
    return xr.grad, wr.grad


def backward_nn_grad(x, w, grad_out, stride=1, padding=0):
    return (torch.nn.grad.conv2d_input(x.shape, w, grad_out, stride=stride, padding=padding),
            torch.nn.grad.conv2d_weight(x, w.shape, grad_out, stride=stride, padding=padding))


def backward_transpose_conv(x, w, grad_out, stride=1, padding=0):
    _, dw = _backward(x, w, grad_out, stride, padding)
    h, wd = x.shape[-2:]
    dx = F.conv_transpose2d(grad_out, w, stride=stride, padding=padding)
    return F.pad(dx, (0, wd - dx.shape[-1], 0, h - dx.shape[-2])), dw


# --- 03.fix_flatten ---------------------------------------------------------------------------------------------


def _post_size(n, rounding=lambda a, b: a // b):
    n = n - 4  # conv1, 5x5
    n = rounding(n, 2)  # pool
    n = n - 4  # conv2
    return rounding(n, 2)


class PostNet(nn.Module):  # the post's network as posted: fc1 and the view fixed for 32x32 images
    def __init__(self, height, width, n_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(self.flat(height, width), 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, n_classes)

    def flat(self, height, width):
        return 16 * 5 * 5

    def flatten(self, x):
        return x.view(-1, 16 * 5 * 5)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = self.flatten(x)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class NetFlattenOnly(PostNet):  # x.flatten(1), but fc1 still sized for 32x32
    def flatten(self, x):
        return x.flatten(1)


class NetSquare(NetFlattenOnly):  # fc1 sized from the height twice: assumes square images
    def flat(self, height, width):
        return 16 * _post_size(height) ** 2


class NetRoundsUp(NetFlattenOnly):  # ceil after each pool: wrong for odd sizes
    def flat(self, height, width):
        up = lambda a, b: -(-a // b)  # noqa: E731
        return 16 * _post_size(height, up) * _post_size(width, up)


class NetRightSizeView(PostNet):  # fc1 right, but the view still hard-codes 16 * 5 * 5
    def flat(self, height, width):
        return 16 * _post_size(height) * _post_size(width)


class NetGlobalPool(nn.Module):  # another fix, but not the task's: global average pooling, fc1 with 16 inputs
    def __init__(self, height, width, n_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, n_classes)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x))).mean((2, 3))
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class NetNoReluAfterFc(NetRightSizeView):  # sizes right, but the ReLUs between the linear layers dropped
    def flatten(self, x):
        return x.flatten(1)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        return self.fc3(self.fc2(self.fc1(x.flatten(1))))


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
    "03.conv2d_backward": {"dw averaged over the batch": Mutant(backward_dw_mean, "sum over the batch"),
                           "dx keeps the padding": Mutant(backward_dx_keeps_padding, "crop"),
                           "H and W swapped": Mutant(backward_h_w_swapped, "swapped"),
                           "stride-1 rule for dx": Mutant(backward_full_correlation, "dx"),
                           "autograd": Mutant(backward_autograd, "calls"),
                           "torch.nn.grad": Mutant(backward_nn_grad, "calls"),
                           "F.conv_transpose2d": Mutant(backward_transpose_conv, "calls")},
    "03.maxpool": {"calls F.max_pool2d": Mutant(pool_with_F, "calls max_pool2d"), "average pooling": pool_average,
                   "no crop": pool_no_crop},
    "03.fix_flatten": {"the post's network": Mutant(PostNet, "batch"),
                       "flatten(1), fc1 still for 32x32": Mutant(NetFlattenOnly, "fc1"),
                       "fc1 for square images": Mutant(NetSquare, "width"),
                       "rounds up after pooling": Mutant(NetRoundsUp, "fc1"),
                       "fc1 right, view(-1, 400) kept": Mutant(NetRightSizeView, "flatten(1)"),
                       "global average pooling": Mutant(NetGlobalPool, "keep the post's layers"),
                       "ReLUs dropped": Mutant(NetNoReluAfterFc, "relu")},
}
