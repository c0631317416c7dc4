"""Statistics of K samples that a stochastic restorer draws for one input (Man et al. 2023).

``samples`` is a K x H x W (gray) or K x H x W x 3 (RGB) uint8 stack (or a list of K
such images), all restorations of the same compressed image.

* ``per_pixel_std``: Man et al.'s "Per-Pixel STD" (Table 1, a value in [0, 1]): the
  samples scaled to [0, 1] (divided by 255), the standard deviation over the K
  samples at every pixel and channel, averaged over pixels and channels. The
  *population* standard deviation (divide by K): two samples 0 and 255 give 0.5,
  the largest possible value. The sample standard deviation (divide by K - 1) is
  sqrt(K / (K - 1)) times larger (0.8 % at K = 64); the paper does not say which.
* ``mean_sample``: the average of the K samples (Man et al.'s "Ours-A", 64 samples,
  a proxy of the MMSE estimate), averaged in float and then rounded to 8 bits, half
  to even like ``torch.round`` on every restorer output in this project: Ours-A is
  an image that one can save and that is scored like every other row. Rounding moves
  each value by at most half a gray level, hence the RMSE by at most 0.5 (triangle
  inequality): about 0.3 dB at worst at the paper's ~25 dB (RMSE ~14), and about
  0.005 dB (MSE + 1/4 at most) when the rounding errors are uncorrelated with the error.
* ``sample_statistics``: both numbers from one stack, the PSNR taken of the mean.
"""
from __future__ import annotations

import numpy as np

from .fidelity import psnr

__all__ = ["per_pixel_std", "mean_sample", "sample_statistics"]


def _stack(samples) -> np.ndarray:
    s = np.asarray(samples)
    if s.dtype != np.uint8:
        raise ValueError(f"expected uint8 samples, got {s.dtype}")
    if not (s.ndim == 3 or s.ndim == 4 and s.shape[3] == 3):
        raise ValueError(f"expected a K x H x W or K x H x W x 3 stack, got shape {s.shape}")
    if len(s) < 2:
        raise ValueError(f"need at least 2 samples, got {len(s)}")
    if s[0].size == 0:
        raise ValueError("empty image")
    return s


def per_pixel_std(samples) -> float:
    """Mean over pixels and channels of the population std over the K samples, images in [0, 1]."""
    s = _stack(samples).astype(np.float64) / 255.0
    return float(s.std(axis=0).mean())


def mean_sample(samples) -> np.ndarray:
    """The K samples averaged in float, rounded half to even to uint8 (H x W or H x W x 3)."""
    s = _stack(samples)
    return np.round(s.mean(axis=0, dtype=np.float64)).astype(np.uint8)  # a mean of uint8 stays in 0..255


def sample_statistics(ref, samples) -> dict:
    """``{"per_pixel_std": ..., "psnr_of_mean": ...}`` of K samples restoring the reference ``ref``."""
    return {"per_pixel_std": per_pixel_std(samples), "psnr_of_mean": psnr(ref, mean_sample(samples))}
