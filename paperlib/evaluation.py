"""Scoring restoration networks: every paper's notebook and the CLI use these.

A network (any ``paperlib.models`` family, or a ``restorer.Restorer``) restores the
images a protocol coded (``paperlib.protocols``: which luma, codec and metric variants)
at each QF, given the tables that QF's JPEG file would carry; the protocol scores the
JPEG image and the restored one against the reference.

* ``evaluate_network``: image files, one at a time (``protocols.evaluate``), keeping
  the restored images a figure needs;
* ``evaluate_arrays``: in-memory references (crops, training images), restored in
  batches of same-sized images;
* ``restore``: decoded JPEG images restored (or K draws of a stochastic network), for
  the measurements that need the images themselves (distances between sets, consistency);
* ``swd_levels``: ``metrics.swd`` of two sets, through the results cache;
* ``center_crops``, ``ipsnr_by_qf``: the small pieces the figures share;
* ``paired_bootstrap``: whether a difference between two methods on the same images
  exceeds the image-to-image noise.

Rows and restored images come from the results cache (``paperlib.cache``) when the
image, the protocol, the QF, the seed, the network's weights and the code that computes
them are unchanged.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from . import jpeg, protocols

__all__ = ["evaluate_network", "evaluate_arrays", "restore", "swd_levels", "center_crops", "ipsnr_by_qf",
           "paired_bootstrap"]


def as_restorer(model, batch: int = 1, **kwargs):
    """``restorer.as_restorer`` (imported when a network is first scored: JPEG-only rows never load torch), one
    image per forward pass unless ``batch`` says otherwise: on a CPU one photo at a time keeps a network's
    activations in cache (One-to-Many on 320x480 images, AVX2: 1.4x faster per image than batches of 4); an
    image's output depends on its batch only through float summation order (``tests/test_restorer.py``)."""
    from .restorer import as_restorer
    return as_restorer(model, batch=batch, **kwargs)


def _protocol(protocol):
    return protocols.get(protocol) if isinstance(protocol, str) else protocol


# What a restored row runs, besides protocols.CODE and the network's own code (cache.forward_digest)
RESTORE_CODE = ("paperlib.restorer:Restorer", "paperlib.restorer:_generator", "paperlib.evaluation:_restored_rows")


# What ``restore`` runs, besides the network's own code
IMAGES_CODE = ("paperlib.restorer:Restorer", "paperlib.restorer:_generator", "paperlib.patches:derive_seed",
               "paperlib.evaluation:restore", "paperlib.evaluation:_restore_some")

SAMPLING_CODE = ("paperlib.diffjpeg.consistency", "paperlib.metrics.sampling")   # the stochastic report's columns


def _restored_rows(restorer, protocol, refs: list, qf: int, seed: int, keep: set, names: list, samples=None):
    """Rows (JPEG and restored scores) of ``refs`` at ``qf``, from the results cache where it has them, the
    rest restored together (same-sized images batched). Returns ``(rows, kept images by name)``.

    ``samples=K`` (stochastic models): K draws of Z per image; the scores and the kept image are sample 0's
    (the single sample of the same seed), plus ``restored_per_pixel_std`` over the K draws and
    ``restored_consistency`` (Man et al.'s RMSE, gray levels, of sample 0; ``diffjpeg.consistency``)."""
    from . import cache
    extra = {}
    if restorer is not None:
        model = restorer.model
        extra = {"model": cache.model_digest(model), "seed": seed if restorer.stochastic else None,
                 "restore_code": cache.code_digest(*RESTORE_CODE), "model_code": cache.forward_digest(model)}
        if samples is not None:
            extra.update(samples=int(samples), sampling_code=cache.code_digest(*SAMPLING_CODE))
    keys = [protocols.cache_key(protocol, ref, qf, **extra) for ref in refs]
    rows, kept, missing = [None] * len(refs), {}, []
    for i, k in enumerate(keys):
        hit = cache.load(k, with_image=restorer is not None and names[i] in keep)
        if hit is None:
            missing.append(i)
            continue
        rows[i] = hit[0]
        if hit[1] is not None:
            kept[names[i]] = hit[1]
    if missing:
        coded = {i: protocols.jpeg_row(protocol, refs[i], qf) for i in missing}
        restored = (restorer([coded[i][1] for i in missing], qf=qf, seed=seed, samples=samples)
                    if restorer is not None else None)
        for j, i in enumerate(missing):
            row = dict(coded[i][0])
            image = None
            if restored is not None:
                out = restored[j]
                if samples is not None:
                    from . import diffjpeg, metrics
                    stack, out = out, out[0]
                    row["restored_per_pixel_std"] = metrics.per_pixel_std(stack)
                    row["restored_consistency"] = diffjpeg.consistency(
                        out, refs[i], qf, subsampling=protocol.subsampling, codec=protocol.codec)
                if out.shape != refs[i].shape:
                    raise ValueError(f"{names[i]}: restored shape {out.shape} != {refs[i].shape}")
                row.update({f"restored_{k}": float(v) for k, v in protocol.score(refs[i], out).items()})
                if names[i] in keep:
                    kept[names[i]] = image = out
            cache.store(keys[i], row, image)
            rows[i] = row
    return [{"image": n, **r} for n, r in zip(names, rows)], kept


