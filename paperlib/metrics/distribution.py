"""Distribution metrics between two sets of uint8 images: multi-scale SWD and FID.

Both compare *sets*, not pairs: a restorer that draws plausible detail is judged by
whether its outputs look like real images, which PSNR does not measure (Man et al.
2023, Sec. 5).

**Multi-scale sliced Wasserstein distance** (``swd``), written from the description
of Karras et al., "Progressive Growing of GANs", ICLR 2018, Sec. 5 and Appendix D:
the distance between the distributions of local 7x7 patches of a Laplacian pyramid,
level by level. Conventions (paper's choice where it makes one, ours where it does
not):

* pyramid: Burt & Adelson's Laplacian pyramid with the 5-tap binomial filter
  [1, 4, 6, 4, 1] / 16 (separable, half-sample symmetric borders); reduce = filter
  then keep even rows/columns (size ceil(n / 2)); expand = zero-insert, filter and
  divide by the same filter applied to the inserted ones (unit gain up to the
  borders: a constant image has all-zero band-pass levels). Level 0 is the full-resolution band-pass; the last
  level is the low-pass residual. The paper goes from full resolution down to
  16x16; images here have any size, so the number of levels is the largest L with
  the smallest image side / 2**(L-1) >= 16 over both sets, and level k means
  "octave k" (1/2**k of each image's size) in every image. Images need a side of
  at least 16 pixels.
* descriptors: 128 random 7x7 neighbourhoods per image and level (the paper's
  number), all channels, centres uniform over the positions where the patch lies
  inside the level. The positions are drawn from a generator seeded by ``seed``,
  the level and a hash of the image's pixels: every different image is sampled
  independently, as in the paper (so the distance measures the patch
  distributions, not pixel-wise agreement of aligned sets), while an identical
  image is sampled at identical places (a set scores 0 against itself, up to
  float32 rounding, whatever the order of its images).
* sampling floor: two different sets drawn from one distribution do not score 0;
  the estimate has a floor that shrinks with the number of descriptors (measured on
  BSDS500's finest level: about 0.06 for 8 RGB images x 128 patches, 0.02 for 8 gray
  images x 1024).
  At the coarse levels a set of scenes holds few independent regions, so two sets
  of *different* scenes differ there far more than a set and its restorations
  (BSDS500 test, RGB, seed 0, x 1e3: two halves of 100 images 20.8 / 18.2 / 20.8 /
  28.5 / 46.7 per level; all 200 against their JPEG QF 10 copies 29.1 / 20.7 / 19.1 /
  14.8 / 8.4). Compare restorations of one real set with each other, level by level, on
  sets of equal size.
* normalisation: each set's descriptors of one level are standardised with that
  set's own mean and standard deviation per colour channel (over all descriptors
  and the 49 positions), as the paper describes. This makes the distance blind
  to a global gain or offset of a level and measures the *shape* of the patch
  distribution.
* SWD: 512 random directions, uniform on the unit sphere, repeated 4 times with
  new directions (Appendix D) = 2048 directions; per direction the 1-D Wasserstein-1
  distance of the projected descriptors (sorted projections, mean absolute
  difference; sets of unequal size are compared through their quantile functions);
  averaged over directions. Directions depend on (seed, level) only, so both sets
  are projected on the same ones and ``swd(a, b) == swd(b, a)``.
* the result is the per-level distance in these units; the paper prints them
  x 1e3. Its average over levels is the paper's single number.

**FID** (``fid``): Frechet distance between Inception-v3 pool features (2048-d) of the
two sets, the features from torch-fidelity's ``inception-v3-compat`` extractor (the
TensorFlow-compatible Inception of Heusel et al.'s FID, which resizes every image
to 299x299 itself with TF1-compatible bilinear interpolation), the distance computed
exactly through an SVD (``frechet_distance``; equal to torch-fidelity's to its
precision, much faster for fewer images than 2048). The weights are a local file
(nothing is downloaded); without them ``fid`` raises FileNotFoundError, whose
message says which file and how to provide it: callers show that message (e.g.
"needs Inception weights") instead of a number.

Inputs, for both metrics: a list of uint8 arrays HxW (gray) or HxWx3 (RGB) of any
sizes, a uint8 numpy batch NxHxW or NxHxWxC (channels last, like
``paperlib.images``), or a uint8 torch batch NxCxHxW (channels first, like the
networks). Floats are refused: quantise outputs to 8 bits as any saved image is.
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
from scipy.ndimage import correlate1d

__all__ = ["PATCH", "PATCHES_PER_IMAGE", "DIRECTIONS", "REPEATS", "COARSEST",
           "laplacian_pyramid", "swd", "inception_features", "frechet_distance", "fid"]

PATCH = 7                # descriptor size (7x7 neighbourhood)
PATCHES_PER_IMAGE = 128  # descriptors per image and level (Karras et al.)
DIRECTIONS = 512         # random projections per repeat (Karras et al.)
REPEATS = 4              # repeats with new directions (Karras et al., App. D)
COARSEST = 16            # smallest pyramid level side (Karras et al.: down to 16x16)
_BINOMIAL = np.array([1, 4, 6, 4, 1], np.float32) / 16


def _as_image_list(images, name: str) -> list:
    """uint8 images as a list of HxWxC arrays (C = 1 or 3, the same for all)."""
    if type(images).__module__.startswith("torch"):  # NxCxHxW tensor, no torch import needed
        if images.ndim != 4:
            raise ValueError(f"{name}: a torch batch must be NxCxHxW, got shape {tuple(images.shape)}")
        images = images.detach().cpu().numpy().transpose(0, 2, 3, 1)
    elif isinstance(images, np.ndarray) and images.ndim not in (3, 4):
        raise ValueError(f"{name}: a numpy batch must be NxHxW or NxHxWxC, got shape {images.shape}")
    out = []
    for img in images:
        img = np.asarray(img)
        if img.dtype != np.uint8:
            raise ValueError(f"{name}: expected uint8 images, got {img.dtype}")
        if img.ndim == 2:
            img = img[..., None]
        if img.ndim != 3 or img.shape[2] not in (1, 3):
            raise ValueError(f"{name}: expected HxW or HxWx3 images, got shape {img.shape}")
        out.append(img)
    if not out:
        raise ValueError(f"{name}: no images")
    if len({im.shape[2] for im in out}) > 1:
        raise ValueError(f"{name}: mixed gray and colour images")
    return out


def _filter(x: np.ndarray, axis: int) -> np.ndarray:
    return correlate1d(x, _BINOMIAL, axis=axis, mode="reflect")


def _reduce(x: np.ndarray) -> np.ndarray:
    """Filter and keep even rows/columns (each 1-D pass only where it is kept)."""
    return _filter(_filter(x, 0)[::2], 1)[:, ::2]


def _expand(y: np.ndarray, shape) -> np.ndarray:
    """Zero-insert to ``shape`` and filter, divided by the filtered inserted ones (per axis)."""
    for axis, n in ((0, shape[0]), (1, shape[1])):
        size = list(y.shape)
        size[axis] = n
        z = np.zeros(size, np.float32)
        ones = np.zeros(n, np.float32)
        ones[::2] = 1
        index = [slice(None)] * 3
        index[axis] = slice(None, None, 2)
        z[tuple(index)] = y
        gain = correlate1d(ones, _BINOMIAL, mode="reflect")  # 1/2 inside, other values at the borders
        y = _filter(z, axis) / (gain[:, None, None] if axis == 0 else gain[None, :, None])
    return y


def laplacian_pyramid(img, levels: int) -> list:
    """``levels`` float32 arrays HxWxC, finest band-pass first, the low-pass residual last.

    The levels add back up to the image: ``img = L0 + expand(L1 + expand(L2 + ...))``.
    """
    x = np.asarray(img, np.float32)
    if x.ndim == 2:
        x = x[..., None]
    if levels < 1:
        raise ValueError(f"levels must be >= 1, got {levels}")
    out = []
    for _ in range(levels - 1):
        low = _reduce(x)
        out.append(x - _expand(low, x.shape))
        x = low
    out.append(x)
    return out


def _n_levels(min_side: int) -> int:
    if min_side < COARSEST:
        raise ValueError(f"SWD needs images of at least {COARSEST}x{COARSEST} pixels, got a side of {min_side}")
    return math.floor(math.log2(min_side / COARSEST)) + 1


def _digest(img: np.ndarray) -> bytes:
    """A hash of an image's pixels and shape: where its descriptors are sampled, and which real set is whose."""
    return hashlib.blake2b(img.tobytes() + str(img.shape).encode(), digest_size=16).digest()


