"""Named evaluation protocols: which luma, which codec, which metric variants.

A notebook or the CLI names a protocol (``gray`` or ``color-qgcn``) and gets
exactly the conventions that reproduce the papers' JPEG rows (docs/conventions.md).
Variants for comparison are made with ``dataclasses.replace``, e.g.
``replace(GRAY, ssim_window="gaussian11")``.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from . import images, jpeg, metrics

__all__ = ["Protocol", "GRAY", "COLOR_QGCN", "COLOR_QGCN_SSIM8", "PROTOCOLS", "get", "evaluate", "summarize", "replace",
           "reference", "scored"]


@dataclass(frozen=True)
class Protocol:
    name: str
    color: bool
    description: str
    luma: str = "matlab"            # gray only: "matlab" (rgb2ycbcr) or "pillow" (convert('L'))
    codec: str = "pillow"           # see paperlib.jpeg
    decoder: str | None = None      # None: decode with ``codec`` too
    subsampling: str = "4:2:0"      # colour only
    ssim_window: str = "uniform8"   # see paperlib.metrics.ssim
    psnrb_counts: str = "fractional"

    def reference(self, path) -> np.ndarray:
        """The uncompressed image this protocol scores against (uint8)."""
        if self.color:
            return images.read_rgb(path)
        if self.luma == "matlab":
            return images.read_gray(path)
        if self.luma == "pillow":
            img = images.read_image(path)
            return img if img.ndim == 2 else images.pillow_luma(img)
        raise ValueError(f"unknown luma {self.luma!r}")

    def compress(self, ref: np.ndarray, qf: int):
        """``(decoded uint8 image, JPEG size in bytes)`` at quality ``qf``."""
        data = jpeg.encode(ref, qf, subsampling=self.subsampling, codec=self.codec)
        return jpeg.decode(data, codec=self.decoder or self.codec), len(data)

    def score(self, ref: np.ndarray, test: np.ndarray) -> dict:
        """PSNR, SSIM and PSNR-B of ``test`` against ``ref``."""
        test = np.asarray(test)
        if test.dtype != np.uint8:
            raise ValueError(f"score uint8 images (round and clip first), got {test.dtype}")
        return {"psnr": metrics.psnr(ref, test),
                "ssim": metrics.ssim(ref, test, window=self.ssim_window),
                "psnrb": metrics.psnrb(ref, test, counts=self.psnrb_counts)}


GRAY = Protocol(
    "gray", color=False,
    description="luma by MATLAB rgb2ycbcr; IJG libjpeg 6b-equivalent codec (Pillow); PSNR; "
                "SSIM with 8x8 uniform window (valid region); PSNR-B with fractional pair counts")
COLOR_QGCN = Protocol(
    "color-qgcn", color=True, codec="libjpeg9", subsampling="4:2:0", ssim_window="skimage",
    description="RGB; IJG libjpeg 9e 4:2:0 encode+decode; PSNR over RGB; scikit-image SSIM "
                "(7x7, per channel, averaged); PSNR-B with BEF summed over channels")
# QGCN Table II's BSDS500 SSIM column reproduces only with the 8x8 uniform window
# (its LIVE1 column needs scikit-image's 7x7): the paper evidently mixed two SSIM codes.
COLOR_QGCN_SSIM8 = replace(
    COLOR_QGCN, name="color-qgcn-ssim8", ssim_window="uniform8",
    description="as color-qgcn, but SSIM with the 8x8 uniform window per channel (QGCN Table II, BSDS500)")
PROTOCOLS = {p.name: p for p in (GRAY, COLOR_QGCN, COLOR_QGCN_SSIM8)}


def get(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; choose one of {sorted(PROTOCOLS)}")
    return PROTOCOLS[name]


def jpeg_row(protocol: Protocol, ref: np.ndarray, qf: int):
    """``(row, decoded image)``: the JPEG scores of ``ref`` at ``qf`` (``bpp``, ``jpeg_*``), without its name."""
    dec, nbytes = protocol.compress(ref, qf)
    row = {"qf": qf, "height": ref.shape[0], "width": ref.shape[1], "bpp": 8.0 * nbytes / (ref.shape[0] * ref.shape[1])}
    row.update({f"jpeg_{k}": float(v) for k, v in protocol.score(ref, dec).items()})
    return row, dec


CODE = ("paperlib.protocols:Protocol", "paperlib.protocols:jpeg_row", "paperlib.jpeg", "paperlib.images",
        "paperlib.metrics.fidelity")   # what a JPEG row runs


READ_MEMO_BYTES = 256 << 20   # references kept in memory: a notebook reads the same set once per network
_READ_MEMO: OrderedDict = OrderedDict()


def reference(protocol: Protocol, path) -> np.ndarray:
    """``protocol.reference(path)``, remembered while the file's size and modification time stay the same (the
    last ``READ_MEMO_BYTES`` of references); a fresh copy each call."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError:
        return protocol.reference(path)   # it says what is wrong with the path
    key = (protocol, str(path.resolve()), st.st_size, st.st_mtime_ns)
    ref = _READ_MEMO.get(key)
    if ref is None:
        ref = _READ_MEMO[key] = protocol.reference(path)
        while sum(a.nbytes for a in _READ_MEMO.values()) > READ_MEMO_BYTES and len(_READ_MEMO) > 1:
            _READ_MEMO.popitem(last=False)
    else:
        _READ_MEMO.move_to_end(key)
    return ref.copy()


