"""A differentiable JPEG in torch that reproduces libjpeg bit for bit.

Forward passes equal the exact codecs of ``paperlib.jpeg`` (``codec="pillow"``: libjpeg-turbo /
IJG 6b, the gray protocol's; ``codec="libjpeg9"``: IJG 9e, the colour protocol's), for gray and
4:2:0/4:4:4 colour, any image size; every rounding has a straight-through gradient, clamps
their true subgradient. Images are N x C x H x W float tensors of 8-bit levels (0..255).

    roundtrip(x, qf)                      JPEG_Q(x), same shape and dtype
    roundtrip_tables(x, tables)           the same with quantization tables (per image allowed)
    encode(x, qf) -> JPEGCoefficients     quantized coefficients, tables, size
    decode_coefficients(coefs)            the decoder's image of coefficients
    read_coefficients(path)               a JPEG file's coefficients, read exactly
    project(x, coefs)                     Man et al. Eq. 11: onto the JPEG's quantization cell
    consistency(restored, original, qf)   Man et al.'s consistency RMSE with the exact codec

Losses built on it (Man et al. Eq. 4, One-to-Many Eq. 6) are in ``paperlib.losses``.
"""
from .cell import analyze, project, synthesize
from .codec import (
           CODECS,
           JPEGCoefficients,
           decode_coefficients,
           encode,
           read_coefficients,
           roundtrip,
           roundtrip_tables,
)
from .consistency import consistency, encode_tables, exact_roundtrip

__all__ = ["CODECS", "JPEGCoefficients", "roundtrip", "roundtrip_tables", "encode", "decode_coefficients",
           "read_coefficients", "project", "analyze", "synthesize", "consistency", "exact_roundtrip",
           "encode_tables"]