def evaluate_network(paths, qfs, model, keep: Iterable[str] = (), protocol="gray", progress: bool = False,
                     seed: int = 0, samples: int | None = None):
    """Per-image JPEG and restored scores of image files (``protocols.evaluate``'s columns), and the kept outputs.

    ``model``: a network or a ``Restorer`` (stochastic ones draw one sample with ``seed``; with ``samples=K``,
    K draws per image and two more columns, see ``_restored_rows``); rows come from the results cache
    (``paperlib.cache``) when nothing they depend on changed.
    Returns ``(per_image, kept)`` where ``kept[(image, qf)]`` is the restored uint8 image of each
    image named in ``keep``.
    """
    from tqdm.auto import tqdm

    protocol = _protocol(protocol)
    restorer = as_restorer(model, batch=1)
    if samples is not None and (int(samples) < 2 or not restorer.stochastic):
        raise ValueError(f"samples (draws of Z for the per-pixel STD) need a stochastic model and K >= 2, got "
                         f"{samples} for {'a stochastic' if restorer.stochastic else 'a deterministic'} model")
    qfs = [jpeg.check_qf(q) for q in qfs]
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("no images to evaluate")
    keep = set(keep)
    rows, kept = [], {}
    for path in tqdm(paths, desc=f"{restorer.name} {protocol.name} QF {qfs}", disable=not progress, leave=False):
        ref = protocols.reference(protocol, path)
        for qf in qfs:
            r, k = _restored_rows(restorer, protocol, [ref], qf, seed, keep, [path.stem], samples)
            rows += r
            kept.update({(n, qf): im for n, im in k.items()})
    return pd.DataFrame(rows), kept


def evaluate_arrays(refs: dict, qfs, model=None, protocol="gray", batch: int = 8, seed: int = 0) -> pd.DataFrame:
    """The same for in-memory references (``{name: uint8}``), restoring same-sized images in batches.

    Same columns as ``protocols.evaluate``; ``restored_*`` only when ``model`` is given.
    """
    protocol = _protocol(protocol)
    restorer = as_restorer(model, batch=batch) if model is not None else None
    names = list(refs)
    rows = []
    for qf in qfs:
        rows += _restored_rows(restorer, protocol, [refs[n] for n in names], jpeg.check_qf(qf), seed, set(), names)[0]
    return pd.DataFrame(rows)


def restore(model, decoded: dict, qf: int | None = None, seed: int = 0, samples: int | None = None,
            tables=None) -> dict:
    """``{name: restored uint8}`` (or K x H x W(x3) stacks with ``samples=K``) of decoded JPEG images, with the IJG
    tables of ``qf`` or the ``tables`` their files carry (one T x 8 x 8 array for all), as one ``Restorer`` call over
    ``decoded`` in its order: sample ``k`` of the ``i``-th image draws its Z from ``derive_seed(seed, i, k)``, so the
    same call gives the same samples and draw 0 of ``samples=K`` is the single draw of ``samples=None``.

    Each image's output comes from the results cache when its decoded pixels, its position (stochastic networks),
    ``qf``, ``seed``, ``samples``, the network's weights and the code that restores it are unchanged; the others are
    restored together, each with its own position's draws.
    """
    if (qf is None) == (tables is None):
        raise ValueError("give qf (IJG tables) or tables, one of them")
    from . import cache
    restorer = as_restorer(model)
    names = list(decoded)
    net = restorer.model
    common = {"what": "restored images", "model": cache.model_digest(net), "model_code": cache.forward_digest(net),
              "restore_code": cache.code_digest(*IMAGES_CODE), "qf": None if qf is None else int(qf),
              "tables": None if tables is None else cache.digest_array(np.asarray(tables, np.float32)),
              "samples": None if samples is None else int(samples)}   # a 1-stack is not an image
    if restorer.stochastic:
        common["seed"] = int(seed)
    keys = [cache.key(**common, image=cache.digest_array(np.asarray(decoded[n])),
                      index=i if restorer.stochastic else None) for i, n in enumerate(names)]
    out, missing = {}, []
    for i, (n, k) in enumerate(zip(names, keys)):
        hit = cache.load(k, with_image=True)
        if hit is None:
            missing.append(i)
        else:
            out[n] = hit[1]
    if missing:
        fresh = _restore_some(restorer, [decoded[n] for n in names], missing, qf, tables, seed, samples)
        for i, img in zip(missing, fresh):
            cache.store(keys[i], {"image": names[i], "shape": list(img.shape)}, img)
            out[names[i]] = img
    return {n: out[n] for n in names}


