"""Training losses of the generative papers (Man et al. 2023; Guo & Chao's One-to-Many, 2017).

Images are N x C x H x W float tensors of 8-bit levels (0..255), C = 1 (gray) or 3 (RGB).
"""
from __future__ import annotations

import torch

from . import diffjpeg
from .diffjpeg.cell import analyze
from .diffjpeg.codec import JPEGCoefficients, check_image

__all__ = ["consistency_loss", "jpeg_loss", "first_moment_loss", "second_moment_loss"]


def consistency_loss(restored: torch.Tensor, jpeg_input: torch.Tensor, qf=None, *, tables=None,
                     codec: str = "pillow", subsampling: str = "4:2:0") -> torch.Tensor:
    """Man et al. Eq. 4: C = E ||Y - JPEG_Q(G(Z, Y))||^2 through the differentiable codec.

    ``restored`` is G's output, ``jpeg_input`` the decoded JPEG Y it was given; each image is
    re-compressed at its own setting: ``qf`` (one, or a sequence of N) or ``tables`` (N x T x 8 x 8
    allowed). Returned as the mean over pixels and images (gray levels squared), i.e. the paper's
    squared norm divided by C*H*W, so its weight does not depend on the patch size. The gradient
    is the straight-through one of ``diffjpeg.roundtrip`` (rounding: 1, clamps: their subgradient).
    Zero for ``restored = jpeg_input`` up to the codec's own idempotence gap (re-compressing a
    decoded JPEG moves a few pixels by a level).
    """
    restored = check_image(restored)
    if jpeg_input.shape != restored.shape:
        raise ValueError(f"jpeg_input {tuple(jpeg_input.shape)} and restored {tuple(restored.shape)} differ")
    recompressed = diffjpeg.roundtrip(restored, qf, tables=tables, codec=codec, subsampling=subsampling)
    return ((jpeg_input.to(recompressed) - recompressed) ** 2).mean()


def jpeg_loss(restored: torch.Tensor, target, tables=None, *, offsets=None, codec: str = "pillow",
              subsampling: str = "4:2:0") -> torch.Tensor:
    """One-to-Many Eq. 6: truncated L2 on DCT coefficients outside +-Q/2 of the JPEG input's.

    L = 1/|X^| * sum max((X^dct - Ydct)^2 - (Q/2)^2, 0) per image (|X^| = C*H*W values), averaged
    over the batch; X^dct are the real (orthonormal, 8x8 per component, chroma as the codec samples
    it) DCT coefficients of ``restored``, Ydct = Q * the JPEG's quantized coefficients (Eq. 4), so the
    loss is 0 exactly on the quantization cell (Eq. 5) and its gradient 2 (X^dct - Ydct) points back.

    ``target``: the JPEG input as ``diffjpeg.JPEGCoefficients`` (from ``encode`` or
    ``read_coefficients``), or its decoded image (N x C x H x W) with ``tables``: its coefficients are
    then recovered by re-encoding it with the exact encoder (equal to the file's except where the
    decoder's rounding moved one; see tests). ``restored`` covers the same pixels as the target.

    ``offsets``: N x 2 (top, left) of each patch in the JPEG image it was cut from (None: every
    patch starts at (0, 0)). A patch whose offset is not a multiple of the coding block (8 pixels;
    16 for 4:2:0 colour, whose chroma blocks span 16) contributes 0: its DCT blocks are not the
    JPEG's, so Eq. 5 says nothing about them; One-to-Many sets lambda_2 = 0 for such patches, and
    returning 0 lets a training loop use random crops unchanged. Such a patch is not refused.
    """
    restored = check_image(restored)
    n, c, h, w = restored.shape
    if not isinstance(target, JPEGCoefficients):
        if tables is None:
            raise ValueError("give the quantization tables with a decoded JPEG input")
        target = diffjpeg.encode(check_image(target).detach(), tables=tables, codec=codec, subsampling=subsampling)
    elif tables is not None:
        raise ValueError("tables come with the coefficients; do not pass them again")
    if tuple(target.size) != (h, w) or len(target.blocks) != c or target.tables.shape[0] != n:
        raise ValueError(f"restored {tuple(restored.shape)} does not match the JPEG input "
                         f"({target.tables.shape[0]} x {len(target.blocks)} x {tuple(target.size)})")
    grid = 16 if c == 3 and target.subsampling == "4:2:0" else 8
    if offsets is None:
        keep = torch.ones(n, dtype=torch.float64, device=restored.device)
    else:
        offsets = torch.as_tensor(offsets, device=restored.device).reshape(n, 2)
        keep = (offsets % grid == 0).all(dim=1).to(torch.float64)
    real = analyze(restored.to(torch.float64), codec, target.subsampling)
    total = torch.zeros(n, dtype=torch.float64, device=restored.device)
    for i, (xd, y) in enumerate(zip(real, target.blocks)):
        q = target.tables[:, i, None, None].to(xd)
        excess = (xd - y.to(xd) * q) ** 2 - (q / 2) ** 2
        total = total + torch.clamp(excess, min=0).flatten(1).sum(1)
    return (total * keep / (c * h * w)).mean().to(restored.dtype)


def _samples(samples: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    if samples.ndim != 5 or samples.shape[1] < 2 or samples.shape[:1] + samples.shape[2:] != clean.shape:
        raise ValueError(f"samples must be N x K x C x H x W with K >= 2 draws of Z for the N x C x H x W images "
                         f"{tuple(clean.shape)}, got {tuple(samples.shape)}")
    return samples


def first_moment_loss(samples: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Man et al. Eq. 5 (Ohayon et al. 2021): FM = E ||X - E_Z[G(Z, Y) | Y]||^2, E_Z estimated by K draws.

    ``samples``: N x K x C x H x W, K draws of Z for each of the N inputs; ``clean``: the N originals X.
    Returned as the mean over pixels and images of (X - mean over the K samples)^2, i.e. the squared norm
    divided by C*H*W, as ``consistency_loss``; any value scale (the recipe uses [0, 1]).
    """
    samples = _samples(samples, clean)
    return ((samples.mean(1) - clean.to(samples)) ** 2).mean()


def second_moment_loss(samples: torch.Tensor, clean: torch.Tensor, mmse: torch.Tensor) -> torch.Tensor:
    """Man et al. Eq. 7: SM = E ||(X - X̄(Y))^2 - Var_Z[G(Z, Y) | Y]||, Var_Z estimated by K draws.

    ``samples``: N x K x C x H x W draws of Z per input; ``clean``: the originals X; ``mmse``: X̄(Y), the
    output of a pre-trained MMSE estimator (Ours-MSE) for the same inputs, N x C x H x W. Var_Z is the
    unbiased sample variance over the K draws (divide by K - 1: its expectation is Var_Z for any K).
    The paper's norm carries no subscript or square (Eqs. 4-6 write ||.||_2^2); it is taken here as the
    mean absolute difference per pixel (l1, the norm's value divided by C*H*W), any value scale.
    """
    samples = _samples(samples, clean)
    if mmse.shape != clean.shape:
        raise ValueError(f"mmse {tuple(mmse.shape)} and clean {tuple(clean.shape)} differ in shape")
    target = (clean.to(samples) - mmse.to(samples)) ** 2
    return (target - samples.var(1, unbiased=True)).abs().mean()
