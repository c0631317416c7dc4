"""The exact JPEG codec: libjpeg round trips, IJG quantization tables.

Two encoders/decoders are kept apart on purpose (see docs/conventions.md):

* ``codec="pillow"``: Pillow's bundled libjpeg with IJG tables clamped to
  baseline. Its output is bit-identical to IJG libjpeg 6b, i.e. MATLAB
  ``imwrite``; this is the gray protocol's codec.
* ``codec="libjpeg9"``: IJG libjpeg 9e through the ``jpeglib`` package, the
  libjpeg >= 7 encoder/decoder the colour protocol of QGCN needs (its chroma
  up-sampling differs from Pillow's libjpeg-turbo by ~0.1 dB).
"""
from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["IJG_LUMA", "IJG_CHROMA", "CODECS", "SUBSAMPLINGS", "check_qf", "quality_scaling",
           "ijg_table", "ijg_tables", "encode", "decode", "roundtrip", "quant_tables", "estimate_qf",
           "read_jpeg", "UnsupportedJPEG"]

# ITU-T T.81 Annex K, tables K.1 and K.2 (natural row-major order).
IJG_LUMA = np.array([
    [16, 11, 10, 16, 24, 40, 51, 61],
    [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56],
    [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77],
    [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101],
    [72, 92, 95, 98, 112, 100, 103, 99]], dtype=np.int64)
IJG_CHROMA = np.array([
    [17, 18, 24, 47, 99, 99, 99, 99],
    [18, 21, 26, 66, 99, 99, 99, 99],
    [24, 26, 56, 99, 99, 99, 99, 99],
    [47, 66, 99, 99, 99, 99, 99, 99],
    [99, 99, 99, 99, 99, 99, 99, 99],
    [99, 99, 99, 99, 99, 99, 99, 99],
    [99, 99, 99, 99, 99, 99, 99, 99],
    [99, 99, 99, 99, 99, 99, 99, 99]], dtype=np.int64)

CODECS = ("pillow", "libjpeg9")
SUBSAMPLINGS = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}  # name -> Pillow's code


def check_qf(qf) -> int:
    """Return ``qf`` as an int in 1..100, or raise ValueError."""
    if isinstance(qf, bool) or not isinstance(qf, (int, np.integer)) and not (
            isinstance(qf, float) and qf.is_integer()):
        raise ValueError(f"quality factor must be an integer in 1..100, got {qf!r}")
    qf = int(qf)
    if not 1 <= qf <= 100:
        raise ValueError(f"quality factor must be in 1..100, got {qf}")
    return qf


def quality_scaling(qf: int) -> int:
    """IJG ``jpeg_quality_scaling``: percentage applied to the base tables."""
    qf = check_qf(qf)
    return 5000 // qf if qf < 50 else 200 - 2 * qf


def ijg_table(qf: int, channel: str = "luma", baseline: bool = True) -> np.ndarray:
    """The 8x8 IJG quantization table (natural order) that libjpeg writes at ``qf``.

    ``baseline=True`` clamps entries to 255 as ``jpeg_set_quality(..., TRUE)``
    does (what Pillow, MATLAB and cjpeg use); ``False`` allows up to 32767.
    """
    if channel not in ("luma", "chroma"):
        raise ValueError(f"channel must be 'luma' or 'chroma', got {channel!r}")
    base = IJG_LUMA if channel == "luma" else IJG_CHROMA
    table = (base * quality_scaling(qf) + 50) // 100
    return np.clip(table, 1, 255 if baseline else 32767)


def ijg_tables(qf: int, color: bool) -> np.ndarray:
    """T x 8 x 8 IJG tables at ``qf`` (what Pillow and libjpeg write): luma, and chroma if ``color``."""
    chans = ("luma", "chroma") if color else ("luma",)
    return np.stack([ijg_table(qf, c) for c in chans])


def _check_image(img) -> np.ndarray:
    img = np.asarray(img)
    if img.size == 0:
        raise ValueError("empty image")
    if img.dtype != np.uint8:
        raise ValueError(f"the codec takes uint8 images, got {img.dtype}")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if not (img.ndim == 2 or img.ndim == 3 and img.shape[2] == 3):
        raise ValueError(f"expected an HxW gray or HxWx3 RGB image, got shape {img.shape}")
    return np.ascontiguousarray(img)


