"""Image metrics on uint8 images.

* ``fidelity``: one restored image against its reference (PSNR, SSIM, PSNR-B, IPSNR).
* ``distribution``: one set of images against another (multi-scale SWD, FID).
* ``sampling``: K samples of a stochastic restorer for one input (per-pixel STD, mean of the samples).
"""
from .distribution import fid, frechet_distance, inception_features, swd
from .fidelity import PEAK, PSNRB_COUNTS, SSIM_WINDOWS, blocking_effect_factor, ipsnr, psnr, psnrb, ssim
from .sampling import mean_sample, per_pixel_std, sample_statistics

__all__ = ["PEAK", "SSIM_WINDOWS", "PSNRB_COUNTS", "psnr", "ssim", "psnrb", "blocking_effect_factor", "ipsnr",
           "swd", "fid", "inception_features", "frechet_distance",
           "per_pixel_std", "mean_sample", "sample_statistics"]
