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
Tables: one T x 8 x 8 array for every image, a list with one per image, or ``qf`` for the
IJG tables libjpeg writes at that quality (``jpeg.ijg_tables``). Real JPEG files are
restored with the tables they carry (``restore_file``).
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn

from . import jpeg
from .patches import derive_seed

__all__ = ["Restorer", "as_restorer"]


class Restorer:
    """A network behind the one restoration call (see the module doc)."""

    def __init__(self, model: nn.Module, name: str | None = None, batch: int = 8, channels_last: bool = True):
        for attr in ("channels", "uses_tables", "stochastic"):
            if not hasattr(model, attr):
                raise TypeError(f"{type(model).__name__} does not say its {attr!r}; not a paperlib restoration network")
        self.model, self.name = model, name or type(model).__name__
        self.batch, self.channels_last = int(batch), channels_last

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
                for group in groups.values():
                    for b in range(0, len(group), self.batch):
                        chunk = group[b:b + self.batch]
                        x = torch.from_numpy(np.stack([images[i] for i, _ in chunk])).to(p.device, torch.float32)
                        x = ((x.permute(0, 3, 1, 2) if self.color else x[:, None]) / 255.0).contiguous(
                            memory_format=fmt)
                        args = [x]
                        if model.uses_tables:
                            t = np.stack([tables[i] for i, _ in chunk])
                            if t.shape[1] < n_tab:
                                raise ValueError(f"{self.name} needs {n_tab} table(s) per image, got {t.shape[1]}")
                            args.append(torch.from_numpy(t[:, :n_tab]).to(p.device))
                        kw = {}
                        if model.stochastic:
                            kw["z"] = torch.cat([model.noise(x[j:j + 1], _generator(seed, i, s))
                                                 for j, (i, s) in enumerate(chunk)]).to(p.device)
                        y = model(*args, **kw)
                        y = (y.float().clamp(0, 1) * 255.0).round().to(torch.uint8).cpu()
                        y = (y.permute(0, 2, 3, 1) if self.color else y[:, 0]).numpy()
                        for (i, s), yi in zip(chunk, y):
                            out[(i, s)] = np.ascontiguousarray(yi)
        finally:
            model.train(was)
        return out


def _generator(seed: int, index: int, sample: int) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(seed, index, sample))


def as_restorer(model_or_restorer, **kw) -> Restorer:
    """``Restorer(model)``, or the restorer itself."""
    if isinstance(model_or_restorer, Restorer):
        return model_or_restorer
    return Restorer(model_or_restorer, **kw)