def _check_codec(codec: str, subsampling: str) -> None:
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {CODECS}, got {codec!r}")
    if subsampling not in SUBSAMPLINGS:
        raise ValueError(f"subsampling must be one of {tuple(SUBSAMPLINGS)}, got {subsampling!r}")


def encode(img, qf: int, subsampling: str = "4:2:0", codec: str = "pillow") -> bytes:
    """Baseline JPEG bytes of a uint8 gray (HxW) or RGB (HxWx3) image at quality ``qf``."""
    img = _check_image(img)
    qf = check_qf(qf)
    _check_codec(codec, subsampling)
    if codec == "pillow":
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=qf, subsampling=SUBSAMPLINGS[subsampling])
        return buf.getvalue()
    import jpeglib
    factors = {"4:4:4": ((1, 1), (1, 1), (1, 1)), "4:2:2": ((2, 1), (1, 1), (1, 1)),
               "4:2:0": ((2, 2), (1, 1), (1, 1))}[subsampling]
    with tempfile.TemporaryDirectory() as tmp, jpeglib.version("9e"):
        path = os.path.join(tmp, "x.jpg")
        spatial = img[..., None] if img.ndim == 2 else img
        jpeg = jpeglib.from_spatial(spatial)
        if img.ndim == 3:
            jpeg.samp_factor = np.array(factors, dtype=np.int32)
        # Explicit IJG tables clamped to baseline, as jpeg_set_quality(q, TRUE) in cjpeg/MATLAB.
        tables = np.stack([ijg_table(qf, "luma"), ijg_table(qf, "chroma")]).astype(np.uint16)
        slots = np.array([0] if img.ndim == 2 else [0, 1, 1])
        jpeg.write_spatial(path, qt=tables[: slots.max() + 1], quant_tbl_no=slots)
        return Path(path).read_bytes()


def decode(data: bytes, codec: str = "pillow") -> np.ndarray:
    """Decode JPEG bytes to uint8 HxW (gray) or HxWx3 (colour)."""
    _check_codec(codec, "4:2:0")
    if codec == "pillow":
        with Image.open(io.BytesIO(data)) as im:
            if im.format != "JPEG":
                raise ValueError(f"not a JPEG stream ({im.format})")
            return np.asarray(im.convert("RGB") if im.mode not in ("L", "RGB") else im).copy()
    import jpeglib
    with tempfile.TemporaryDirectory() as tmp, jpeglib.version("9e"):
        path = os.path.join(tmp, "x.jpg")
        Path(path).write_bytes(data)
        out = jpeglib.read_spatial(path).spatial
    return out[..., 0].copy() if out.shape[2] == 1 else out.copy()


def roundtrip(img, qf: int, subsampling: str = "4:2:0", codec: str = "pillow"):
    """Compress and decompress: returns ``(decoded uint8 image, number of JPEG bytes)``."""
    data = encode(img, qf, subsampling=subsampling, codec=codec)
    return decode(data, codec=codec), len(data)


def quant_tables(source) -> dict:
    """Quantization tables of a JPEG file (path or bytes) as 8x8 int arrays, natural order.

    Keys are the table slots of the file (0: luma, 1: chroma for IJG files).
    """
    fp = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    with Image.open(fp) as im:
        if im.format != "JPEG":
            raise ValueError(f"not a JPEG file ({im.format})")
        return {k: np.array(v, dtype=np.int64).reshape(8, 8) for k, v in im.quantization.items()}


def estimate_qf(table: np.ndarray, channel: str = "luma"):
    """The IJG quality factor whose table equals ``table``, or None if none does."""
    table = np.asarray(table).reshape(8, 8)
    for qf in range(1, 101):
        if np.array_equal(ijg_table(qf, channel), table) or np.array_equal(
                ijg_table(qf, channel, baseline=False), table):
            return qf
    return None


