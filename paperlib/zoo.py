"""The project's own trained networks, by name (``cascnn-q20``, ...), committed in ``checkpoints/``.

Each network is three files: ``<name>.pt`` (fp16 inference weights, see
``paperlib.checkpoint.export_fp16``), ``<name>.json`` (what trained it: budget,
data, steps, wall time, device, git commit, sha256 of the weights) and ``<name>.log.csv``
(its training log, for the training-curve figures); some have a fourth,
``<name>.filters.npz`` (first-layer filters at several steps). ``publish`` makes them from
a finished training run; ``load`` verifies the sha256 before building the model.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from . import checkpoint as ckpt
from .report import ROOT

__all__ = ["CHECKPOINT_DIR", "names", "info", "load", "publish", "log", "filters"]

CHECKPOINT_DIR = ROOT / "checkpoints"


def _builders():
    from .models.cascnn import load_cascnn
    from .models.qgcn import load_qgcn
    from .models.svoboda import load_svoboda
    return {"CASCNN": load_cascnn, "L4": load_svoboda, "L8": load_svoboda, "QGCN": load_qgcn}


def names() -> list:
    return sorted(p.stem for p in CHECKPOINT_DIR.glob("*.json"))


def info(name: str) -> dict:
    path = CHECKPOINT_DIR / f"{name}.json"
    if not path.is_file():
        raise ValueError(f"unknown model {name!r}; available: {', '.join(names()) or 'none'}")
    return json.loads(path.read_text())


def load(name: str, device: str = "cpu"):
    """The network ``name`` in float32 eval mode, after checking its file against the manifest."""
    meta = info(name)
    if not meta.get("file"):
        raise ValueError(f"{name}: only its training log and manifest are committed, not its weights "
                         f"({meta.get('storage')}); retrain it to use it")
    path = CHECKPOINT_DIR / meta["file"]
    if ckpt.sha256(path) != meta["sha256"]:
        raise ValueError(f"{path}: sha256 does not match {name}.json; refusing to load it")
    return _builders()[meta["arch"]](path, device=device)


def log(name: str):
    """The training log of ``name`` as a pandas DataFrame."""
    import pandas as pd
    return pd.read_csv(CHECKPOINT_DIR / f"{name}.log.csv")


def filters(name: str) -> dict:
    """First-layer filters of ``name`` kept during training: ``{step: C x k x k float array}`` (step 0 = init).

    Empty when the network was trained without ``--filter-steps``.
    """
    import numpy as np
    path = CHECKPOINT_DIR / f"{name}.filters.npz"
    if not path.is_file():
        info(name)  # an unknown name raises with the list of known ones
        return {}
    with np.load(path) as kept:
        return dict(sorted((int(k.split("_", 1)[1]), kept[k]) for k in kept.files))


def publish(run_dir, name: str, weights: str | None = "cascnn_fp16.pt", dest=None) -> Path:
    """Copy a finished run's fp16 weights and log into ``checkpoints/`` with a manifest.

    ``weights=None`` publishes the log and manifest only (runs whose weights are too
    large to commit; their training-log figures still work, ``load`` refuses them).

    ``steps`` is the step the weights were taken at (the end of the MS phase for
    ``cascnn_ms_fp16.pt``); ``run_steps`` and ``wall_time_s`` are the whole run's.
    """
    run_dir = Path(run_dir)
    dest = Path(dest) if dest is not None else CHECKPOINT_DIR
    run = json.loads((run_dir / "manifest.json").read_text())
    if not run.get("finished"):
        raise ValueError(f"{run_dir}: the run is not finished ({run.get('steps_done')}/{run.get('steps_total')} steps)")
    dest.mkdir(parents=True, exist_ok=True)
    weights_meta = ckpt.load_fp16(run_dir / weights)[1] if weights else {}  # an MS export knows its own step
    copies = [(run_dir / "log.csv", dest / f"{name}.log.csv")]
    if weights:
        copies.append((run_dir / weights, dest / f"{name}.pt"))
    if (run_dir / "filters.npz").exists():  # first-layer filters during training (svoboda's Fig. 7)
        copies.append((run_dir / "filters.npz", dest / f"{name}.filters.npz"))
    for src, dst in copies:
        tmp = dst.with_name(f".{dst.name}.tmp")
        shutil.copyfile(src, tmp)
        tmp.replace(dst)
    meta = {
        "name": name, "arch": run["model"]["arch"], "file": f"{name}.pt" if weights else None,
        "sha256": ckpt.sha256(dest / f"{name}.pt") if weights else None,
        "bytes": (dest / f"{name}.pt").stat().st_size if weights else 0,
        "storage": "float16 weights, loaded as float32" if weights else "log only: weights not committed (size)",
        "qf": run["qf"], "budget": run["budget"], "budget_config": run["budget_config"],
        "steps": weights_meta.get("steps", run["steps_done"]), "phase": weights_meta.get("phase", "final"),
        "run_steps": run["steps_done"], "wall_time_s": run["wall_time_s"], "data": run["data"],
        "init_from": run.get("init_from"), "params": run["model"]["params"], "git_commit": run.get("git_commit"),
        "torch_version": run.get("torch_version"), "threads": run.get("threads"), "device": run.get("device", "cpu"),
        "precision": run.get("precision"), "cpu": run.get("cpu"), "git_clean": run.get("git_clean"),
        "throughput_last_chunk": run.get("throughput_last_chunk"), "chunks": run.get("chunks"),
    }
    ckpt.write_json_atomic(meta, dest / f"{name}.json")
    return dest / f"{name}.json"
