"""Man et al.'s consistency metric (Sec. 5), with the exact codec.

"the RMSE between the compressed-decompressed versions of the original and the restored
images using the same JPEG settings", per pixel, in gray levels. A consistent restoration
(``JPEG(restored) == JPEG(original)``) scores 0. This is the evaluation version: it runs the
real codec of ``paperlib.jpeg`` on uint8 images. Its differentiable counterpart, the training
loss C of Eq. 4, is ``paperlib.losses.consistency_loss``.
"""
from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from .. import jpeg
from .quantization import as_tables

__all__ = ["encode_tables", "exact_roundtrip", "consistency"]


def _ijg_slots(tables, channels: int) -> np.ndarray:
    """(luma,) or (luma, chroma) int tables from any form ``quantization.as_tables`` takes."""
    t = as_tables(tables, 1, channels)[0].numpy().astype(np.int64)
    if channels == 3 and not np.array_equal(t[1], t[2]):
        raise ValueError("the exact codecs here write one chroma table: Cb and Cr tables must be equal")
    return t[:1] if channels == 1 else t[:2]


def encode_tables(img, tables, subsampling: str = "4:2:0", codec: str = "pillow") -> bytes:
    """Baseline JPEG bytes of a uint8 gray/RGB image with given quantization tables (``jpeg.encode`` for tables)."""
    img = np.ascontiguousarray(img)
    if img.dtype != np.uint8 or not (img.ndim == 2 or img.ndim == 3 and img.shape[2] == 3) or img.size == 0:
        raise ValueError(f"expected a uint8 HxW or HxWx3 image, got {img.dtype} of shape {img.shape}")
    if codec not in jpeg.CODECS or subsampling not in jpeg.SUBSAMPLINGS:
        raise ValueError(f"codec must be one of {jpeg.CODECS} and subsampling one of {tuple(jpeg.SUBSAMPLINGS)}, "
                         f"got {codec!r}, {subsampling!r}")
    slots = _ijg_slots(tables, 1 if img.ndim == 2 else 3)
    if slots.max() > 255:
        raise ValueError("baseline JPEG tables must be <= 255")
    if codec == "pillow":
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", qtables=[t.ravel().tolist() for t in slots],
                                  subsampling=jpeg.SUBSAMPLINGS[subsampling])
        return buf.getvalue()
    import jpeglib
    factors = {"4:4:4": ((1, 1), (1, 1), (1, 1)), "4:2:2": ((2, 1), (1, 1), (1, 1)),
               "4:2:0": ((2, 2), (1, 1), (1, 1))}[subsampling]
    with tempfile.TemporaryDirectory() as tmp, jpeglib.version("9e"):
        path = os.path.join(tmp, "x.jpg")
        im = jpeglib.from_spatial(img[..., None] if img.ndim == 2 else img)
        if img.ndim == 3:
            im.samp_factor = np.array(factors, dtype=np.int32)
        im.write_spatial(path, qt=slots.astype(np.uint16), quant_tbl_no=np.array([0] if img.ndim == 2 else [0, 1, 1]))
        return Path(path).read_bytes()


def exact_roundtrip(img, qf: int | None = None, *, tables=None, subsampling: str = "4:2:0",
                    codec: str = "pillow") -> np.ndarray:
    """The exact codec's decoded uint8 image, at an IJG ``qf`` or with ``tables`` (exactly one)."""
    if (qf is None) == (tables is None):
        raise ValueError("give either qf or tables, not both and not neither")
    if qf is not None:
        return jpeg.roundtrip(img, qf, subsampling=subsampling, codec=codec)[0]
    return jpeg.decode(encode_tables(img, tables, subsampling=subsampling, codec=codec), codec=codec)


def consistency(restored, original, qf: int | None = None, *, tables=None, subsampling: str = "4:2:0",
                codec: str = "pillow") -> float:
    """RMSE (gray levels) between JPEG(restored) and JPEG(original), same settings (Man et al. Sec. 5).

    ``restored`` and ``original``: uint8 HxW or HxWx3 (round and clip a float restoration first).
    """
    restored, original = np.asarray(restored), np.asarray(original)
    if restored.shape != original.shape:
        raise ValueError(f"restored {restored.shape} and original {original.shape} differ in shape")
    a = exact_roundtrip(restored, qf, tables=tables, subsampling=subsampling, codec=codec).astype(np.float64)
    b = exact_roundtrip(original, qf, tables=tables, subsampling=subsampling, codec=codec).astype(np.float64)
    return float(np.sqrt(np.mean((a - b) ** 2)))