class UnsupportedJPEG(ValueError):
    """A file ``read_jpeg`` will not restore (not a JPEG, progressive, CMYK, ...), with the reason."""


def _sof_precision(path: Path):
    """Bits per sample in the file's first SOF marker (None if there is none)."""
    data = path.read_bytes()[:1 << 16]
    for i in range(2, len(data) - 4):
        if data[i] == 0xFF and data[i + 1] in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB,
                                               0xCD, 0xCE, 0xCF):
            return data[i + 4]
    return None


def read_jpeg(path) -> tuple[np.ndarray, np.ndarray, dict]:
    """A real JPEG file: ``(decoded uint8 image, T x 8 x 8 tables from the file, info)``.

    Decoded with Pillow (the codec the networks were trained with). Gray files give
    HxW and one (luma) table; YCbCr colour files HxWx3 and (luma, chroma) tables.
    Pixels stay in the stored orientation (the 8x8 grid and the tables belong to it): the
    EXIF orientation is not applied but returned, with the EXIF block and ICC profile, in
    ``info`` (``orientation``, ``exif``, ``icc_profile``) so outputs can carry them.
    Arithmetic-coded files are read like Huffman-coded ones (the entropy coding is
    lossless: same coefficients, same pixels). Refused with ``UnsupportedJPEG`` and the
    reason: empty, truncated or corrupt files, non-JPEG files (whatever their name),
    progressive files, CMYK/YCCK, more than 8 bits per sample, colour files without a
    chroma table.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no file at {path}")
    if path.stat().st_size == 0:
        raise UnsupportedJPEG(f"{path.name}: empty file (0 bytes)")
    from PIL import Image, UnidentifiedImageError
    try:
        im = Image.open(path)
    except UnidentifiedImageError:
        with open(path, "rb") as f:
            soi = f.read(2) == b"\xff\xd8"
        bits = _sof_precision(path) if soi else None
        if bits not in (None, 8):
            raise UnsupportedJPEG(f"{path.name}: {bits}-bit JPEG; only 8-bit samples are supported") from None
        raise UnsupportedJPEG(f"{path.name}: " + ("a corrupt JPEG Pillow cannot read" if soi else
                                                  "not an image file Pillow can read")) from None
    except OSError as err:   # headers cut short
        raise UnsupportedJPEG(f"{path.name}: truncated or corrupt JPEG ({err})") from None
    with im:
        if im.format != "JPEG":
            raise UnsupportedJPEG(f"{path.name}: not a JPEG file ({im.format}); the networks restore JPEG "
                                  "files (and QGCN reads the quantization tables they carry)")
        if im.info.get("progressive") or im.info.get("progression"):
            raise UnsupportedJPEG(f"{path.name}: progressive JPEG; the networks were trained on baseline "
                                  "JPEG only (re-encoding it would add a second compression)")
        if im.mode not in ("L", "RGB"):
            raise UnsupportedJPEG(f"{path.name}: {im.mode} JPEG (only gray and YCbCr colour files are supported)")
        q = {k: np.array(v, dtype=np.int64).reshape(8, 8) for k, v in im.quantization.items()}
        meta = {"exif": im.info.get("exif"), "icc_profile": im.info.get("icc_profile"),
                "orientation": int(im.getexif().get(0x0112, 1))}
        try:
            im.load()
        except OSError as err:   # e.g. "image file is truncated"
            raise UnsupportedJPEG(f"{path.name}: truncated or corrupt JPEG ({err})") from None
        img = np.asarray(im).copy()
    if not q or 0 not in q:
        raise UnsupportedJPEG(f"{path.name}: no luma quantization table")
    color = img.ndim == 3
    if color and 1 not in q:
        raise UnsupportedJPEG(f"{path.name}: colour file with a single quantization table (not IJG-style)")
    tables = np.stack([q[0], q[1]] if color else [q[0]])
    info = {"color": color, "size": tuple(img.shape[:2]), "qf_luma": estimate_qf(q[0], "luma"),
            "qf_chroma": estimate_qf(q[1], "chroma") if color else None, **meta}
    return img, tables, info
