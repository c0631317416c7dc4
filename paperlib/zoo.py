"""The project's own trained networks, by name (``cascnn-q20``, ...), committed in ``checkpoints/``.

Each network is three files: ``<name>.pt`` (fp16 inference weights, see
``paperlib.checkpoint.export_fp16``), ``<name>.json`` (what trained it: budget,
data, steps, wall time, device, git commit, sha256 of the weights) and ``<name>.log.csv``
(its training log, for the training-curve figures); some have a fourth,
``<name>.filters.npz`` (first-layer filters at several steps). ``checkpoint.publish`` makes them from
a finished training run (``checkpoint.publish``); ``load`` verifies the sha256 before building the
model (``models.load``).
"""
from __future__ import annotations

import json
from pathlib import Path

from . import checkpoint as ckpt
from . import models
from .checkpoint import COMMITTED as CHECKPOINT_DIR

__all__ = ["CHECKPOINT_DIR", "names", "info", "lineage", "load", "log", "filters", "provenance",
           "network_provenance", "weights_meta"]


def names() -> list:
    return sorted(p.stem for p in CHECKPOINT_DIR.glob("*.json"))


def info(name: str) -> dict:
    path = CHECKPOINT_DIR / f"{name}.json"
    if not path.is_file():
        raise ValueError(f"unknown model {name!r}; available: {', '.join(names()) or 'none'}")
    return json.loads(path.read_text())


def lineage(name: str) -> list:
    """``name`` and the committed networks it was trained on from, newest first: ``init_from`` followed back while
    it names a checkpoint of ``checkpoints/`` (``qgcn-gray-cont4`` -> ``qgcn-gray-cont3`` -> ``qgcn-gray-cont2`` ->
    ``qgcn-gray-cont`` -> ``qgcn-gray``)."""
    chain = [name]
    while True:
        init = info(chain[-1]).get("init_from")
        parent = Path(str(init)).stem if init else None
        if parent is None or parent in chain or not (CHECKPOINT_DIR / f"{parent}.json").is_file():
            return chain
        chain.append(parent)


def load(name: str, device: str = "cpu"):
    """The network ``name`` in float32 eval mode, after checking its file against the manifest."""
    meta = info(name)
    if not meta.get("file"):
        raise ValueError(f"{name}: only its training log and manifest are committed, not its weights "
                         f"({meta.get('storage')}); retrain it to use it")
    path = CHECKPOINT_DIR / meta["file"]
    if ckpt.sha256(path) != meta["sha256"]:
        raise ValueError(f"{path}: sha256 does not match {name}.json; refusing to load it")
    return models.load(path, device=device, arch=meta["arch"])


def _verified(name: str, path, key: str):
    """``path`` after checking it against the sha256 its manifest lists under ``key`` (when it lists one)."""
    want = info(name).get(key)
    if want and ckpt.sha256(path) != want:
        raise ValueError(f"{path}: sha256 does not match {name}.json; refusing to use it")
    return path


def log(name: str):
    """The training log of ``name`` as a pandas DataFrame (sha256 checked against its manifest)."""
    import pandas as pd
    return pd.read_csv(_verified(name, CHECKPOINT_DIR / f"{name}.log.csv", "log_sha256"))


def filters(name: str) -> dict:
    """First-layer filters of ``name`` kept during training: ``{step: C x k x k float array}`` (step 0 = init).

    Empty when the network was trained without ``--filter-steps``.
    """
    import numpy as np
    path = CHECKPOINT_DIR / f"{name}.filters.npz"
    if not path.is_file():
        info(name)  # an unknown name raises with the list of known ones
        return {}
    with np.load(_verified(name, path, "filters_sha256")) as kept:
        return dict(sorted((int(k.split("_", 1)[1]), kept[k]) for k in kept.files))


def provenance(meta: dict, weights_meta: dict | None = None) -> dict:
    """Budget, steps, training data and wall time from a zoo manifest (``info``) or a run's manifest.json.

    ``weights_meta``: the meta stored in the weights file itself (``checkpoint.load_fp16``). Its ``steps``
    wins: the MS-phase weights of a run are those of step ``ft_start``, while a run's manifest (and a zoo
    manifest copied from it) counts every step of the run.
    """
    d = meta.get("data") or {}
    sources = d.get("sources") or []
    n = d.get("n_images")
    steps = (weights_meta or {}).get("steps", meta.get("steps", meta.get("steps_done")))
    wall = meta.get("wall_time_s")
    init = meta.get("init_from") or ""
    train_data = " + ".join(sources) + (f" ({n} images)" if n else "")
    if init:
        train_data += f"; started from {Path(str(init)).name}"
    return {"budget": meta.get("budget", ""), "steps": int(steps) if steps is not None else None,
            "train_data": train_data, "wall_time_h": round(wall / 3600, 2) if wall is not None else None,
            "init_from": str(init)}


def weights_meta(name: str) -> dict:
    """The meta stored inside the weights file of ``name`` (``checkpoint.fp16_meta``); empty for a log-only entry."""
    meta = info(name)
    return ckpt.fp16_meta(CHECKPOINT_DIR / meta["file"]) if meta.get("file") else {}


def network_provenance(name: str) -> dict:
    """``provenance`` of the committed network ``name`` (its manifest and the meta inside its weights file)."""
    return provenance(info(name), weights_meta(name))