def _descriptors(images: list, levels: int, patches_per_image: int, seed: int) -> list:
    """Per level: standardised descriptors, (len(images) * patches_per_image) x (49 C)."""
    per_level = [[] for _ in range(levels)]
    h = PATCH // 2
    for img in images:
        key = np.frombuffer(_digest(img), np.uint32).tolist()
        for k, band in enumerate(laplacian_pyramid(img, levels)):
            rng = np.random.default_rng([seed, 1, k, *key])
            rows = rng.integers(h, band.shape[0] - h, patches_per_image)
            cols = rng.integers(h, band.shape[1] - h, patches_per_image)
            windows = np.lib.stride_tricks.sliding_window_view(band, (PATCH, PATCH), axis=(0, 1))
            per_level[k].append(windows[rows - h, cols - h])  # P x C x 7 x 7
    out = []
    for chunks in per_level:
        d = np.concatenate(chunks)
        mean = d.mean(axis=(0, 2, 3), keepdims=True, dtype=np.float64)
        std = d.std(axis=(0, 2, 3), keepdims=True, dtype=np.float64)
        out.append(((d - mean) / np.where(std > 0, std, 1)).reshape(len(d), -1).astype(np.float32))
    return out


def _w1_sorted(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Wasserstein-1 per row between two empirical distributions given as sorted rows."""
    n, m = a.shape[1], b.shape[1]
    if n == m:
        return np.abs(a - b).mean(axis=1)  # float32 pairwise sums: ~1e-6 relative
    # quantile functions are steps on ((i-1)/n, i/n]: integrate |Qa - Qb| over the merged breakpoints,
    # each interval read at its midpoint (no rounding at the breakpoints themselves)
    t = np.union1d(np.arange(n + 1) / n, np.arange(m + 1) / m)
    mid, dt = (t[1:] + t[:-1]) / 2, np.diff(t)
    ia = np.minimum((mid * n).astype(np.int64), n - 1)
    ib = np.minimum((mid * m).astype(np.int64), m - 1)
    return (np.abs(a[:, ia] - b[:, ib]) * dt).sum(axis=1)


def _projections(descriptors: np.ndarray, n_directions: int, repeats: int, rng) -> list:
    """Per repeat: ``n_directions`` random unit directions and the descriptors' projections on them, sorted."""
    out = []
    for _ in range(repeats):
        dirs = rng.standard_normal((n_directions, descriptors.shape[1]))
        dirs = (dirs / np.linalg.norm(dirs, axis=1, keepdims=True)).astype(np.float32)  # uniform on the sphere
        p = dirs @ descriptors.T  # directions x descriptors
        p.sort(axis=1)
        out.append((dirs, p))
    return out


# The real side of the last ``swd`` call, {key: per level, per repeat (directions, sorted projections)}: a
# restorer's draws, or several methods, are compared with one real set, whose descriptors and projections depend
# on its pixels, the level and the seed only. One set is kept (4 bytes x directions x repeats x descriptors per
# level: about 210 MB for 50 RGB crops of 128x128 at the defaults).
_REAL_SIDE: dict = {}


def _real_side(real: list, levels: int, patches_per_image: int, directions: int, repeats: int, seed: int) -> list:
    key = (tuple(_digest(img) for img in real), levels, patches_per_image, directions, repeats, seed)
    if key not in _REAL_SIDE:
        _REAL_SIDE.clear()
        _REAL_SIDE[key] = [_projections(d, directions, repeats, np.random.default_rng([seed, 0, k]))
                           for k, d in enumerate(_descriptors(real, levels, patches_per_image, seed))]
    return _REAL_SIDE[key]


def _sliced_wasserstein(real_side: list, b: np.ndarray) -> float:
    """Mean over the real side's directions of the 1-D Wasserstein-1 distances to descriptors ``b``."""
    total = 0.0
    for dirs, pa in real_side:
        pb = dirs @ b.T
        pb.sort(axis=1)
        total += float(_w1_sorted(pa, pb).mean())
    return total / len(real_side)


def swd(real_images, fake_images, patches_per_image: int = PATCHES_PER_IMAGE,
        directions: int = DIRECTIONS, repeats: int = REPEATS, seed: int = 0) -> np.ndarray:
    """Multi-scale sliced Wasserstein distance per pyramid level, finest first (see the module docstring).

    Returns a float array with one distance per level (level k = octave k; the last
    is the low-pass residual); ``.mean()`` is the single number Karras et al. report,
    who print everything x 1e3. Symmetric, 0 for identical sets (up to float32
    rounding), the same for the same ``seed``. ``patches_per_image``, ``directions``
    and ``repeats`` default to the paper's 128, 512 and 4; the time goes as
    patches x directions x repeats (200 RGB BSDS500 images against 200: ~20-40 s
    on 2 busy CPU cores), and fewer directions give a noisier but unbiased estimate.
    The real set's side (its descriptors and their sorted projections) is kept for the next
    call: comparing many sets with one real set computes it once.
    """
    real = _as_image_list(real_images, "real_images")
    fake = _as_image_list(fake_images, "fake_images")
    if real[0].shape[2] != fake[0].shape[2]:
        raise ValueError(f"channel mismatch: real {real[0].shape[2]} vs fake {fake[0].shape[2]}")
    for name, value in (("patches_per_image", patches_per_image), ("directions", directions),
                        ("repeats", repeats)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    levels = _n_levels(min(min(im.shape[:2]) for im in real + fake))
    real_side = _real_side(real, levels, int(patches_per_image), int(directions), int(repeats), seed)
    db = _descriptors(fake, levels, patches_per_image, seed)
    return np.array([_sliced_wasserstein(a, b) for a, b in zip(real_side, db)])


def _inception(weights_path):
    """torch-fidelity's ``inception-v3-compat`` extractor of the 2048-d pool features, from a local file.

    An explicit ``weights_path`` is used as given (any state dict of that network); without
    one, ``paperlib.weights.resolve("inception")`` finds the official file and checks its sha256.
    """
    import torch
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    if weights_path is None:
        from .. import weights  # lazy: only FID needs weight files
        path = weights.resolve("inception")  # raises weights.WeightsNotFound, a FileNotFoundError
    else:
        path = Path(weights_path)
        if not path.is_file():
            raise FileNotFoundError(
                f"Inception weights not found: {path} (torch-fidelity's inception-v3-compat state dict, "
                "weights-inception-2015-12-05-6726825d.pth; or pass weights_path=None to look it up by name "
                "with paperlib.weights)")
    # torch-fidelity loads the file with weights_only=False; loading it here first with weights_only=True
    # refuses any file that holds more than tensors, so its own load then only rebuilds tensors.
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise ValueError(f"{path}: not a state dict of tensors")
    return FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path))


