"""2-D convolution from scratch: naive loops, im2col + one matmul, the output-shape formula, receptive fields.

Chapter 3 (``book/03_convolution.ipynb``) goes from :func:`conv2d_naive` (readable, slow: small inputs only)
to :func:`conv2d_im2col` (gather every patch into a column, then a single batched matmul), checks both
against ``F.conv2d`` for stride, padding, dilation and groups, and uses :class:`Conv2d` in a small CNN.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn

Pair = int | tuple[int, int]


def _pair(v: Pair, name: str) -> tuple[int, int]:
    p = (v, v) if isinstance(v, int) else tuple(v)
    if len(p) != 2 or not all(isinstance(i, int) for i in p):
        raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}")
    return p  # type: ignore[return-value]


def conv_output_shape(size: Pair, kernel_size: Pair, stride: Pair = 1, padding: Pair = 0,
                      dilation: Pair = 1) -> tuple[int, int]:
    """``out = floor((in + 2 p - d (k - 1) - 1) / s) + 1`` per spatial dimension.

    Raises:
        ValueError: the kernel (after dilation) does not fit in the padded input, or a size is not positive.
    """
    (h, w), (kh, kw) = _pair(size, "size"), _pair(kernel_size, "kernel_size")
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride, "stride"), _pair(padding, "padding"), _pair(dilation, "dilation")
    if min(kh, kw, sh, sw, dh, dw) < 1 or min(ph, pw) < 0:
        raise ValueError(f"kernel, stride and dilation must be >= 1 and padding >= 0; got kernel {(kh, kw)}, "
                         f"stride {(sh, sw)}, padding {(ph, pw)}, dilation {(dh, dw)}")
    out = []
    for n, k, s, p, d in ((h, kh, sh, ph, dh), (w, kw, sw, pw, dw)):
        span = d * (k - 1) + 1  # the dilated kernel's extent
        if n + 2 * p < span:
            raise ValueError(f"the dilated kernel spans {span} pixels but the padded input has only {n + 2 * p} "
                             f"(input {(h, w)}, padding {(ph, pw)}); make the input larger or the kernel smaller")
        out.append((n + 2 * p - span) // s + 1)
    return out[0], out[1]


def _check_conv(x: Tensor, weight: Tensor, bias: Tensor | None, groups: int) -> None:
    if weight.dim() != 4:
        raise ValueError(f"conv2d: weight must be 4-D [out_channels, in_channels/groups, kH, kW], "
                         f"got shape {list(weight.shape)}")
    if x.dim() != 4:
        raise ValueError(f"conv2d: input must be 4-D [batch, channels, height, width], got shape {list(x.shape)}"
                         + ("; add a batch dimension with x.unsqueeze(0)" if x.dim() == 3 else ""))
    if groups < 1 or x.shape[1] % groups or weight.shape[0] % groups:
        raise ValueError(f"conv2d: groups={groups} must divide both input channels ({x.shape[1]}) and output "
                         f"channels ({weight.shape[0]})")
    if x.shape[1] != weight.shape[1] * groups:
        rgb = "; an RGB image has 3 channels" if 3 in (x.shape[1], weight.shape[1] * groups) else ""
        raise ValueError(f"conv2d: input has {x.shape[1]} channels but weight expects {weight.shape[1] * groups} "
                         f"(weight shape {list(weight.shape)}, groups={groups}){rgb}")
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(f"conv2d: bias must have shape [{weight.shape[0]}], got {list(bias.shape)}")


def im2col(x: Tensor, kernel_size: Pair, stride: Pair = 1, padding: Pair = 0, dilation: Pair = 1,
           pad_value: float = 0.0) -> Tensor:
    """Every receptive-field patch of ``x [N, C, H, W]`` as a column: ``[N, C*kH*kW, H_out*W_out]``.

    The same layout as ``F.unfold``. It loops over the ``kH*kW`` kernel offsets only (never over samples
    or pixels): offset ``(i, j)`` of every patch is one strided slice of the padded input.
    """
    (kh, kw), (sh, sw) = _pair(kernel_size, "kernel_size"), _pair(stride, "stride")
    (ph, pw), (dh, dw) = _pair(padding, "padding"), _pair(dilation, "dilation")
    n, c, h, w = x.shape
    ho, wo = conv_output_shape((h, w), (kh, kw), (sh, sw), (ph, pw), (dh, dw))
    xp = torch.nn.functional.pad(x, (pw, pw, ph, ph), value=pad_value)
    cols = [xp[:, :, i * dh: i * dh + sh * (ho - 1) + 1: sh, j * dw: j * dw + sw * (wo - 1) + 1: sw]
            for i in range(kh) for j in range(kw)]  # each [N, C, H_out, W_out]
    return torch.stack(cols, dim=2).reshape(n, c * kh * kw, ho * wo)


def conv2d_im2col(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Pair = 1, padding: Pair = 0,
                  dilation: Pair = 1, groups: int = 1) -> Tensor:
    """Convolution (cross-correlation, like ``F.conv2d``) as im2col followed by one batched matmul.

    Args:
        x: ``[N, C_in, H, W]``; weight: ``[C_out, C_in/groups, kH, kW]``; bias: ``[C_out]`` or None.

    Returns:
        ``[N, C_out, H_out, W_out]`` with ``H_out, W_out`` from :func:`conv_output_shape`.
    """
    _check_conv(x, weight, bias, groups)
    n, (h, w) = x.shape[0], x.shape[2:]
    c_out, c_g, kh, kw = weight.shape
    ho, wo = conv_output_shape((h, w), (kh, kw), stride, padding, dilation)
    cols = im2col(x, (kh, kw), stride, padding, dilation)  # [N, C_in*kH*kW, L]
    cols = cols.view(n, groups, c_g * kh * kw, ho * wo)  # channels of one group are contiguous
    wg = weight.reshape(groups, c_out // groups, c_g * kh * kw)  # [G, O/G, K]
    out = torch.einsum("gok,ngkl->ngol", wg, cols).reshape(n, c_out, ho, wo)
    return out + bias.view(1, -1, 1, 1) if bias is not None else out


def conv2d_naive(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Pair = 1, padding: Pair = 0,
                 dilation: Pair = 1, groups: int = 1) -> Tensor:
    """Convolution as the definition reads: slide the kernel over every output position. Small inputs only.

    ``out[n, o, y, x] = b[o] + sum_{c, i, j} w[o, c, i, j] * in[n, g*C_g + c, y*s + i*d, x*s + j*d]``.
    """
    _check_conv(x, weight, bias, groups)
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride, "stride"), _pair(padding, "padding"), _pair(dilation, "dilation")
    c_out, c_g, kh, kw = weight.shape
    ho, wo = conv_output_shape(tuple(x.shape[2:]), (kh, kw), (sh, sw), (ph, pw), (dh, dw))
    xp = torch.nn.functional.pad(x, (pw, pw, ph, ph))
    o_g = c_out // groups
    rows = []
    for y in range(ho):
        row = []
        for xx in range(wo):
            patch = xp[:, :, y * sh: y * sh + dh * (kh - 1) + 1: dh, xx * sw: xx * sw + dw * (kw - 1) + 1: dw]
            outs = [torch.einsum("ncij,ocij->no", patch[:, g * c_g:(g + 1) * c_g], weight[g * o_g:(g + 1) * o_g])
                    for g in range(groups)]  # each [N, O/G]
            row.append(torch.cat(outs, dim=1))
        rows.append(torch.stack(row, dim=-1))  # [N, C_out, W_out]
    out = torch.stack(rows, dim=-2)  # [N, C_out, H_out, W_out]
    return out + bias.view(1, -1, 1, 1) if bias is not None else out


class Conv2d(nn.Module):
    """A convolution layer built on :func:`conv2d_im2col`, He-initialised like a ReLU network wants."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Pair, stride: Pair = 1,
                 padding: Pair = 0, dilation: Pair = 1, groups: int = 1, bias: bool = True) -> None:
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}")
        kh, kw = _pair(kernel_size, "kernel_size")
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        fan_in = in_channels // groups * kh * kw
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels // groups, kh, kw) * math.sqrt(2 / fan_in))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return conv2d_im2col(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


