"""Quantization tables and the roundings of the codec, with straight-through gradients.

Every rounding libjpeg does (fixed-point descales, chroma averaging, coefficient
quantization, 8-bit output) is an integer operation; here each is computed exactly
in float64 (every intermediate is exactly representable) and given the gradient of the
identity (straight-through, d round(x)/dx = 1, as Man et al. Sec. 4.2 do), so the
forward pass equals the codec and the backward pass is that of the same pipeline
without rounding.

Tables are tensors of shape N x C x 8 x 8 (natural row-major order, rows = vertical
frequency): one 8x8 table per image and per component (Y or Y, Cb, Cr).
"""
from __future__ import annotations

import numpy as np
import torch

from .. import jpeg

__all__ = ["floor_ste", "round_ste", "qf_tables", "as_tables", "quantize"]


def _straight_through(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``y`` (computed from ``x`` without a useful gradient) forward, the identity's gradient backward."""
    if not (torch.is_grad_enabled() and x.requires_grad):
        return y
    return x + (y - x).detach()


def floor_ste(x: torch.Tensor) -> torch.Tensor:
    """``floor(x)`` forward, gradient 1 (libjpeg's right shift of a scaled integer)."""
    return _straight_through(x, torch.floor(x))


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round half away from zero forward (libjpeg's quantizer), gradient 1."""
    return _straight_through(x, torch.sign(x) * torch.floor(x.abs() + 0.5))


def qf_tables(qf: int, channels: int) -> torch.Tensor:
    """The IJG tables at ``qf`` (baseline-clamped, as ``paperlib.jpeg.ijg_table``) as C x 8 x 8."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (gray) or 3 (RGB), got {channels}")
    t = jpeg.ijg_tables(qf, channels == 3)
    return torch.from_numpy(t[[0, 1, 1]] if channels == 3 else t).double()


def as_tables(tables, n: int, channels: int, device=None) -> torch.Tensor:
    """Normalise ``tables`` to an N x C x 8 x 8 float64 tensor (one table per image and component).

    Accepted: an 8x8 table (used for every component); T x 8 x 8 or N x T x 8 x 8 with T = 1
    (all components), 2 (luma, chroma: the IJG slots 0 and 1) or 3 (Y, Cb, Cr); a dict of
    slots as ``paperlib.jpeg.quant_tables`` returns (0: luma, 1: chroma).
    """
    if isinstance(tables, dict):
        if 0 not in tables or (channels == 3 and 1 not in tables):
            raise ValueError(f"table dict needs slot 0{' and 1' if channels == 3 else ''}, got {sorted(tables)}")
        tables = np.stack([tables[0]] if channels == 1 else [tables[0], tables[1]])
    t = torch.as_tensor(np.asarray(tables) if not torch.is_tensor(tables) else tables).to(device, torch.float64)
    if t.shape[-2:] != (8, 8):
        raise ValueError(f"quantization tables must be 8x8, got shape {tuple(t.shape)}")
    if t.ndim == 2:
        t = t[None]
    if t.ndim == 3:
        t = t[None].expand(n, -1, -1, -1)
    if t.ndim != 4 or t.shape[0] != n:
        raise ValueError(f"expected tables of shape (8,8), (T,8,8) or ({n},T,8,8), got {tuple(t.shape)}")
    if t.shape[1] == 2 and channels == 3:
        t = t[:, [0, 1, 1]]
    elif t.shape[1] == 1:
        t = t.expand(-1, channels, -1, -1)
    if t.shape[1] != channels:
        raise ValueError(f"{t.shape[1]} tables given for {channels} component(s)")
    if not (torch.all(t == torch.round(t)) and t.min() >= 1 and t.max() <= 32767):
        raise ValueError("quantization table entries must be integers in 1..32767")
    return t.contiguous()


def quantize(coef: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """libjpeg's quantizer: ``coef / q`` rounded half away from zero (straight-through gradient).

    ``coef`` is the exact DCT output in DCT units (libjpeg's value / 8), ``table`` broadcasts
    against it. libjpeg computes ``(|8 coef| + 4q) // (8q)`` with the sign restored; in float64
    ``coef / q`` is the correctly rounded quotient of two integers / 8, so a tie is detected exactly
    and no non-tie lies within float64 error of one.
    """
    return round_ste(coef / table)
