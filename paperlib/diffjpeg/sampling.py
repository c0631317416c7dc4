"""4:2:0 chroma down- and up-sampling as libjpeg 6b / libjpeg-turbo (Pillow) do it.

Encoder (jcsample.c ``h2v2_downsample``): the full-resolution chroma plane is edge-replicated
to an even number of rows and to a multiple of 16 columns, each 2x2 group is summed and
``(sum + bias) >> 2`` taken with bias 1, 2, 1, 2, ... along a row (an unbiased ordered
dither); the down-sampled plane's last row is then replicated to a multiple of 8 rows.

Decoder (jdsample.c ``h2v2_fancy_upsample``, the default): a separable triangle filter.
Vertically each output row is ``3 * nearer + further`` input row; horizontally
``(3 * this + neighbour + 8) >> 4`` for even and ``+ 7`` for odd output columns; edges use
the component's own last row/column (of its ceil(H/2) x ceil(W/2) samples), not the padding.
libjpeg uses the triangle filter only when the down-sampled plane is more than 2 samples wide
(W > 4); narrower planes are up-sampled by replicating each sample 2x2.

libjpeg 9 does neither: it scales the chroma by a 16x16 DCT in both directions (``dct.fdct``
and ``dct.idct`` with 16x16 blocks), so its codec path has no separate sampling step.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .dct import pad_edges
from .quantization import floor_ste

__all__ = ["downsample", "upsample", "downsample_float", "upsample_float"]


def downsample(c: torch.Tensor) -> torch.Tensor:
    """``... x H x W`` integer chroma -> ``... x 8*ceil(H/16) x 8*ceil(W/16)``, as libjpeg 6b/turbo."""
    c = pad_edges(c, 2, 16)
    s = c[..., 0::2, 0::2] + c[..., 0::2, 1::2] + c[..., 1::2, 0::2] + c[..., 1::2, 1::2]
    bias = torch.tensor([1.0, 2.0], dtype=c.dtype, device=c.device).repeat(s.shape[-1] // 2)
    return pad_edges(floor_ste((s + bias) / 4.0), 8, 1)


def upsample(c: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Decoded ``... x ceil(h/2) x ceil(w/2)`` chroma -> ``... x h x w`` by libjpeg's fancy (triangle) filter."""
    if c.shape[-2:] != ((h + 1) // 2, (w + 1) // 2):
        raise ValueError(f"chroma of shape {tuple(c.shape[-2:])} does not belong to an image of {h}x{w}")
    if c.shape[-1] <= 2:
        return upsample_float(c)[..., :h, :w]
    up = torch.cat([c[..., :1, :], c[..., :-1, :]], dim=-2)
    down = torch.cat([c[..., 1:, :], c[..., -1:, :]], dim=-2)
    rows = torch.stack([3 * c + up, 3 * c + down], dim=-2).flatten(-3, -2)   # 2h' x w'
    left = torch.cat([rows[..., :1], rows[..., :-1]], dim=-1)
    right = torch.cat([rows[..., 1:], rows[..., -1:]], dim=-1)
    even = floor_ste((3 * rows + left + 8) / 16.0)
    odd = floor_ste((3 * rows + right + 7) / 16.0)
    return torch.stack([even, odd], dim=-1).flatten(-2)[..., :h, :w]


def downsample_float(c: torch.Tensor) -> torch.Tensor:
    """Ideal 2x2 mean of an ``N x H x W`` plane (H, W even): the real part of ``downsample``."""
    return F.avg_pool2d(c[:, None], 2)[:, 0]


def upsample_float(c: torch.Tensor) -> torch.Tensor:
    """Pseudo-inverse of ``downsample_float`` (pixel replication): moves a plane by the least change."""
    return c.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)
