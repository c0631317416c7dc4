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
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from . import protocols
from .restorer import as_restorer

__all__ = ["evaluate_network", "evaluate_arrays", "center_crops", "ipsnr_by_qf"]


def _protocol(protocol):
    return protocols.get(protocol) if isinstance(protocol, str) else protocol


def evaluate_network(paths, qfs, model, keep: Iterable[str] = (), protocol="gray", progress: bool = False,
                     seed: int = 0):
    """``protocols.evaluate`` with ``model`` as the restorer; also returns the outputs of the images in ``keep``.

    ``model``: a network or a ``Restorer`` (stochastic ones draw one sample with ``seed``).
    Returns ``(per_image, kept)`` where ``kept[(image, qf)]`` is the restored uint8 image.
    """
    restorer = as_restorer(model)
    outputs = []

    def restore(img, qf):
        out = restorer([img], qf=qf, seed=seed)[0]
        outputs.append(out)
        return out

    df = protocols.evaluate(paths, qfs, _protocol(protocol), restore=restore, progress=progress)
    keep = set(keep)
    # protocols.evaluate calls restore once per row, in row order
    kept = {(r.image, int(r.qf)): o for r, o in zip(df.itertuples(), outputs) if r.image in keep}
    return df, kept


def evaluate_arrays(refs: dict, qfs, model=None, protocol="gray", batch: int = 8, seed: int = 0) -> pd.DataFrame:
    """``protocols.evaluate`` for in-memory references (``{name: uint8}``), restoring in batches.

    Same columns as ``protocols.evaluate``; ``restored_*`` only when ``model`` is given.
    """
    protocol = _protocol(protocol)
    restorer = as_restorer(model, batch=batch) if model is not None else None
    names = list(refs)
    rows = []
    for qf in qfs:
        coded = [protocol.compress(refs[n], qf) for n in names]
        restored = restorer([c[0] for c in coded], qf=qf, seed=seed) if restorer is not None else None
        for i, n in enumerate(names):
            ref, (dec, nbytes) = refs[n], coded[i]
            row = {"image": n, "qf": int(qf), "height": ref.shape[0], "width": ref.shape[1],
                   "bpp": 8.0 * nbytes / (ref.shape[0] * ref.shape[1])}
            row.update({f"jpeg_{k}": v for k, v in protocol.score(ref, dec).items()})
            if restored is not None:
                row.update({f"restored_{k}": v for k, v in protocol.score(ref, restored[i]).items()})
            rows.append(row)
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
