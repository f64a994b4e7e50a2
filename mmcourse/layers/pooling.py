"""Max and average pooling from scratch, on top of :func:`mmcourse.layers.conv.im2col`.

Chapter 3 (``book/03_convolution.ipynb``) uses them to shrink feature maps; both equal ``F.max_pool2d`` and
``F.avg_pool2d`` (``ceil_mode=False``; average pooling counts padded zeros, as torch does by default).
"""

from __future__ import annotations

from torch import Tensor

from mmcourse.layers.conv import Pair, _pair, conv_output_shape, im2col


def _pool_columns(x: Tensor, kernel_size: Pair, stride: Pair | None, padding: Pair, dilation: Pair,
                  pad_value: float, name: str) -> tuple[Tensor, tuple[int, int]]:
    if x.dim() != 4:
        raise ValueError(f"{name}: input must be 4-D [batch, channels, height, width], got shape {list(x.shape)}")
    k = _pair(kernel_size, "kernel_size")
    s = k if stride is None else _pair(stride, "stride")
    p = _pair(padding, "padding")
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(f"{name}: padding {p} must be at most half the kernel size {k}")
    n, c, h, w = x.shape
    ho, wo = conv_output_shape((h, w), k, s, p, dilation)
    cols = im2col(x, k, s, p, dilation, pad_value=pad_value)  # [N, C*kH*kW, L]
    return cols.view(n, c, k[0] * k[1], ho * wo), (ho, wo)


def max_pool2d(x: Tensor, kernel_size: Pair, stride: Pair | None = None, padding: Pair = 0,
               dilation: Pair = 1) -> Tensor:
    """Largest value in each window: ``[N, C, H, W] -> [N, C, H_out, W_out]`` (stride defaults to the kernel)."""
    cols, (ho, wo) = _pool_columns(x, kernel_size, stride, padding, dilation, float("-inf"), "max_pool2d")
    return cols.amax(dim=2).view(x.shape[0], x.shape[1], ho, wo)


def avg_pool2d(x: Tensor, kernel_size: Pair, stride: Pair | None = None, padding: Pair = 0) -> Tensor:
    """Mean of each window (padded zeros count, like ``F.avg_pool2d``'s default ``count_include_pad=True``)."""
    cols, (ho, wo) = _pool_columns(x, kernel_size, stride, padding, 1, 0.0, "avg_pool2d")
    return cols.mean(dim=2).view(x.shape[0], x.shape[1], ho, wo)