def scored(protocol: Protocol, ref: np.ndarray, test: np.ndarray) -> dict:
    """``protocol.score(ref, test)`` from the results cache when both images' pixels, the protocol and the code of
    its metrics are unchanged."""
    from dataclasses import asdict

    from . import cache
    k = cache.key(what="score", ref=cache.digest_array(np.asarray(ref)), test=cache.digest_array(np.asarray(test)),
                  protocol=asdict(protocol), code=cache.code_digest("paperlib.protocols:Protocol",
                                                                    "paperlib.metrics.fidelity"))
    hit = cache.load(k)
    if hit is not None:
        return hit[0]
    row = {m: float(v) for m, v in protocol.score(ref, test).items()}
    cache.store(k, row)
    return row


def cache_key(protocol: Protocol, ref: np.ndarray, qf: int, **more) -> str:
    """The results-cache key of ``ref``'s row at ``qf`` under ``protocol`` (``more``: the network, seed, ...)."""
    from dataclasses import asdict

    from . import cache
    return cache.key(image=cache.digest_array(ref), protocol=asdict(protocol), qf=qf,
                     code=cache.code_digest(*CODE), **more)


def evaluate(paths: Iterable, qfs: Iterable[int], protocol: Protocol | str = GRAY,
             restore: Callable | None = None, progress: bool = True) -> pd.DataFrame:
    """Per-image scores of the JPEG images (and of ``restore(jpeg_img, qf)`` if given).

    Returns one row per (image, qf) with ``jpeg_psnr``/``jpeg_ssim``/``jpeg_psnrb``,
    ``bpp`` (bits per pixel of the JPEG file) and, with ``restore``, the same
    metrics prefixed ``restored_``. JPEG-only rows come from the results cache when
    their content and code are unchanged (``paperlib.cache``; ``PAPERLIB_NO_CACHE=1``
    turns it off); networks are scored with ``paperlib.evaluation``.
    """
    from . import cache, machine
    machine.keep_freed_memory()
    protocol = get(protocol) if isinstance(protocol, str) else protocol
    paths = [Path(p) for p in paths]
    qfs = [jpeg.check_qf(q) for q in qfs]
    if not paths:
        raise ValueError("no images to evaluate")
    if not qfs:
        raise ValueError("no quality factors given")
    rows = []
    for path in tqdm(paths, desc=f"{protocol.name} QF {qfs}", disable=not progress, leave=False):
        ref = reference(protocol, path)
        for qf in qfs:
            k = cache_key(protocol, ref, qf) if restore is None else None
            hit = cache.load(k) if k else None
            if hit is not None:
                rows.append({"image": path.stem, **hit[0]})
                continue
            row, dec = jpeg_row(protocol, ref, qf)
            if k:
                cache.store(k, row)
            row = {"image": path.stem, **row}
            if restore is not None:
                out = restore(dec, qf)
                if out.shape != ref.shape:
                    raise ValueError(f"{path.name}: restored shape {out.shape} != {ref.shape}")
                row.update({f"restored_{k}": v for k, v in protocol.score(ref, out).items()})
            rows.append(row)
    return pd.DataFrame(rows)


def summarize(per_image: pd.DataFrame) -> pd.DataFrame:
    """Mean of every metric per QF, with the number of images."""
    cols = [c for c in per_image.columns if c.startswith(("jpeg_", "restored_")) or c == "bpp"]
    out = per_image.groupby("qf")[cols].mean()
    out.insert(0, "n_images", per_image.groupby("qf").size())
    return out.reset_index()
