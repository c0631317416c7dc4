"""One call for every model family: decoded JPEG images and their quantisation tables in, 8-bit images out.

``Restorer(model)(images, tables=..., qf=..., seed=..., samples=...)`` restores a list of
decoded JPEG images (HxW gray or HxWx3 RGB uint8, any sizes) with any network of
``paperlib.models``: CAS-CNN, L4/L8, QGCN/QCN/EDSR and the stochastic generators.
The networks say what they need through three attributes, so nothing here (nor in the
CLI) branches on architecture names:

* ``channels``: 1 (gray) or 3 (RGB); images of the other kind are refused;
* ``uses_tables``: ``model(x, tables)`` with N x T x 8 x 8 tables (QGCN, QCN: the
  quantisation tables the images were coded with; T = 2 for colour, 1 for gray), else
  ``model(x)``;
* ``stochastic``: ``model(x[, tables], z=z)`` with noise ``z = model.noise(x1, generator)``
  drawn per image and sample. Sample ``k`` of the ``i``-th image of a call uses a
  ``torch.Generator`` seeded with ``derive_seed(seed, i, k)``, so a sample does not depend
  on how images are batched, and the same call with the same seed gives the same samples.

Inputs go in as ``uint8 / 255`` (float32, channels_last by default), outputs are clamped
to [0, 1], scaled by 255 and rounded to uint8. Images of the same size are batched
together (``batch`` at a time); the networks pad odd sizes themselves and crop back.

Large images (more than ``max_pixels``) are restored in ``tile`` x ``tile`` tiles, each run
with a margin of ``model.halo`` pixels (the receptive-field radius) cut from the whole image
and starting on the model's ``grid`` (its down-sampling and quantization-map grid), and only
the tile's own pixels kept: every kept pixel sees exactly the neighbourhood it sees in the
whole image, so tiled and untiled outputs agree up to float summation order (tested per
family). Networks with a global view (QGCN's global branch) compute it once on the whole
image (``model.global_context``) and get it with every tile; stochastic models draw their
noise for the whole image and each tile takes its part. Memory then grows with the tile,
not with the photo.
Tables: one T x 8 x 8 array for every image, a list with one per image, or ``qf`` for the
IJG tables libjpeg writes at that quality (``jpeg.ijg_tables``). Real JPEG files are
restored with the tables they carry (``restore_file``).
"""
from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn

from . import jpeg, machine
from .patches import derive_seed

__all__ = ["Restorer", "as_restorer", "FLOP_LOG"]

FLOP_LOG = "PAPERLIB_FLOP_LOG"   # benchmarks: a file every network evaluation appends its FLOPs to


