"""8x8 blocks, libjpeg's integer "islow" DCT (exact) and the ideal orthonormal DCT.

libjpeg's default DCT (``JDCT_ISLOW``, jfdctint.c / jidctint.c, identical in libjpeg 6b,
libjpeg-turbo and libjpeg 9e for 8x8 blocks) is two 1-D passes, each an integer linear map
with 13-bit fixed-point constants followed by a rounding right shift. Its butterflies only
add and multiply by constants, so each pass equals an integer matrix product: the matrices
below are those products (the butterflies evaluated on unit vectors), i.e.
``round(2**13 * sqrt(2) * cos((2n+1) k pi / 2N))`` except for 12-16 entries per matrix that
are 1 off because a butterfly sums rounded partial constants. A pass is then
``floor((M @ v + 2**(s-1)) / 2**s)``, computed exactly in float64 with a straight-through floor,
so gradients are those of the same linear maps without rounding. (Exact: for 8-bit JPEG ranges,
coefficients below 2**11 and tables below 2**15, every sum is an integer below 2**48 times a
power of two, within float64's 53-bit significand whatever order BLAS adds in.)

The forward transform's pass shifts are 11 then 15 (8x8) or 17 (16x16, which libjpeg 9
uses to down-sample 4:2:0 chroma in the DCT domain and scales by 1/4); the inverse's are
11 then 18. ``fdct`` returns coefficients in DCT units (libjpeg's output / 8, the scale of
the orthonormal DCT); ``idct`` takes dequantized coefficients and returns samples with the
level shift (+128) undone, still unclamped.

``dct``/``idct_float`` are the ideal orthonormal transforms (same scale), used where the
real-valued cell of a JPEG is meant (projection, One-to-Many's loss), not the codec.
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from .quantization import floor_ste

__all__ = ["blockify", "unblockify", "pad_edges", "fdct", "idct", "dct", "idct_float", "dct_matrix"]

# libjpeg islow forward 8-point kernel (rows: frequency k, columns: sample n).
_F8 = [[8192, 8192, 8192, 8192, 8192, 8192, 8192, 8192],
       [11363, 9633, 6437, 2260, -2260, -6437, -9633, -11363],
       [10703, 4433, -4433, -10703, -10703, -4433, 4433, 10703],
       [9633, -2259, -11362, -6436, 6436, 11362, 2259, -9633],
       [8192, -8192, -8192, 8192, 8192, -8192, -8192, 8192],
       [6437, -11362, 2261, 9633, -9633, -2261, 11362, -6437],
       [4433, -10704, 10704, -4433, -4433, 10704, -10704, 4433],
       [2260, -6436, 9633, -11363, 11363, -9633, 6436, -2260]]
# Inverse 8-point kernel (rows: sample n, columns: frequency k).
_I8 = [[8192, 11363, 10703, 9633, 8192, 6437, 4433, 2260],
       [8192, 9633, 4433, -2259, -8192, -11362, -10704, -6436],
       [8192, 6437, -4433, -11362, -8192, 2261, 10704, 9633],
       [8192, 2260, -10703, -6436, 8192, 9633, -4433, -11363],
       [8192, -2260, -10703, 6436, 8192, -9633, -4433, 11363],
       [8192, -6437, -4433, 11362, -8192, -2261, 10704, -9633],
       [8192, -9633, 4433, 2259, -8192, 11362, -10704, 6436],
       [8192, -11363, 10703, -9633, 8192, -6437, 4433, -2260]]
# libjpeg 9's 16-point forward kernel, low 8 frequencies only (jpeg_fdct_16x16), 8 x 16;
# row k is even (k even) or odd (k odd) about the centre, so only the first 8 columns are listed.
_F16_HALF = [[8192, 8192, 8192, 8192, 8192, 8192, 8192, 8192],
             [11529, 11086, 10217, 8956, 7350, 5461, 3363, 1135],
             [11363, 9633, 6436, 2260, -2260, -6436, -9633, -11363],
             [11086, 7350, 1136, -5461, -10217, -11529, -8956, -3363],
             [10703, 4433, -4433, -10703, -10703, -4433, 4433, 10703],
             [10217, 1136, -8955, -11086, -3363, 7350, 11529, 5461],
             [9633, -2260, -11363, -6437, 6437, 11363, 2260, -9633],
             [8956, -5461, -11086, 1137, 11530, 3363, -10217, -7350]]
# libjpeg 9's 16-point inverse kernel from 8 coefficients (jpeg_idct_16x16), first 8 of 16 rows;
# row 15 - n equals row n with the odd-frequency columns negated.
_I16_HALF = [[8192, 11529, 11363, 11086, 10703, 10217, 9632, 8956],
             [8192, 11086, 9633, 7350, 4433, 1136, -2260, -5461],
             [8192, 10217, 6437, 1136, -4433, -8955, -11363, -11086],
             [8192, 8956, 2260, -5461, -10703, -11086, -6436, 1137],
             [8192, 7350, -2260, -10217, -10703, -3363, 6436, 11529],
             [8192, 5461, -6437, -11529, -4433, 7349, 11363, 3363],
             [8192, 3363, -9633, -8955, 4433, 11529, 2260, -10217],
             [8192, 1136, -11363, -3363, 10703, 5461, -9632, -7350]]


def _kernels():
    sign = torch.tensor([(-1.0) ** k for k in range(8)], dtype=torch.float64)
    f16h = torch.tensor(_F16_HALF, dtype=torch.float64)
    i16h = torch.tensor(_I16_HALF, dtype=torch.float64)
    f16 = torch.cat([f16h, f16h.flip(1) * sign[:, None]], dim=1)     # 8 x 16
    i16 = torch.cat([i16h, i16h.flip(0) * sign[None, :]], dim=0)     # 16 x 8
    return {("f", 8): torch.tensor(_F8, dtype=torch.float64), ("i", 8): torch.tensor(_I8, dtype=torch.float64),
            ("f", 16): f16, ("i", 16): i16}


_KERNELS = _kernels()
# (pass-1 shift, pass-2 shift) per transform.
_SHIFTS = {("f", 8): (11, 15), ("f", 16): (11, 17), ("i", 8): (11, 18), ("i", 16): (11, 18)}
# Each pass as floor(K @ v + 1/2) with K = M / 2**shift: scaling by a power of two is exact, and so is
# every product and partial sum (see the module docstring).
_SCALED = {key: (m / 2.0 ** _SHIFTS[key][0], m / 2.0 ** _SHIFTS[key][1]) for key, m in _KERNELS.items()}


def _pass(v: torch.Tensor, offset: float = 0.0) -> torch.Tensor:
    """One pass's rounding, ``floor(v + 1/2) + offset`` (an integer offset folded into the same add)."""
    return floor_ste(v + (0.5 + offset))