def _features(model, imgs: list, batch_size: int, device: str) -> np.ndarray:
    import torch
    feats, i = [], 0
    with torch.no_grad():
        while i < len(imgs):
            j = i + 1
            while j < len(imgs) and j - i < batch_size and imgs[j].shape == imgs[i].shape:
                j += 1
            x = torch.from_numpy(np.stack(imgs[i:j])).permute(0, 3, 1, 2).expand(-1, 3, -1, -1)
            feats.append(model(x.contiguous().to(device))[0].cpu().numpy())
            i = j
    return np.concatenate(feats)


def inception_features(images, weights_path=None, batch_size: int = 32, device: str = "cpu") -> np.ndarray:
    """N x 2048 Inception-v3 pool features (float32) of uint8 images, in input order.

    Consecutive images of equal size are batched; gray images are repeated to three
    channels. torch-fidelity's network resizes each image to 299x299 itself (TF1
    bilinear), so any size is accepted. ``weights_path=None`` resolves the file with
    ``paperlib.weights.resolve("inception")``; a missing file raises FileNotFoundError.
    """
    imgs = _as_image_list(images, "images")
    return _features(_inception(weights_path).to(device), imgs, batch_size, device)


def frechet_distance(features_a, features_b) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (N x d arrays, N >= 2).

    ``|mu_a - mu_b|^2 + tr S_a + tr S_b - 2 tr sqrt(S_a S_b)`` with unbiased covariances
    (as torch-fidelity and pytorch-fid). With S = A^T A, A = centred features / sqrt(N - 1),
    ``tr sqrt(S_a S_b)`` is the sum of the singular values of ``A_a A_b^T`` (the eigenvalues
    of S_a S_b are the squared singular values of that matrix); a set of more than d
    rows is first replaced by the d x d R factor of its QR decomposition (same A^T A).
    This is exact, costs an N x N SVD when N < d (200 images: milliseconds, where a
    2048 x 2048 matrix square root takes tens of seconds on a CPU) and has no
    sqrt(eps) error from the zero eigenvalues of rank-deficient covariances.
    """
    parts = []
    for name, f in (("features_a", features_a), ("features_b", features_b)):
        f = np.asarray(f, np.float64)
        if f.ndim != 2 or len(f) < 2:
            raise ValueError(f"{name}: need an N x d array with N >= 2 (a covariance), got shape {f.shape}")
        if not np.isfinite(f).all():
            raise ValueError(f"{name}: contains NaN or infinite values")
        mu = f.mean(axis=0)
        a = (f - mu) / math.sqrt(len(f) - 1)
        if len(a) > a.shape[1]:
            a = np.linalg.qr(a, mode="r")
        parts.append((mu, a))
    (mu_a, a), (mu_b, b) = parts
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature size mismatch: {a.shape[1]} vs {b.shape[1]}")
    tr_sqrt = np.linalg.svd(a @ b.T, compute_uv=False).sum()
    return float(np.sum((mu_a - mu_b) ** 2) + np.sum(a * a) + np.sum(b * b) - 2 * tr_sqrt)


def fid(real_images, fake_images, weights_path=None, batch_size: int = 32, device: str = "cpu") -> float:
    """FID between two sets of uint8 images (at least 2 each), Inception weights from a local file.

    Raises FileNotFoundError (``paperlib.weights.WeightsNotFound`` when the file is
    resolved by name) whose message names the file and how to provide it: a caller
    that cannot get the weights shows that message instead of a number. For repeated
    FIDs against one real set (Man et al.: 64 samplings), compute the real set's
    ``inception_features`` once and call ``frechet_distance``.
    """
    real = _as_image_list(real_images, "real_images")
    fake = _as_image_list(fake_images, "fake_images")
    model = _inception(weights_path).to(device)
    return frechet_distance(_features(model, real, batch_size, device), _features(model, fake, batch_size, device))
