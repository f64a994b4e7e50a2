"""Drawing the synthetic world's shapes: soft masks from coordinate grids, for images and video frames.

Used by :mod:`mmcourse.data.world` (chapter 00). Every function works on a whole batch at once; the only
Python loop is over the 10 shape classes, never over samples.
"""

from __future__ import annotations

import torch
from torch import Tensor

SHAPES = ("circle", "square", "triangle", "diamond", "cross", "ring", "star", "hexagon", "bar", "crescent")
COLORS = ("red", "green", "blue", "yellow", "purple", "orange")
SIZES = ("small", "medium", "large")
MOTIONS = ("right", "left", "down", "up")
# RGB in [0, 1] of each colour class.
COLOR_RGB = ((0.90, 0.15, 0.15), (0.15, 0.80, 0.25), (0.20, 0.35, 0.95),
             (0.95, 0.90, 0.15), (0.65, 0.20, 0.85), (1.00, 0.55, 0.05))
RADIUS = (4.0, 6.0, 8.0)  # pixels, per size class
MOTION_XY = ((1.0, 0.0), (-1.0, 0.0), (0.0, 1.0), (0.0, -1.0))  # (dx, dy) per motion class; y points down
SIZE_PX = 32


def _level(k: int, u: Tensor, v: Tensor) -> Tensor:
    """A level function of shape ``k`` in units of the radius: the shape is where it is <= 1."""
    rho = torch.sqrt(u * u + v * v + 1e-12)
    au, av = u.abs(), v.abs()
    if k == 0:  # circle
        return rho
    if k == 1:  # square
        return torch.maximum(au, av) / 0.8
    if k == 2:  # triangle pointing up: three half-planes
        e1 = v
        e2 = -0.866 * u - 0.5 * v
        e3 = 0.866 * u - 0.5 * v
        return torch.maximum(torch.maximum(e1, e2), e3) / 0.55
    if k == 3:  # diamond
        return au + av
    if k == 4:  # plus-shaped cross
        return torch.minimum(torch.maximum(au / 0.3, av), torch.maximum(au, av / 0.3))
    if k == 5:  # ring
        return (rho - 0.72).abs() / 0.28
    if k == 6:  # five-pointed star (tip at the top)
        phi = torch.atan2(u, -v)
        return rho / (0.6 + 0.4 * torch.cos(5 * phi))
    if k == 7:  # hexagon
        return torch.maximum(au * 0.866 + av * 0.5, av) / 0.88
    if k == 8:  # horizontal bar
        return torch.maximum(au, av / 0.3)
    if k == 9:  # crescent: a disc minus a shifted disc
        d2 = torch.sqrt((u - 0.45) ** 2 + (v + 0.1) ** 2 + 1e-12)
        return torch.maximum(rho, 0.8 / d2)
    raise ValueError(f"shape class {k} is not in 0..{len(SHAPES) - 1}")


def shape_alpha(shape: Tensor, cx: Tensor, cy: Tensor, radius: Tensor, angle: Tensor | None = None,
                size: int = SIZE_PX) -> Tensor:
    """Anti-aliased coverage ``[B, size, size]`` in [0, 1] of one shape per sample.

    Args:
        shape: int64 ``[B]`` shape classes; cx, cy: centres in pixels ``[B]``; radius: pixels ``[B]``;
        angle: optional rotation in radians ``[B]``.

    Coordinates are built per row and per column (``[b, 1, S]`` and ``[b, S, 1]``) and only broadcast to
    full images inside the level functions, so each pixel is touched a handful of times.
    """
    dev = cx.device
    grid = torch.arange(size, device=dev, dtype=torch.float32)
    out = torch.empty(shape.shape[0], size, size, device=dev)
    for k in range(len(SHAPES)):
        sel = (shape == k).nonzero().squeeze(1)
        if sel.numel() == 0:
            continue
        r = radius.index_select(0, sel).view(-1, 1, 1)
        ax = (grid.view(1, 1, size) - cx.index_select(0, sel).view(-1, 1, 1)) / r  # [b, 1, S]
        ay = (grid.view(1, size, 1) - cy.index_select(0, sel).view(-1, 1, 1)) / r  # [b, S, 1]
        if angle is None:
            u, v = ax, ay
        else:
            a = angle.index_select(0, sel).view(-1, 1, 1)
            c, s = torch.cos(a), torch.sin(a)
            u, v = c * ax + s * ay, c * ay - s * ax  # [b, S, S]
        # level 1 is the edge; (1 - level) * radius is about the distance to the edge in pixels
        cover = (1.0 - _level(k, u, v)).mul_(r).add_(0.5).clamp_(0.0, 1.0)
        out.index_copy_(0, sel, cover.expand(-1, size, size))
    return out


def clutter_background(n: int, amount: float, gen: torch.Generator, device: torch.device,
                       n_blobs: int = 3, size: int = SIZE_PX) -> Tensor:
    """``[n, 3, size, size]`` background of ``n_blobs`` soft coloured blobs, scaled by ``amount``."""
    if amount == 0:
        return torch.zeros(n, 3, size, size, device=device)
    pos = torch.rand(n, n_blobs, 2, generator=gen, device=device) * size
    width = 2.0 + 4.0 * torch.rand(n, n_blobs, 1, generator=gen, device=device)
    rgb = torch.rand(n, n_blobs, 3, generator=gen, device=device)
    grid = torch.arange(size, device=device, dtype=torch.float32).view(1, 1, size)
    # a Gaussian blob is separable: exp(-(dx² + dy²)/2w²) = exp(-dx²/2w²) · exp(-dy²/2w²)
    gx = torch.exp(-((grid - pos[..., 0:1]) ** 2) / (2 * width**2))  # [n, n_blobs, S]
    gy = torch.exp(-((grid - pos[..., 1:2]) ** 2) / (2 * width**2))
    return amount * torch.einsum("nbh,nbw,nbc->nchw", gy, gx, rgb)
