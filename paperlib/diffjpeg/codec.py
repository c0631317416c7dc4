"""The differentiable codec: encode to quantized DCT coefficients, decode them, round trip.

The pipeline is libjpeg's, step by step (see the modules for each step's arithmetic):
8-bit input -> RGB->YCbCr (``color``) -> 4:2:0 chroma down-sampling (``sampling`` for
``codec="pillow"``; libjpeg 9 folds it into a 16x16 DCT) -> edge replication to whole blocks
-> level shift, islow DCT (``dct``) -> quantization by the tables, rounded half away from zero
(``quantization``) -> dequantization -> islow inverse DCT, range limit -> chroma up-sampling
(fancy triangle filter for Pillow, the 16x16 inverse DCT for libjpeg 9) -> YCbCr->RGB, clamp.

Two codecs, named as in ``paperlib.jpeg``: ``"pillow"`` (libjpeg-turbo, bit-identical to IJG
libjpeg 6b; the gray protocol's codec) and ``"libjpeg9"`` (IJG libjpeg 9e via jpeglib; the
colour protocol's codec). They differ only for colour: chroma sampling and the conversion
constants. Gray images take the same path in both.

Every rounding is exact in the forward pass and straight-through in the backward pass
(gradient of the same pipeline without rounding); clamps (input to 0..255, the IDCT's range
limit, the RGB output) have their true subgradient: 1 inside, 0 where a value is clamped.
(libjpeg's range-limit table equals a clamp for inverse-DCT samples in -384..639 and wraps
beyond, which only corrupt or adversarial coefficients reach; here they are clamped.)
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import torch

from .. import jpeg
from . import color, dct, sampling
from .quantization import as_tables, floor_ste, qf_tables, quantize

__all__ = ["CODECS", "JPEGCoefficients", "encode", "decode_coefficients", "roundtrip", "roundtrip_tables",
           "read_coefficients", "check_image", "resolve_tables"]

CODECS = ("pillow", "libjpeg9")
SUBSAMPLINGS = ("4:2:0", "4:4:4")


class JPEGCoefficients(NamedTuple):
    """What a baseline JPEG stores, batched.

    ``blocks``: one tensor per component (Y, or Y, Cb, Cr), ``N x rows x cols x 8 x 8`` quantized
    coefficients (integer-valued float64; rows = ceil(H/8), or ceil(H/16) for 4:2:0 chroma; each
    block row-major with the vertical frequency first, as jpeglib stores them);
    ``tables``: ``N x C x 8 x 8``, each component's table; ``size``: the image's (H, W);
    ``subsampling``: ``"4:2:0"`` or ``"4:4:4"`` (colour only).
    """
    blocks: tuple
    tables: torch.Tensor
    size: tuple
    subsampling: str = "4:2:0"


def check_image(x) -> torch.Tensor:
    """``x`` as an N x C x H x W floating tensor with C = 1 or 3, or ValueError."""
    if not torch.is_tensor(x):
        raise ValueError(f"expected a torch tensor N x C x H x W, got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"expected N x C x H x W with C = 1 (gray) or 3 (RGB), got shape {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError("empty image batch")
    if not x.is_floating_point():
        raise ValueError(f"expected a floating tensor of 8-bit levels (0..255), got {x.dtype}")
    return x


def _check_codec(codec: str, subsampling: str) -> None:
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {CODECS}, got {codec!r}")
    if subsampling not in SUBSAMPLINGS:
        raise ValueError(f"subsampling must be one of {SUBSAMPLINGS}, got {subsampling!r}")


def resolve_tables(qf, tables, n: int, channels: int, device=None) -> torch.Tensor:
    """N x C x 8 x 8 tables from exactly one of ``qf`` and ``tables`` (see ``as_tables``).

    ``qf``: one IJG quality factor (baseline tables) for the batch, or a sequence of N, one per image.
    """
    if (qf is None) == (tables is None):
        raise ValueError("give either qf or tables, not both and not neither")
    if qf is None:
        return as_tables(tables, n, channels, device)
    if isinstance(qf, (list, tuple)) or torch.is_tensor(qf) and qf.ndim == 1:
        qfs = [int(v) if torch.is_tensor(v) else v for v in qf]
        if len(qfs) != n:
            raise ValueError(f"{len(qfs)} quality factors given for {n} images")
        tables = torch.stack([qf_tables(jpeg.check_qf(v), channels) for v in qfs])
    else:
        tables = qf_tables(jpeg.check_qf(int(qf) if torch.is_tensor(qf) else qf), channels)
    return as_tables(tables, n, channels, device)


def _chroma_block(codec: str, subsampling: str) -> int:
    return 16 if codec == "libjpeg9" and subsampling == "4:2:0" else 8


def encode(x: torch.Tensor, qf: int | None = None, *, tables=None, codec: str = "pillow",
           subsampling: str = "4:2:0") -> JPEGCoefficients:
    """Quantized DCT coefficients of a batch of 8-bit images, as the ``codec``'s encoder computes them.

    ``x``: N x C x H x W floats holding 8-bit levels (rounded half up to integers and clamped to
    0..255 first, as the codec only takes 8-bit samples). Give ``qf`` (IJG tables, baseline-clamped;
    one for the batch or one per image) or ``tables`` (per image allowed: N x T x 8 x 8).
    """
    x = check_image(x)
    _check_codec(codec, subsampling)
    n, c, h, w = x.shape
    q = resolve_tables(qf, tables, n, c, x.device)
    v = floor_ste(x.clamp(0.0, 255.0) + 0.5).to(torch.float64)  # exact in any float dtype: integers <= 255
    if c == 1:
        planes = [(v[:, 0], 8)]
    else:
        ycc = color.rgb_to_ycbcr(v, codec)
        chroma = ycc[:, 1:]
        if subsampling == "4:2:0" and codec == "pillow":
            chroma = sampling.downsample(chroma)
        b = _chroma_block(codec, subsampling)
        planes = [(ycc[:, 0], 8), (chroma[:, 0], b), (chroma[:, 1], b)]
    blocks = []
    for i, (plane, b) in enumerate(planes):
        coef = dct.fdct(dct.blockify(dct.pad_edges(plane, b, b) - 128.0, b))
        blocks.append(quantize(coef, q[:, i, None, None]))
    return JPEGCoefficients(tuple(blocks), q, (h, w), subsampling)


def decode_coefficients(coefs: JPEGCoefficients, codec: str = "pillow", dtype=torch.float32) -> torch.Tensor:
    """The image the ``codec``'s decoder makes of ``coefs``: N x C x H x W of 8-bit levels (as ``dtype``)."""
    _check_codec(codec, coefs.subsampling)
    h, w = coefs.size
    if len(coefs.blocks) not in (1, 3) or coefs.tables.shape[1] != len(coefs.blocks):
        raise ValueError(f"expected 1 or 3 components with one table each, got {len(coefs.blocks)} "
                         f"components and {coefs.tables.shape[1]} tables")
    planes = []
    for i, blk in enumerate(coefs.blocks):
        size = 8 if i == 0 else _chroma_block(codec, coefs.subsampling)
        deq = blk.to(torch.float64) * coefs.tables[:, i, None, None].to(blk.device, torch.float64)
        plane = dct.unblockify(dct.idct(deq, size).clamp(0.0, 255.0))
        if i > 0 and coefs.subsampling == "4:2:0" and codec == "pillow":
            plane = sampling.upsample(plane[:, : (h + 1) // 2, : (w + 1) // 2], h, w)
        if plane.shape[-2] < h or plane.shape[-1] < w:
            raise ValueError(f"component {i} has {tuple(blk.shape[1:3])} blocks, too few for a {h}x{w} image")
        planes.append(plane[:, :h, :w])
    out = planes[0][:, None] if len(planes) == 1 else color.ycbcr_to_rgb(torch.stack(planes, 1), codec)
    return out.to(dtype)


def roundtrip(x: torch.Tensor, qf: int | None = None, *, tables=None, codec: str = "pillow",
              subsampling: str = "4:2:0") -> torch.Tensor:
    """JPEG_Q(x): encode and decode, same shape and dtype as ``x`` (see ``encode`` for the arguments)."""
    coefs = encode(x, qf, tables=tables, codec=codec, subsampling=subsampling)
    return decode_coefficients(coefs, codec, dtype=x.dtype)


def roundtrip_tables(x: torch.Tensor, tables, codec: str = "pillow", subsampling: str = "4:2:0") -> torch.Tensor:
    """``roundtrip`` with quantization tables instead of a quality factor."""
    return roundtrip(x, tables=tables, codec=codec, subsampling=subsampling)


def read_coefficients(path) -> JPEGCoefficients:
    """The coefficients, tables and size of a baseline or progressive JPEG file, read exactly (jpeglib).

    Gray or YCbCr files with 4:2:0 or 4:4:4 sampling; others are refused with the reason.
    """
    import jpeglib
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no JPEG file at {path}")
    j = jpeglib.read_dct(os.fspath(path))
    space = str(j.jpeg_color_space)
    comps = [j.Y] if j.Cb is None else [j.Y, j.Cb, j.Cr]
    if len(comps) == 3 and "YCbCr" not in space or len(comps) == 1 and "GRAY" not in space.upper():
        raise ValueError(f"{path.name}: colour space {space} is not supported (gray or YCbCr only)")
    samp = [tuple(int(v) for v in s) for s in j.samp_factor]
    if len(comps) == 1 or samp == [(1, 1)] * 3:
        sub = "4:4:4"
    elif samp == [(2, 2), (1, 1), (1, 1)]:
        sub = "4:2:0"
    else:
        raise ValueError(f"{path.name}: sampling factors {samp} are not supported (4:2:0 or 4:4:4 only)")
    h, w = int(j.height), int(j.width)
    blocks = []
    for i, comp in enumerate(comps):
        div = 16 if i > 0 and sub == "4:2:0" else 8
        rows, cols = -(-h // div), -(-w // div)
        blocks.append(torch.from_numpy(comp[:rows, :cols].astype("float64"))[None])
    tables = torch.from_numpy(j.qt[list(j.quant_tbl_no)[: len(comps)]].astype("float64"))[None]
    return JPEGCoefficients(tuple(blocks), tables, (h, w), sub if len(comps) == 3 else "4:2:0")
