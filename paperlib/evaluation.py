"""Scoring restoration networks: every paper's notebook and the CLI use these.

A network (any ``paperlib.models`` family, or a ``restorer.Restorer``) restores the
images a protocol coded (``paperlib.protocols``: which luma, codec and metric variants)
at each QF, given the tables that QF's JPEG file would carry; the protocol scores the
JPEG image and the restored one against the reference.

* ``evaluate_network``: image files, one at a time (``protocols.evaluate``), keeping
  the restored images a figure needs;
* ``evaluate_arrays``: in-memory references (crops, training images), restored in
  batches of same-sized images;
* ``center_crops``, ``ipsnr_by_qf``: the small pieces the figures share.

Rows come from the results cache (``paperlib.cache``) when the image, the protocol, the
QF, the network's weights and the code that computes them are unchanged.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from . import jpeg, protocols
from .restorer import as_restorer

__all__ = ["evaluate_network", "evaluate_arrays", "center_crops", "ipsnr_by_qf"]


def _protocol(protocol):
    return protocols.get(protocol) if isinstance(protocol, str) else protocol


RESTORE_CODE = ("paperlib.restorer", "paperlib.evaluation")   # besides protocols.CODE and the network's module


def _restored_rows(restorer, protocol, refs: list, qf: int, seed: int, keep: set, names: list):
    """Rows (JPEG and restored scores) of ``refs`` at ``qf``, from the results cache where it has them, the
    rest restored together (same-sized images batched). Returns ``(rows, kept images by name)``."""
    from . import cache
    extra = {}
    if restorer is not None:
        model = restorer.model
        extra = {"model": cache.model_digest(model), "seed": seed if restorer.stochastic else None,
                 "restore_code": cache.code_digest(*RESTORE_CODE, type(model).__module__)}
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
        restored = restorer([coded[i][1] for i in missing], qf=qf, seed=seed) if restorer is not None else None
        for j, i in enumerate(missing):
            row = dict(coded[i][0])
            image = None
            if restored is not None:
                out = restored[j]
                if out.shape != refs[i].shape:
                    raise ValueError(f"{names[i]}: restored shape {out.shape} != {refs[i].shape}")
                row.update({f"restored_{k}": float(v) for k, v in protocol.score(refs[i], out).items()})
                if names[i] in keep:
                    kept[names[i]] = image = out
            cache.store(keys[i], row, image)
            rows[i] = row
    return [{"image": n, **r} for n, r in zip(names, rows)], kept


def evaluate_network(paths, qfs, model, keep: Iterable[str] = (), protocol="gray", progress: bool = False,
                     seed: int = 0):
    """Per-image JPEG and restored scores of image files (``protocols.evaluate``'s columns), and the kept outputs.

    ``model``: a network or a ``Restorer`` (stochastic ones draw one sample with ``seed``); rows come
    from the results cache (``paperlib.cache``) when nothing they depend on changed.
    Returns ``(per_image, kept)`` where ``kept[(image, qf)]`` is the restored uint8 image of each
    image named in ``keep``.
    """
    from tqdm.auto import tqdm

    protocol = _protocol(protocol)
    restorer = as_restorer(model, batch=1)
    qfs = [jpeg.check_qf(q) for q in qfs]
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("no images to evaluate")
    keep = set(keep)
    rows, kept = [], {}
    for path in tqdm(paths, desc=f"{restorer.name} {protocol.name} QF {qfs}", disable=not progress, leave=False):
        ref = protocol.reference(path)
        for qf in qfs:
            r, k = _restored_rows(restorer, protocol, [ref], qf, seed, keep, [path.stem])
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


def center_crops(paths, size: int, protocol="gray") -> dict:
    """``{image name: the size x size centre crop of its reference}`` (images smaller than ``size`` whole).

    Crops are taken from the uncompressed image, so JPEG is applied to the crop
    itself (its 8x8 grid starts at the crop's corner).
    """
    protocol = _protocol(protocol)
    out = {}
    for p in paths:
        ref = protocol.reference(p)
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