def receptive_field(layers: Iterable[tuple[int, int] | tuple[int, int, int] | nn.Module]) -> int:
    """Side of the input region one output pixel sees, after a stack of convolutions / poolings.

    ``layers`` holds ``(kernel, stride)`` or ``(kernel, stride, dilation)`` tuples, or ``nn.Conv2d`` /
    ``nn.MaxPool2d`` / ``nn.AvgPool2d`` / :class:`Conv2d` modules (others are skipped: they act per pixel).
    Recurrence: ``r += (d (k - 1)) * j`` then ``j *= s``, starting from ``r = j = 1``.
    """
    r, jump = 1, 1
    for layer in layers:
        k, s, d = _kernel_stride_dilation(layer)
        if k is None:
            continue
        r += d * (k - 1) * jump
        jump *= s
    return r


def _kernel_stride_dilation(layer: object) -> tuple[int | None, int, int]:
    if isinstance(layer, Sequence) and not isinstance(layer, nn.Module):
        k, s, *rest = layer
        return int(k), int(s), int(rest[0]) if rest else 1
    if isinstance(layer, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d, Conv2d)):
        if isinstance(layer, Conv2d):
            k = layer.weight.shape[-1]
        else:
            k = _pair(layer.kernel_size, "kernel_size")[0]
        s = layer.stride if layer.stride is not None else k
        s = _pair(s, "stride")[0]
        d = _pair(getattr(layer, "dilation", 1), "dilation")[0]
        return k, s, d
    return None, 1, 1


def empirical_receptive_field(model: nn.Module, in_channels: int, size: int) -> int:
    """Measure the receptive field: the side of the input region whose gradient reaches the centre output.

    Uses a batch of 8 random inputs. ReLUs and max-pools can block the gradient to some pixels (a dead unit
    blocks all of it), so measure a stack without them (the receptive field does not depend on them).

    Raises:
        ValueError: no input pixel received a gradient (a dead ReLU?).
    """
    x = torch.randn(8, in_channels, size, size, requires_grad=True)
    y = model(x)  # [8, C, H', W']
    y[:, :, y.shape[2] // 2, y.shape[3] // 2].sum().backward()
    hit = x.grad.abs().sum((0, 1)) > 0  # [H, W]
    if not hit.any():
        raise ValueError("no input pixel received a gradient from the centre output; remove ReLUs / max-pools "
                         "from the measured model (they do not change the receptive field)")
    rows, cols = hit.any(1).nonzero(), hit.any(0).nonzero()
    return int(max(rows.max() - rows.min() + 1, cols.max() - cols.min() + 1))
