"""The quantization cell of a JPEG in real arithmetic: analysis, and Man et al.'s projection (Eq. 11).

A JPEG's coefficients define a cell: every image whose DCT coefficients (per block, per
frequency, in units of the quantization step) lie within +-0.5 of them. Here the cell is taken
in ideal arithmetic (real colour matrix, 2x2 mean or libjpeg 9's DCT-domain chroma scaling,
orthonormal DCT, no rounding); the codec's integer arithmetic (``codec.encode``) moves the
boundary by a small fraction of a level.

``analyze`` maps an image to those real coefficients (edges replicated to whole blocks as
libjpeg does); ``synthesize`` maps coefficient changes back to the least image change that
makes them (the pseudo-inverse: transposed orthonormal DCT, chroma changes spread evenly over
each 2x2 group or, for libjpeg 9, by the 16x16 inverse DCT; inverse colour matrix).
"""
from __future__ import annotations

import torch

from . import color, dct, sampling
from .codec import JPEGCoefficients, check_image

__all__ = ["analyze", "synthesize", "project"]


def _components(x: torch.Tensor) -> torch.Tensor:
    return x if x.shape[1] == 1 else color.rgb_to_ycbcr_float(x)


def analyze(x: torch.Tensor, codec: str = "pillow", subsampling: str = "4:2:0") -> tuple:
    """Real DCT coefficients of ``x`` (N x C x H x W levels), one ``N x rows x cols x 8 x 8`` tensor per component.

    Same layout and scale as ``codec.encode`` before quantization (DCT units, level shift 128).
    """
    x = check_image(x)
    comps = _components(x)
    out = [dct.dct(dct.blockify(dct.pad_edges(comps[:, 0], 8, 8) - 128.0, 8))]
    for i in (1, 2)[: comps.shape[1] - 1]:
        plane = comps[:, i]
        if subsampling == "4:4:4":
            out.append(dct.dct(dct.blockify(dct.pad_edges(plane, 8, 8) - 128.0, 8)))
        elif codec == "libjpeg9":
            out.append(dct.dct(dct.blockify(dct.pad_edges(plane, 16, 16) - 128.0, 16)))
        else:
            half = dct.pad_edges(sampling.downsample_float(dct.pad_edges(plane, 2, 16)), 8, 1)  # edges as the codec
            out.append(dct.dct(dct.blockify(half - 128.0, 8)))
    return tuple(out)


def synthesize(delta: tuple, size: tuple, codec: str = "pillow", subsampling: str = "4:2:0") -> torch.Tensor:
    """The least image change (N x C x H x W) whose ``analyze`` changes by ``delta`` (per component).

    Exact for blocks inside the image; blocks cut by the right/bottom border are changed only in
    their visible part, so there the coefficient change is approximate (the replicated padding
    that libjpeg codes is not free to change).
    """
    h, w = size
    planes = [dct.unblockify(dct.idct_float(delta[0], 8))[:, :h, :w]]
    for d in delta[1:]:
        if subsampling == "4:4:4":
            plane = dct.unblockify(dct.idct_float(d, 8))
        elif codec == "libjpeg9":
            plane = dct.unblockify(dct.idct_float(d, 16))
        else:
            plane = sampling.upsample_float(dct.unblockify(dct.idct_float(d, 8)))
        planes.append(plane[:, :h, :w])
    if len(planes) == 1:
        return planes[0][:, None]
    return color.ycbcr_to_rgb_float(torch.stack(planes, 1) + torch.tensor(
        [0.0, 128.0, 128.0], dtype=planes[0].dtype, device=planes[0].device)[:, None, None])


def project(x: torch.Tensor, coefs: JPEGCoefficients, codec: str = "pillow", margin: float = 0.0) -> torch.Tensor:
    """Man et al. Eq. 11: move ``x`` onto the quantization cell of the JPEG ``coefs``.

    Per block and coefficient, in units of the step q: ``X~ = Y + clamp(X^ - Y, -0.5, 0.5)``, where
    X^ are the real coefficients of ``x`` and Y the JPEG's. Coefficients already inside the cell are
    kept, the others are moved to its boundary; the image moves by the least amount that does this
    (``synthesize``). Returns real-valued levels (not rounded or clamped), same shape and dtype as ``x``.

    ``margin`` (0 <= margin < 0.5, default 0: Eq. 11 as printed) clamps to +-(0.5 - margin) instead.
    A coefficient left exactly on the boundary is re-quantized to the other side about half the time
    once the image is rounded to 8 bits (rounding moves a coefficient by ~0.3 levels, at most 4); a
    margin of a few levels / q keeps the rounded image in the cell (measured in tests/test_diffjpeg.py).
    """
    if not 0.0 <= margin < 0.5:
        raise ValueError(f"margin must be in [0, 0.5), got {margin}")
    x = check_image(x)
    if tuple(x.shape[-2:]) != tuple(coefs.size) or x.shape[1] != len(coefs.blocks):
        raise ValueError(f"image {tuple(x.shape[1:])} does not match the JPEG ({len(coefs.blocks)} "
                         f"component(s), size {tuple(coefs.size)})")
    xd = x.to(torch.float64)
    real = analyze(xd, codec, coefs.subsampling)
    delta = []
    for i, (r, y) in enumerate(zip(real, coefs.blocks)):
        q = coefs.tables[:, i, None, None].to(r)
        xq = r / q
        target = y.to(r) + torch.clamp(xq - y.to(r), margin - 0.5, 0.5 - margin)
        delta.append((target - xq) * q)
    return (xd + synthesize(tuple(delta), coefs.size, codec, coefs.subsampling)).to(x.dtype)
