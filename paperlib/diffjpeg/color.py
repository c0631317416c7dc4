"""libjpeg's RGB <-> YCbCr (JFIF, full range) in 16-bit fixed point, exactly, and the ideal one.

libjpeg converts with integer tables ``FIX(c) = round(c * 2**16)`` and rounds by adding
``ONE_HALF`` (2**15) before the right shift; Cb and Cr add ``ONE_HALF - 1`` so that they never
exceed 255. The two codecs use slightly different constants (so the same RGB pixel can get a Cb
one level apart): libjpeg 6b and libjpeg-turbo (Pillow) the 5-digit ones of the JFIF note,
libjpeg 9 the 9-digit ones. The decoder's red/blue terms are table lookups rounded to nearest,
green is one rounded sum; the result is range-limited to 0..255 (``torch.clamp``: gradient 1
inside, 0 where clamped).
"""
from __future__ import annotations

import torch

from .quantization import floor_ste

__all__ = ["CONSTANTS", "rgb_to_ycbcr", "ycbcr_to_rgb", "rgb_to_ycbcr_float", "ycbcr_to_rgb_float"]

# (Cb <- R, Cb <- G, Cr <- G, Cr <- B) for the encoder, (Cr -> R, Cb -> B, Cr -> G, Cb -> G) for the decoder.
CONSTANTS = {
    "pillow": {"enc": (0.16874, 0.33126, 0.41869, 0.08131), "dec": (1.40200, 1.77200, 0.71414, 0.34414)},
    "libjpeg9": {"enc": (0.168735892, 0.331264108, 0.418687589, 0.081312411),
                 "dec": (1.402, 1.772, 0.714136286, 0.344136286)},
}
_ONE = 65536.0
_HALF = 32768.0


def _fix(c: float) -> float:
    return float(int(c * _ONE + 0.5))


def _apply(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The colour matrix ``m`` (K x C) applied to every pixel of N x C x H x W ``x``."""
    n, c, h, w = x.shape
    return (m @ x.reshape(n, c, h * w)).reshape(n, m.shape[0], h, w)


def _fixed_point_encoder(codec: str):
    """(M, b) with YCbCr = floor(M @ RGB + b): libjpeg's tables and rounding terms divided by 2**16."""
    cbr, cbg, crg, crb = CONSTANTS[codec]["enc"]
    m = [[_fix(0.299), _fix(0.587), _fix(0.114)],
         [-_fix(cbr), -_fix(cbg), _HALF],
         [_HALF, -_fix(crg), -_fix(crb)]]
    b = [_HALF, 128 * _ONE + _HALF - 1, 128 * _ONE + _HALF - 1]
    return torch.tensor(m, dtype=torch.float64) / _ONE, torch.tensor(b, dtype=torch.float64) / _ONE


def _fixed_point_decoder(codec: str):
    """M with (R - Y, G - Y, B - Y) = floor(M @ (Cb - 128, Cr - 128) + 1/2), libjpeg's tables / 2**16."""
    rcr, bcb, gcr, gcb = CONSTANTS[codec]["dec"]
    return torch.tensor([[0.0, _fix(rcr)], [-_fix(gcb), -_fix(gcr)], [_fix(bcb), 0.0]], dtype=torch.float64) / _ONE


def rgb_to_ycbcr(x: torch.Tensor, codec: str) -> torch.Tensor:
    """N x 3 x H x W integer-valued RGB (float64) -> YCbCr exactly as the ``codec``'s encoder.

    Exact in float64: the integer sums are below 2**24 and dividing by 2**16 is exact.
    """
    m, b = (t.to(x.device) for t in _fixed_point_encoder(codec))
    return floor_ste(_apply(m, x) + b[:, None, None])


def ycbcr_to_rgb(x: torch.Tensor, codec: str) -> torch.Tensor:
    """N x 3 x H x W integer-valued YCbCr (float64) -> RGB exactly as the ``codec``'s decoder (clamped)."""
    m = _fixed_point_decoder(codec).to(x.device)
    diff = floor_ste(_apply(m, x[:, 1:] - 128.0) + 0.5)
    return (x[:, :1] + diff).clamp(0.0, 255.0)


def _matrix(dtype, device):
    m = torch.tensor([[0.299, 0.587, 0.114],
                      [-0.168735892, -0.331264108, 0.5],
                      [0.5, -0.418687589, -0.081312411]], dtype=dtype, device=device)
    return m


def rgb_to_ycbcr_float(x: torch.Tensor) -> torch.Tensor:
    """The ideal (real-valued) JFIF conversion, for the cell of a JPEG rather than the codec."""
    m = _matrix(x.dtype, x.device)
    off = torch.tensor([0.0, 128.0, 128.0], dtype=x.dtype, device=x.device)
    return _apply(m, x) + off[:, None, None]


def ycbcr_to_rgb_float(x: torch.Tensor) -> torch.Tensor:
    """Exact inverse of ``rgb_to_ycbcr_float`` (no rounding, no clamping)."""
    minv = torch.linalg.inv(_matrix(torch.float64, x.device)).to(x.dtype)
    off = torch.tensor([0.0, 128.0, 128.0], dtype=x.dtype, device=x.device)
    return _apply(minv, x - off[:, None, None])
