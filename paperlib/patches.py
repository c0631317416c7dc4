"""Training pairs made on the fly: random crops of clean gray images and their JPEG versions.

Every patch is a pure function of ``(seed, step, index)``: sample ``index`` of
the global batch of training step ``step`` comes from its own
``numpy.random.Generator`` seeded with that triple. So

* a resumed run sees exactly the batches an uninterrupted run would (the data
  position is just the step number, nothing else to save);
* under ``torchrun`` rank ``r`` of ``W`` makes samples ``r*B/W .. (r+1)*B/W - 1``
  of the same global batch of ``B``; the ranks together see the batch a
  single process would, whatever ``W`` is;
* batches can be made ahead of time in another thread in any order.

Compression: the crop is cut from the clean image first and then JPEG-compressed
on its own with the exact codec (``paperlib.jpeg.roundtrip``, Pillow/libjpeg,
IJG tables), as the paper compresses its 120x120 cut-outs. The 8x8 block grid
therefore starts at the crop's top-left corner, like the grid of a whole test
image starts at the image's top-left corner (and ``CASCNN`` pads only at the
bottom/right, keeping that alignment). Crop origins are uniform over all
positions (not snapped to multiples of 8: the grid is the crop's own anyway).
Images are drawn uniformly (each image equally likely, whatever its size).

Tensors: float32, N x 1 x h x w (gray) or N x 3 x h x w (RGB images), values
``uint8 / 255`` in [0, 1]. With ``with_tables=True`` a batch also carries the
quantization tables each patch was coded with (N x T x 8 x 8 float, the IJG
tables of its QF: T = 1 luma table for gray, 2 for colour; what QGCN reads).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from . import jpeg

__all__ = ["PatchSampler", "build_val_set", "derive_seed", "to_tensor", "qf_tables"]

VAL_STREAM = 2 ** 32 - 1  # seed-sequence word that keeps validation crops apart from any training step


def derive_seed(*words: int) -> int:
    """A 63-bit seed that depends on every word (via numpy's SeedSequence hashing)."""
    return int(np.random.SeedSequence([int(w) for w in words]).generate_state(1, np.uint64)[0] >> 1)


def to_tensor(batch_uint8: np.ndarray) -> torch.Tensor:
    """N x h x w (gray) or N x h x w x 3 (RGB) uint8 -> N x C x h x w float32 in [0, 1]."""
    t = torch.from_numpy(batch_uint8)
    t = t.unsqueeze(1) if t.ndim == 3 else t.permute(0, 3, 1, 2)
    return t.float().div_(255.0).contiguous()


def qf_tables(qfs, color: bool) -> torch.Tensor:
    """N x T x 8 x 8 float IJG tables (baseline) of each QF: T = 2 (luma, chroma) if ``color`` else 1."""
    return torch.tensor(np.array([jpeg.ijg_tables(int(q), color) for q in qfs]), dtype=torch.float32)


def _check_qf(qf):
    if isinstance(qf, (tuple, list)):
        lo, hi = (jpeg.check_qf(q) for q in qf)
        if lo > hi:
            raise ValueError(f"QF range must be (low, high), got {qf}")
        return (lo, hi)
    return jpeg.check_qf(qf)


def _check_images(images, crop: int | None) -> list[np.ndarray]:
    images = [np.asarray(im) for im in images]
    if not images:
        raise ValueError("no images")
    ndim = images[0].ndim
    for k, im in enumerate(images):
        ok = im.dtype == np.uint8 and (im.ndim == 2 or im.ndim == 3 and im.shape[2] == 3)
        if not ok or im.ndim != ndim:
            raise ValueError(f"image {k}: expected HxW uint8 gray or HxWx3 uint8 RGB images, all of one kind; "
                             f"got {im.dtype} {im.shape}")
        if crop is not None and min(im.shape[:2]) < crop:
            raise ValueError(f"image {k} ({im.shape}) is smaller than the {crop}x{crop} crop")
    return images


def _draw(images, crop: int, qf, rng: np.random.Generator, codec: str):
    """One (jpeg, clean, qf) crop; the only place randomness is consumed."""
    img = images[rng.integers(len(images))]
    y = int(rng.integers(img.shape[0] - crop + 1))
    x = int(rng.integers(img.shape[1] - crop + 1))
    q = int(rng.integers(qf[0], qf[1] + 1)) if isinstance(qf, tuple) else qf
    clean = np.ascontiguousarray(img[y:y + crop, x:x + crop])
    return jpeg.roundtrip(clean, q, codec=codec)[0], clean, q


class PatchSampler:
    """``batch(step) -> (jpeg, clean)``: this rank's share of global batch ``step``.

    images: HxW uint8 arrays (e.g. ``images.read_gray`` of each training file), or
    HxWx3 RGB arrays (coded with 4:2:0 chroma subsampling, as Pillow's default).
    with_tables: batches are ``(jpeg, clean, tables)``, see the module doc.
    crop: side of the square crops. batch_size: the global batch (all ranks).
    qf: an int, or ``(low, high)`` for a QF drawn uniformly per patch (inclusive).
    """

    def __init__(self, images: Sequence[np.ndarray], crop: int, batch_size: int, qf,
                 seed: int = 0, rank: int = 0, world_size: int = 1, codec: str = "pillow",
                 with_tables: bool = False):
        if batch_size % world_size:
            raise ValueError(f"global batch {batch_size} is not divisible by {world_size} ranks")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside 0..{world_size - 1}")
        self.images = _check_images(images, crop)
        self.crop, self.batch_size, self.qf = int(crop), int(batch_size), _check_qf(qf)
        self.seed, self.rank, self.world_size, self.codec = int(seed), rank, world_size, codec
        self.local_batch = batch_size // world_size
        self.color, self.with_tables = self.images[0].ndim == 3, bool(with_tables)

    def sample(self, step: int, index: int):
        """Sample ``index`` (0 .. batch_size-1) of global batch ``step``: (jpeg uint8, clean uint8, qf)."""
        return _draw(self.images, self.crop, self.qf,
                     np.random.default_rng([self.seed, int(step), int(index)]), self.codec)

    def batch(self, step: int) -> tuple:
        n, c = self.local_batch, self.crop
        shape = (n, c, c, 3) if self.color else (n, c, c)
        jpg, clean, qfs = np.empty(shape, np.uint8), np.empty(shape, np.uint8), []
        first = self.rank * n
        for k in range(n):
            jpg[k], clean[k], q = self.sample(step, first + k)
            qfs.append(q)
        if self.with_tables:
            return to_tensor(jpg), to_tensor(clean), qf_tables(qfs, self.color)
        return to_tensor(jpg), to_tensor(clean)

    __call__ = batch

    def describe(self) -> dict:
        return {"n_images": len(self.images), "crop": self.crop, "batch_size": self.batch_size,
                "qf": list(self.qf) if isinstance(self.qf, tuple) else self.qf, "seed": self.seed,
                "codec": self.codec, "color": self.color}


def build_val_set(images: Sequence[np.ndarray], qf, crop: int | None = None, n: int | None = None,
                  seed: int = 0, batch_size: int = 16, codec: str = "pillow", with_tables: bool = False):
    """A fixed validation set: a list of ``(jpeg, clean)`` float tensor pairs.

    crop=None: every whole image, one pair (1 x 1 x H x W) per image, compressed
    whole (any size; the model pads internally). With ``crop``: ``n`` crops
    (default: one per image) drawn as training patches are, from a stream of
    their own, stacked into batches of ``batch_size``. A QF range draws one QF
    per crop/image. Deterministic in ``seed``. ``with_tables``: triples
    ``(jpeg, clean, tables)`` as ``PatchSampler`` batches.
    """
    images = _check_images(images, crop)
    qf = _check_qf(qf)
    if crop is None:
        pairs = []
        for k, img in enumerate(images):
            rng = np.random.default_rng([seed, VAL_STREAM, k])
            q = int(rng.integers(qf[0], qf[1] + 1)) if isinstance(qf, tuple) else qf
            dec = jpeg.roundtrip(img, q, codec=codec)[0]
            pair = (to_tensor(dec[None]), to_tensor(img[None]))
            pairs.append(pair + (qf_tables([q], img.ndim == 3),) if with_tables else pair)
        return pairs
    n = len(images) if n is None else int(n)
    crops = [_draw(images, crop, qf, np.random.default_rng([seed, VAL_STREAM, k]), codec) for k in range(n)]
    out = []
    for i in range(0, n, batch_size):
        part = crops[i:i + batch_size]
        pair = (to_tensor(np.stack([c[0] for c in part])), to_tensor(np.stack([c[1] for c in part])))
        out.append(pair + (qf_tables([c[2] for c in part], part[0][1].ndim == 3),) if with_tables else pair)
    return out
