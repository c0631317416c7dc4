"""Results cache: per-image scores (and the restored images a figure keeps) keyed by content.

A second ``make figures`` with nothing changed should not restore and score every image
again. Each evaluated row (one reference image at one QF, JPEG only or restored by a
network) is stored under the sha256 of everything it depends on:

* the reference image's pixels (after the protocol's luma / colour reading),
* the protocol (every field: luma, codec, decoder, subsampling, SSIM window, PSNR-B counts),
* the QF and, for stochastic networks, the seed,
* the network's weights and architecture (``model_digest``: its class, kwargs and every
  tensor of its state dict), so a retrained or changed checkpoint misses,
* the source code that computes the row (``code_digest`` of the modules involved: the
  codec, the metrics, the protocols and the restorer; ``forward_digest`` of the network: the
  classes it is built of and the functions they call), so a change to any of them misses,
  while an edit elsewhere in a network's module (its training recipe, its command line) does not.

Besides rows, the generative notebooks keep what they compute from images they restored: the images
themselves (``evaluation.restore``), and arrays computed from them (``computed``: distances between sets,
projections), under keys made the same way.

Entries live under the user cache (``$PAPERLIB_CACHE/results``, see ``paperlib.data``),
are written atomically (JSON, plus an uncompressed ``.npz`` for a kept image) and are never
committed. ``PAPERLIB_NO_CACHE=1`` (``make figures FRESH=1``; ``make check-figures``
always) bypasses the cache entirely: nothing is read or written. A hit returns exactly
the numbers that were computed and stored (JSON keeps every float's full precision).
"""
from __future__ import annotations

import hashlib
import importlib
import inspect
import io
import json
import os
import re
import sys
import weakref
import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from . import atomic

# torch is imported where a network is digested: JPEG-only runs (the protocols notebook) never load it

__all__ = ["ENV_OFF", "enabled", "root", "digest_array", "model_digest", "code_digest", "forward_digest", "key", "load",
           "store", "computed"]

ENV_OFF = "PAPERLIB_NO_CACHE"


def enabled() -> bool:
    return os.environ.get(ENV_OFF, "") in ("", "0")


def root() -> Path:
    from .data import cache_dir
    return cache_dir() / "results"


def digest_array(a: np.ndarray) -> str:
    a = np.ascontiguousarray(a)
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
    return h.hexdigest()


_MODEL_DIGESTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def model_digest(model) -> str:
    """sha256 of a network's class, kwargs and every tensor of its state dict (bytes, dtype, shape).

    Remembered per network object while no tensor of it changes (each tensor's storage and in-place
    version counter are compared), so evaluating image after image hashes the weights once."""
    state = model.state_dict()
    stamp = tuple((name, t.data_ptr(), t._version, t.dtype, tuple(t.shape)) for name, t in state.items())
    known = _MODEL_DIGESTS.get(model)
    if known is not None and known[0] == stamp:
        return known[1]
    digest = _model_digest(model, state)
    _MODEL_DIGESTS[model] = (stamp, digest)
    return digest


def _model_digest(model, state) -> str:
    import torch
    h = hashlib.sha256(f"{type(model).__module__}.{type(model).__qualname__}".encode())
    h.update(json.dumps(getattr(model, "kwargs", None), sort_keys=True, default=str).encode())
    for name, t in state.items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


@lru_cache(maxsize=None)
def code_digest(*parts: str) -> str:
    """sha256 of the source of ``parts``, read once per process: modules (``"paperlib.jpeg"``) or single
    functions/classes (``"paperlib.evaluation:_restored_rows"``), so that adding an unrelated function to a
    module does not throw its cached rows away."""
    h = hashlib.sha256()
    for part in parts:
        name, _, attr = part.partition(":")
        obj = importlib.import_module(name)
        for a in attr.split(".") if attr else ():
            obj = getattr(obj, a)
        h.update(part.encode())
        try:
            h.update(inspect.getsource(obj).encode())
        except (OSError, TypeError):   # no source (e.g. a class defined interactively): never shared across runs
            h.update(os.urandom(16))
    return h.hexdigest()


ROOT = Path(__file__).resolve().parent.parent


def _ours(obj) -> bool:
    """Defined in a file of this repository (the package or its tests), not in torch or another library."""
    try:
        path = Path(inspect.getsourcefile(obj)).resolve()
    except (TypeError, OSError):
        return False
    return path.is_relative_to(ROOT) and "site-packages" not in path.parts   # a virtualenv inside the clone


def forward_digest(model) -> str:
    """sha256 of the code a network's forward pass can run: the source of every class in ``model.modules()``
    and, followed name by name, of the functions and classes of this repository that those sources use
    (torch's own layers count through ``torch.__version__``). Module-level constants are not followed.
    Computed once per process for each sequence of classes (the code a process runs does not change)."""
    return _classes_digest(tuple(type(m) for m in model.modules()))


@lru_cache(maxsize=None)
def _classes_digest(classes: tuple) -> str:
    import torch
    h = hashlib.sha256(f"torch {torch.__version__}".encode())
    todo = list(classes)
    seen = set()
    while todo:
        obj = todo.pop()
        if obj in seen or not _ours(obj):
            continue
        seen.add(obj)
        src = inspect.getsource(obj)
        h.update(f"{obj.__module__}:{obj.__qualname__}\n{src}".encode())
        mod = sys.modules.get(obj.__module__)
        for name in sorted(set(re.findall(r"[A-Za-z_]\w*", src))):
            v = getattr(mod, name, None)
            if (inspect.isfunction(v) or inspect.isclass(v)) and v not in seen:
                todo.append(v)
    return h.hexdigest()


def key(**parts) -> str:
    """The cache key of a row: sha256 of its parts as canonical JSON."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _paths(k: str) -> tuple[Path, Path]:
    folder = root() / k[:2]
    return folder / f"{k}.json", folder / f"{k}.npz"


def load(k: str, with_image: bool = False):
    """``(row, image or None)`` stored under ``k``; None when absent, unreadable, disabled, or the image is
    wanted but was not stored."""
    if not enabled():
        return None
    jpath, npath = _paths(k)
    try:
        row = json.loads(jpath.read_text())
        image = None
        if with_image:
            with np.load(npath) as z:
                image = z["image"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):   # absent, or left empty or cut short
        return None
    return row, image


def store(k: str, row: dict, image: np.ndarray | None = None) -> None:
    """Write ``row`` (JSON) and, if given, ``image`` (npz) under ``k``, atomically (not fsynced: an entry a power
    loss leaves empty is unreadable, so a miss).

    The npz is not compressed: deflate shrinks restored images and draws to about 3/4 of their size at 40 times
    the time of writing them raw (measured on this cache's entries), which was 3 % of a cold posterior-notebook run."""
    if not enabled():
        return
    jpath, npath = _paths(k)
    if image is not None:
        buf = io.BytesIO()
        np.savez(buf, image=np.asarray(image))
        atomic.write_bytes(npath, buf.getvalue(), durable=False)
    atomic.write_text(jpath, json.dumps(row), durable=False)


def computed(k: str, compute) -> np.ndarray:
    """An array computed once: the one stored under ``k``, else ``compute()``'s, stored under ``k``.

    ``k`` (``key``) names everything the array depends on: its inputs' digests, its parameters and the
    ``code_digest`` of the code that computes it."""
    hit = load(k, with_image=True)
    if hit is not None:
        return hit[1]
    out = np.asarray(compute())
    store(k, {"what": "array", "shape": list(out.shape), "dtype": out.dtype.str}, out)
    return out