class Restorer:
    """A network behind the one restoration call (see the module doc)."""

    def __init__(self, model: nn.Module, name: str | None = None, batch: int = 8, channels_last: bool = True,
                 tile: int = 512, max_pixels: int = 1_500_000):
        for attr in ("channels", "uses_tables", "stochastic", "halo", "grid"):
            if not hasattr(model, attr):
                raise TypeError(f"{type(model).__name__} does not say its {attr!r}; not a paperlib restoration network")
        if tile % model.grid:
            raise ValueError(f"tile {tile} is not a multiple of {self.name if name else type(model).__name__}'s "
                             f"grid {model.grid}")
        self.model, self.name = model, name or type(model).__name__
        self.batch, self.channels_last = int(batch), channels_last
        self.tile, self.max_pixels = int(tile), int(max_pixels)
        machine.keep_freed_memory()

    @property
    def color(self) -> bool:
        return self.model.channels == 3

    @property
    def stochastic(self) -> bool:
        return bool(self.model.stochastic)

    @classmethod
    def load(cls, name: str, device: str = "cpu", **kw) -> "Restorer":
        """The committed network ``name`` (``paperlib.zoo``, sha256 checked) behind the restoration call."""
        from . import zoo
        return cls(zoo.load(name, device=device), name, **kw)

    # ---- the call ---------------------------------------------------------------------------

    def __call__(self, images: Sequence[np.ndarray], tables=None, qf: int | None = None, seed: int = 0,
                 samples: int | None = None) -> list:
        """Restore ``images``: a list of uint8 images, or with ``samples=K`` a list of K x H x W(x3) stacks."""
        images = [self._check(im) for im in images]
        per_image = self._tables(len(images), tables, qf)
        if samples is not None and int(samples) < 1:
            raise ValueError(f"samples must be >= 1, got {samples}")
        if samples not in (None, 1) and not self.stochastic:
            raise ValueError(f"{self.name} is deterministic: every sample would be the same image; "
                             "ask for samples of a stochastic model only")
        k = 1 if samples is None else int(samples)
        jobs = [(i, s) for i in range(len(images)) for s in range(k)]
        outs = self._run(images, per_image, jobs, seed)
        if samples is None:
            return [outs[(i, 0)] for i in range(len(images))]
        return [np.stack([outs[(i, s)] for s in range(k)]) for i in range(len(images))]

    def restore_file(self, path, seed: int = 0, samples: int | None = None):
        """A real JPEG file restored with its own tables: ``(uint8 image or K stack, info)`` (``jpeg.read_jpeg``)."""
        img, tables, info = jpeg.read_jpeg(path)
        if info["color"] != self.color:
            kind = "colour" if info["color"] else "gray"
            raise jpeg.UnsupportedJPEG(f"{Path(path).name} is a {kind} JPEG; {self.name} restores "
                                       f"{'colour' if self.color else 'gray'} images")
        return self([img], tables, seed=seed, samples=samples)[0], info

    # ---- internals ----------------------------------------------------------------------------

    def _check(self, im) -> np.ndarray:
        im = np.asarray(im)
        want = "HxWx3" if self.color else "HxW"
        if im.dtype != np.uint8 or im.ndim != (3 if self.color else 2) or (self.color and im.shape[2] != 3):
            raise ValueError(f"{self.name} ({'colour' if self.color else 'gray'}) restores {want} uint8 images, "
                             f"got {im.dtype} {im.shape}")
        if im.size == 0:
            raise ValueError("empty image")
        return im

    def _tables(self, n: int, tables, qf) -> list:
        if qf is not None:
            if tables is not None:
                raise ValueError("give tables or qf, not both")
            tables = jpeg.ijg_tables(qf, self.color)
        if tables is None:
            if self.model.uses_tables:
                raise ValueError(f"{self.name} needs the quantisation tables the images were coded with "
                                 "(tables=, or qf= for IJG tables)")
            return [None] * n
        if isinstance(tables, (list, tuple)):
            if len(tables) != n:
                raise ValueError(f"{len(tables)} tables for {n} images")
            return [np.asarray(t, np.float32) for t in tables]
        return [np.asarray(tables, np.float32)] * n

    def _run(self, images, tables, jobs, seed) -> dict:
        model = self.model
        p = next(model.parameters())
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        model.to(memory_format=fmt)
        n_tab = (2 if self.color else 1) if model.uses_tables else 0
        groups = defaultdict(list)
        for i, s in jobs:
            groups[images[i].shape].append((i, s))
        out = {}
        was = model.training
        model.eval()
        try:
            with torch.inference_mode():
                for shape, group in groups.items():
                    big = shape[0] * shape[1] > self.max_pixels
                    for b in range(0, len(group), 1 if big else self.batch):
                        chunk = group[b:b + (1 if big else self.batch)]
                        x = torch.from_numpy(np.stack([images[i] for i, _ in chunk])).to(p.device, torch.float32)
                        x = ((x.permute(0, 3, 1, 2) if self.color else x[:, None]) / 255.0).contiguous(
                            memory_format=fmt)
                        t = None
                        if model.uses_tables:
                            t = np.stack([tables[i] for i, _ in chunk])
                            if t.shape[1] < n_tab:
                                raise ValueError(f"{self.name} needs {n_tab} table(s) per image, got {t.shape[1]}")
                            t = torch.from_numpy(t[:, :n_tab]).to(p.device)
                        z = None
                        if model.stochastic:
                            z = torch.cat([model.noise(x[j:j + 1], _generator(seed, i, s))
                                           for j, (i, s) in enumerate(chunk)]).to(p.device)
                        y = self._tiled(x, t, z) if big else self._forward(x, t, z)
                        y = (y.float().clamp(0, 1) * 255.0).round().to(torch.uint8).cpu()
                        y = (y.permute(0, 2, 3, 1) if self.color else y[:, 0]).numpy()
                        for (i, s), yi in zip(chunk, y):
                            out[(i, s)] = np.ascontiguousarray(yi)
        finally:
            model.train(was)
        return out

    def _forward(self, x, t, z, context=None):
        args = [x] + ([t] if self.model.uses_tables else [])
        kw = {}
        if z is not None:
            kw["z"] = z
        if context is not None:
            kw["context"] = context
        if os.environ.get(FLOP_LOG):
            self._log_flops(x, t, z, context)
        return self.model(*args, **kw)

    def _log_flops(self, x, t, z, context) -> None:
        """Benchmarks: append this call's FLOPs to the file named by ``$PAPERLIB_FLOP_LOG``, counted with
        ``torch.utils.flop_counter`` on a copy of the network on the meta device (shapes only, no arithmetic), once
        per input shape, so image sizes, padding and fixed-size branches count as they run. (A tiled image's global
        context, computed once per image before its tiles, is not counted; no notebook tiles.)"""
        import copy

        from torch.utils.flop_counter import FlopCounterMode
        inputs = {"x": x, "t": t if self.model.uses_tables else None, "z": z, "context": context}
        shape = tuple((k, tuple(v.shape)) for k, v in inputs.items() if v is not None)
        counts = self.__dict__.setdefault("_flops", {})
        if shape not in counts:
            if "_meta" not in self.__dict__:
                self._meta = copy.deepcopy(self.model).to("meta")
            meta = {k: v.to("meta") for k, v in inputs.items() if v is not None}
            with torch.inference_mode(), FlopCounterMode(display=False) as counter:
                self._meta(*[meta[k] for k in ("x", "t") if k in meta], **{k: meta[k] for k in ("z", "context")
                                                                             if k in meta})
            counts[shape] = counter.get_total_flops()
        with open(os.environ[FLOP_LOG], "a") as f:
            f.write(f"{self.name}\t{int(counts[shape])}\n")

    def _tiled(self, x, t, z):
        """``_forward`` of one large image, tile by tile (see the module doc)."""
        model, size = self.model, self.tile
        h, w = x.shape[-2:]
        glob = getattr(model, "global_context", None)
        context = glob(x, t) if glob is not None and (t is not None or not model.uses_tables) else None
        out = torch.empty(x.shape, dtype=torch.float32)
        halo, grid = int(model.halo), int(model.grid)
        for y0 in range(0, h, size):
            for x0 in range(0, w, size):
                y1, x1 = min(y0 + size, h), min(x0 + size, w)
                cy0, cx0 = max(0, y0 - halo) // grid * grid, max(0, x0 - halo) // grid * grid
                cy1, cx1 = min(h, y1 + halo), min(w, x1 + halo)
                crop = x[..., cy0:cy1, cx0:cx1]
                zc = None if z is None else z[..., cy0:cy1, cx0:cx1]
                y = self._forward(crop, t, zc, context)
                out[..., y0:y1, x0:x1] = y[..., y0 - cy0:y1 - cy0, x0 - cx0:x1 - cx0].float().cpu()
        return out


def _generator(seed: int, index: int, sample: int) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(seed, index, sample))


def as_restorer(model_or_restorer, **kw) -> Restorer:
    """``Restorer(model)``, or the restorer itself."""
    if isinstance(model_or_restorer, Restorer):
        return model_or_restorer
    return Restorer(model_or_restorer, **kw)
