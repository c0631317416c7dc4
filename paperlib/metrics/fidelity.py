"""PSNR, SSIM, PSNR-B and IPSNR on uint8-valued images (peak 255), vectorised numpy.

Every sum over pixels (squared errors, SSIM's window moments, PSNR-B's boundary
differences) is of integers below 2**53 when the images hold integers, so it is
exact in float64 whatever the summation order; the only rounding is in the
divisions and the final formula. SSIM's window sums of uint8 images are taken
in float32, where they are exact too (each below 2**24).

The variants that reproduce the published tables are the defaults; the others
exist so the protocols notebook can show how much each convention moves a
number. See docs/conventions.md for the measurements behind each choice.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["psnr", "ssim", "psnrb", "blocking_effect_factor", "ipsnr", "SSIM_WINDOWS", "PSNRB_COUNTS"]

PEAK = 255.0
SSIM_WINDOWS = ("uniform8", "skimage", "gaussian11")
PSNRB_COUNTS = ("fractional", "exact")


def _pair(ref, test, dtype=np.float64):
    ref = np.asarray(ref)
    test = np.asarray(test)
    if ref.size == 0 or test.size == 0:
        raise ValueError("empty image")
    if ref.shape != test.shape:
        raise ValueError(f"size mismatch: reference {ref.shape} vs test {test.shape}")
    if not (ref.ndim == 2 or ref.ndim == 3 and ref.shape[2] == 3):
        raise ValueError(f"expected HxW or HxWx3 images, got shape {ref.shape}")
    floats = ref.dtype.kind not in "biu" or test.dtype.kind not in "biu"
    ref = ref.astype(dtype, copy=False)
    test = test.astype(dtype, copy=False)
    if floats and not (np.isfinite(ref).all() and np.isfinite(test).all()):
        raise ValueError("image contains NaN or infinite values")
    return ref, test


def _mse(ref: np.ndarray, test: np.ndarray) -> float:
    d = (ref - test).ravel()
    return float(d @ d) / d.size


def _psnr_from_mse(mse: float) -> float:
    return math.inf if mse == 0 else 10.0 * math.log10(PEAK ** 2 / mse)


def psnr(ref, test) -> float:
    """PSNR in dB, MSE over every value of the image (all channels)."""
    return _psnr_from_mse(_mse(*_pair(ref, test)))


def _box_sum_valid(x: np.ndarray, k: int) -> np.ndarray:
    """Sum over every k x k window fully inside ``x`` (MATLAB ``filter2(ones(k), .., 'valid')``): k shifted
    row slices added, then k shifted column slices, in place."""
    h, w = x.shape
    rows = x[:h - k + 1].copy()
    for i in range(1, k):
        rows += x[i:h - k + 1 + i]
    out = rows[:, :w - k + 1].copy()
    for j in range(1, k):
        out += rows[:, j:w - k + 1 + j]
    return out


def _ssim_uniform(ref: np.ndarray, test: np.ndarray, k: int = 8, sample: bool = False) -> float:
    """SSIM with a k x k all-ones window over the valid region.

    ``sample=False``: population moments (Wang et al.'s ``ssim_index``);
    ``sample=True``: sample covariance, k*k/(k*k-1), as scikit-image's default.
    """
    if min(ref.shape[:2]) < k:
        raise ValueError(f"image smaller than the {k}x{k} SSIM window")
    c1, c2 = (0.01 * PEAK) ** 2, (0.03 * PEAK) ** 2
    n = k * k
    norm = n / (n - 1) if sample else 1.0

    def mean(x):  # window sums in the images' dtype, the mean in float64
        return _box_sum_valid(x, k).astype(np.float64, copy=False) / n

    mu_x, mu_y = mean(ref), mean(test)
    sxx = norm * (mean(ref * ref) - mu_x ** 2)
    syy = norm * (mean(test * test) - mu_y ** 2)
    sxy = norm * (mean(ref * test) - mu_x * mu_y)
    num = (2 * mu_x * mu_y + c1) * (2 * sxy + c2)
    den = (mu_x ** 2 + mu_y ** 2 + c1) * (sxx + syy + c2)
    return float(np.mean(num / den))


def ssim(ref, test, window: str = "uniform8") -> float:
    """Mean SSIM (K1=0.01, K2=0.03, L=255); colour images are averaged over channels.

    window:
      ``uniform8``   8x8 all-ones window, valid region (Wang's ``ssim_index``; the gray protocol)
      ``skimage``    scikit-image defaults: 7x7 uniform, sample covariance (the colour protocol)
      ``gaussian11`` 11x11 Gaussian sigma 1.5, population covariance (the SSIM paper's window)
    """
    if window not in SSIM_WINDOWS:
        raise ValueError(f"window must be one of {SSIM_WINDOWS}, got {window!r}")
    if window in ("uniform8", "skimage"):  # scikit-image's default equals a 7x7 valid-region box
        k, sample = (8, False) if window == "uniform8" else (7, True)
        # 8-bit images: every window sum is an integer below 64 * 255**2 < 2**24, exact in float32 at half the
        # memory traffic of float64; the moments and the formula are float64 for any input
        eight_bit = np.asarray(ref).dtype == np.uint8 and np.asarray(test).dtype == np.uint8
        ref, test = _pair(ref, test, np.float32 if eight_bit else np.float64)
        if ref.ndim == 3:  # channel planes made contiguous: strided running sums are several times slower
            ref, test = np.ascontiguousarray(np.moveaxis(ref, 2, 0)), np.ascontiguousarray(np.moveaxis(test, 2, 0))
            return float(np.mean([_ssim_uniform(ref[c], test[c], k, sample) for c in range(3)]))
        return _ssim_uniform(ref, test, k, sample)
    ref, test = _pair(ref, test)
    from skimage.metrics import structural_similarity
    return float(structural_similarity(ref, test, data_range=PEAK, channel_axis=-1 if ref.ndim == 3 else None,
                                       gaussian_weights=True, sigma=1.5, use_sample_covariance=False))


def blocking_effect_factor(img, block: int = 8, counts: str = "fractional") -> float:
    """BEF of Yim & Bovik (2011), computed on the decoded image alone.

    Squared differences of adjacent pixels across 8-pixel block boundaries
    (D_B) vs. the other adjacent pairs (D_Bc); colour images sum the squared
    differences over channels and divide by one channel's pair counts.
    ``counts="fractional"`` uses N_HB = H (W/8 - 1), N_VB = W (H/8 - 1) with
    true division (what reproduces the tables); ``"exact"`` counts the pairs.
    """
    if counts not in PSNRB_COUNTS:
        raise ValueError(f"counts must be one of {PSNRB_COUNTS}, got {counts!r}")
    x = np.asarray(img, dtype=np.float64)
    if x.ndim == 2:
        x = x[..., None]
    h, w = x.shape[:2]
    if min(h, w) < 2:
        raise ValueError("image too small for PSNR-B")
    dh = np.square(x[:, 1:] - x[:, :-1])  # H x (W-1) x C, pair (j, j+1) at column j
    dv = np.square(x[1:] - x[:-1])        # (H-1) x W x C
    # boundary pairs: columns (rows) block-1, 2*block-1, ...; the other pairs are the rest of the total
    sum_b = dh[:, block - 1::block].sum() + dv[block - 1::block].sum()
    sum_bc = dh.sum() + dv.sum() - sum_b
    if counts == "fractional":
        n_hb, n_vb = h * (w / block - 1), w * (h / block - 1)
    else:
        n_hb, n_vb = h * len(range(block - 1, w - 1, block)), w * len(range(block - 1, h - 1, block))
    n_hbc, n_vbc = h * (w - 1) - n_hb, w * (h - 1) - n_vb
    if n_hb + n_vb <= 0:
        return 0.0
    d_b = sum_b / (n_hb + n_vb)
    d_bc = sum_bc / (n_hbc + n_vbc)
    eta = math.log2(block) / math.log2(min(h, w))
    return float(eta * (d_b - d_bc)) if d_b > d_bc else 0.0


def psnrb(ref, test, counts: str = "fractional") -> float:
    """PSNR-B (Yim & Bovik 2011): MSE of ``test`` plus the BEF of ``test``, in dB."""
    ref, test = _pair(ref, test)
    return _psnr_from_mse(_mse(ref, test) + blocking_effect_factor(test, counts=counts))


def ipsnr(ref, restored, degraded) -> float:
    """PSNR gain of ``restored`` over ``degraded``, both against ``ref`` (dB)."""
    return psnr(ref, restored) - psnr(ref, degraded)