def fdct(blocks: torch.Tensor) -> torch.Tensor:
    """libjpeg islow forward DCT of ``... x b x b`` blocks of level-shifted samples (b = 8 or 16).

    Returns ``... x 8 x 8`` coefficients in DCT units, multiples of 1/8 (libjpeg's output / 8):
    what the quantizer divides by the table. For b = 16 (libjpeg 9's scaled chroma) they are half
    the orthonormal 16x16 DCT's lowest 8x8 coefficients, the same scale as an 8x8 block of the
    2x2-averaged samples.
    """
    k1, k2 = (k.to(blocks.device) for k in _SCALED[("f", blocks.shape[-1])])
    rows = _pass(blocks @ k1.T)                 # pass 1: along each row (horizontal frequency)
    return _pass(k2 @ rows) / 8.0               # pass 2: along columns


def idct(coef: torch.Tensor, size: int = 8) -> torch.Tensor:
    """libjpeg islow inverse DCT of dequantized ``... x 8 x 8`` coefficients to ``size`` x ``size`` samples.

    Returns the samples with +128 added, before libjpeg's range limit (the caller clamps to 0..255).
    ``size = 16`` is libjpeg 9's 16x16 output from an 8x8 block (its 4:2:0 chroma up-sampling).
    """
    k1, k2 = (k.to(coef.device) for k in _SCALED[("i", size)])
    cols = _pass(k1 @ coef)                     # pass 1: columns (vertical)
    return _pass(cols @ k2.T, 128.0)            # pass 2: rows, level shift undone


def dct_matrix(n: int, dtype=torch.float64, device=None) -> torch.Tensor:
    """Orthonormal DCT-II matrix (rows: frequency), the scale JPEG's 8x8 DCT has."""
    k = torch.arange(n, dtype=dtype, device=device)[:, None]
    j = torch.arange(n, dtype=dtype, device=device)[None, :]
    c = torch.cos((2 * j + 1) * k * math.pi / (2 * n)) * math.sqrt(2.0 / n)
    c[0] /= math.sqrt(2.0)
    return c


@functools.lru_cache(maxsize=None)
def _dct_matrix(n: int, dtype, device) -> torch.Tensor:
    """``dct_matrix`` made once per size, dtype and device (Ours-P's projection passes called it ~50,000 times per
    notebook run); an ordinary tensor even when first asked for under ``torch.inference_mode``, so autograd can use
    it later."""
    with torch.inference_mode(False):
        return dct_matrix(n, dtype, device)


def dct(blocks: torch.Tensor) -> torch.Tensor:
    """Ideal orthonormal 2-D DCT of ``... x b x b`` blocks (b = 8, or 16: lowest 8x8 halved, as ``fdct``)."""
    b = blocks.shape[-1]
    c = _dct_matrix(b, blocks.dtype, blocks.device)
    out = c @ blocks @ c.T
    return out if b == 8 else out[..., :8, :8] / 2.0


def idct_float(coef: torch.Tensor, size: int = 8) -> torch.Tensor:
    """Inverse of ``dct`` (for size 16: zero-padded to 16x16 and doubled, the minimum-norm inverse)."""
    c = _dct_matrix(size, coef.dtype, coef.device)
    if size == 16:
        coef = F.pad(coef * 2.0, (0, 8, 0, 8))
    return c.T @ coef @ c


def pad_edges(x: torch.Tensor, mult_h: int, mult_w: int) -> torch.Tensor:
    """Replicate the last row/column of ``... x H x W`` up to multiples of ``mult_h`` x ``mult_w`` (libjpeg)."""
    h, w = x.shape[-2:]
    ph, pw = -h % mult_h, -w % mult_w
    if ph:
        x = torch.cat([x, x[..., -1:, :].expand(*x.shape[:-2], ph, w)], dim=-2)
    if pw:
        x = torch.cat([x, x[..., -1:].expand(*x.shape[:-1], pw)], dim=-1)
    return x


def blockify(x: torch.Tensor, b: int) -> torch.Tensor:
    """``N x H x W`` (H, W multiples of b) -> ``N x H/b x W/b x b x b``."""
    n, h, w = x.shape
    return x.reshape(n, h // b, b, w // b, b).transpose(2, 3)


def unblockify(blocks: torch.Tensor) -> torch.Tensor:
    """Inverse of ``blockify``."""
    n, hb, wb, b, _ = blocks.shape
    return blocks.transpose(2, 3).reshape(n, hb * b, wb * b)