def _restore_some(restorer, images: list, which: list, qf, tables, seed: int, samples) -> list:
    """``restorer(images, tables, qf=qf, seed=seed, samples=samples)`` for the images at positions ``which`` only,
    each with the draws of its own position in the whole call (``Restorer``'s jobs: image index and sample)."""
    if len(which) == len(images):
        return restorer(images, tables, qf=qf, seed=seed, samples=samples)
    if samples is not None and (int(samples) < 1 or (int(samples) > 1 and not restorer.stochastic)):
        return restorer(images[:1], tables, qf=qf, seed=seed, samples=samples)   # the restorer says what is wrong
    k = 1 if samples is None else int(samples)
    images = [restorer._check(im) for im in images]
    outs = restorer._run(images, restorer._tables(len(images), tables, qf), [(i, s) for i in which for s in range(k)],
                         seed)
    return [outs[(i, 0)] if samples is None else np.stack([outs[(i, s)] for s in range(k)]) for i in which]


def swd_levels(real, fake, seed: int = 0) -> np.ndarray:
    """``metrics.swd(real, fake, seed=seed)`` (one distance per pyramid level), from the results cache when the
    two sets' pixels (in order), the seed and ``paperlib.metrics.distribution`` are unchanged."""
    from . import cache, metrics
    k = cache.key(what="swd", real=[cache.digest_array(np.asarray(a)) for a in real],
                  fake=[cache.digest_array(np.asarray(a)) for a in fake], seed=int(seed),
                  code=cache.code_digest("paperlib.metrics.distribution"))
    return cache.computed(k, lambda: metrics.swd(real, fake, seed=seed))


def center_crops(paths, size: int, protocol="gray") -> dict:
    """``{image name: the size x size centre crop of its reference}`` (images smaller than ``size`` whole).

    Crops are taken from the uncompressed image, so JPEG is applied to the crop
    itself (its 8x8 grid starts at the crop's corner).
    """
    protocol = _protocol(protocol)
    out = {}
    for p in paths:
        ref = protocols.reference(protocol, p)
        h, w = ref.shape[:2]
        ch, cw = min(size, h), min(size, w)
        top, left = (h - ch) // 2, (w - cw) // 2
        out[Path(p).stem] = np.ascontiguousarray(ref[top:top + ch, left:left + cw])
    return out


def ipsnr_by_qf(per_image: pd.DataFrame) -> pd.DataFrame:
    """Mean IPSNR and IPSNR-B (restored minus JPEG, dB) per QF, with the number of images."""
    d = per_image.assign(ipsnr=per_image.restored_psnr - per_image.jpeg_psnr,
                         ipsnrb=per_image.restored_psnrb - per_image.jpeg_psnrb,
                         issim=per_image.restored_ssim - per_image.jpeg_ssim)
    g = d.groupby("qf")
    return g[["ipsnr", "ipsnrb", "issim"]].mean().assign(n_images=g.size()).reset_index()


def paired_bootstrap(a, b, n: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Mean per-image difference ``a - b`` of two methods scored on the same images, with a 95% interval.

    ``a[i]`` and ``b[i]`` are the scores of image ``i``. The interval is the percentile bootstrap
    over images: ``n`` resamples of the images with replacement (``numpy.random.default_rng(seed)``,
    so a given input always gives the same interval), the 2.5th and 97.5th percentiles of the
    resampled mean differences. It measures how much the mean difference depends on which images
    happened to be in the set; an interval that excludes 0 means the ranking is beyond that noise.
    Returns ``(mean difference, low, high)``; with a single image there is no spread to resample
    and ``low``, ``high`` are NaN.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"paired_bootstrap needs two 1-D arrays of the same length, got {a.shape} and {b.shape}")
    if a.size == 0:
        raise ValueError("paired_bootstrap needs at least one image")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("paired_bootstrap: scores must be finite (a NaN or Inf would hide in the mean)")
    if int(n) < 1:
        raise ValueError(f"paired_bootstrap: n must be a positive number of resamples, got {n}")
    d = a - b
    mean = float(d.mean())
    if d.size == 1:
        return mean, float("nan"), float("nan")
    idx = np.random.default_rng(seed).integers(0, d.size, size=(int(n), d.size))
    low, high = np.percentile(d[idx].mean(axis=1), [2.5, 97.5])
    return mean, float(low), float(high)
