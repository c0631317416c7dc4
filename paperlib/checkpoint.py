"""Checkpoint files: atomic writes, ``weights_only`` loads, small fp16 exports.

* Training checkpoints (``train.py``) are plain dicts of tensors, numbers,
  strings, lists and dicts, so they load with ``torch.load(weights_only=True)``
  (no pickled code runs when reading a file from somewhere else).
* Every write goes to a temporary file in the target's folder and is moved
  into place with ``os.replace``: a run killed mid-write leaves the previous
  file intact, never a truncated one.
* ``export_fp16`` keeps only the inference weights, in half precision, for
  committing to the repository (CAS-CNN: 5.15 M parameters -> about 10.3 MB);
  ``load_fp16`` gives them back as float32.
* ``publish`` copies a finished training run's weights, log and manifest into
  ``checkpoints/`` (what ``paperlib.zoo`` serves by name).
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import torch

from . import atomic

__all__ = ["save_atomic", "write_text_atomic", "write_json_atomic", "load", "sha256",
           "export_fp16", "load_fp16", "fp16_meta", "load_weights", "load_model", "publish", "FP16_FORMAT", "COMMITTED"]

FP16_FORMAT = "paperlib-fp16-v1"
COMMITTED = Path(__file__).resolve().parent.parent / "checkpoints"   # the project's own networks (paperlib.zoo)


def save_atomic(obj, path) -> Path:
    """``torch.save(obj, path)``, atomically."""
    return atomic.write(path, lambda f: torch.save(obj, f))


def write_text_atomic(text: str, path) -> Path:
    return atomic.write_text(path, text)


def write_json_atomic(obj, path) -> Path:
    return write_text_atomic(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n", path)


def load(path, map_location="cpu"):
    """Load a checkpoint with ``weights_only=True`` (tensors and plain containers only).

    A file that is not one (truncated, corrupt, or a pickle that would run code, which
    ``weights_only`` refuses) raises ValueError naming the file, not torch's own traceback.
    """
    import pickle
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path}: not a readable weights-only checkpoint ({first})") from None


def sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def export_fp16(state_dict: dict, path, meta: dict | None = None) -> Path:
    """Write an inference-only weights file: floating tensors as float16, plus ``meta``.

    ``meta`` (plain JSON-like values) should say how to rebuild the model, e.g.
    ``{"arch": "CASCNN", "kwargs": {"width": 128}, "qf": 20, "budget": "cpu"}``.
    """
    weights = {k: (v.detach().to("cpu", torch.float16) if v.is_floating_point() else v.detach().cpu())
               .contiguous() for k, v in state_dict.items()}
    return save_atomic({"format": FP16_FORMAT, "meta": dict(meta or {}), "state_dict": weights}, path)


def load_fp16(path, obj=None) -> tuple[dict, dict]:
    """Read an ``export_fp16`` file: ``(float32 state_dict, meta)`` (``obj``: the file already ``load``-ed)."""
    obj = load(path) if obj is None else obj
    if not isinstance(obj, dict) or obj.get("format") != FP16_FORMAT:
        raise ValueError(f"{path}: not a {FP16_FORMAT} weights file")
    sd = {k: v.float() if v.is_floating_point() else v for k, v in obj["state_dict"].items()}
    return sd, obj["meta"]


def fp16_meta(path) -> dict:
    """The ``meta`` of an ``export_fp16`` file, without converting its weights."""
    obj = load(path)
    if not isinstance(obj, dict) or obj.get("format") != FP16_FORMAT:
        raise ValueError(f"{path}: not a {FP16_FORMAT} weights file")
    return obj["meta"]


def load_weights(path, key: str) -> tuple[dict, dict | None]:
    """Float32 weights of one model from an ``export_fp16`` file or a training checkpoint: ``(state_dict, kwargs)``.

    ``kwargs`` (how to rebuild the model) come from the export's meta, or from the run's
    ``manifest.json`` beside a training checkpoint (``["model"]["kwargs"]``); None when neither has them.
    ``key`` names the model inside a training checkpoint (``checkpoint["models"][key]``).
    """
    path = Path(path)
    obj = load(path)
    if isinstance(obj, dict) and obj.get("format") == FP16_FORMAT:
        sd, meta = load_fp16(path, obj)
        return sd, meta.get("kwargs")
    sd = obj["models"][key]
    man = path.with_name("manifest.json")
    kwargs = json.loads(man.read_text()).get("model", {}).get("kwargs") if man.exists() else None
    return sd, kwargs


def load_model(path, key: str, build, device="cpu"):
    """``build(**kwargs)`` with the float32 weights of ``path`` (``load_weights``), on ``device``, in eval mode."""
    sd, kwargs = load_weights(path, key)
    if kwargs is None:
        raise ValueError(f"{path}: no model kwargs (no fp16 meta and no manifest.json beside it)")
    net = build(**kwargs)
    net.load_state_dict(sd)
    return net.to(device).eval()


def publish(run_dir, name: str, weights: str | None = "cascnn_fp16.pt", dest=None) -> Path:
    """Copy a finished run's fp16 weights and log into ``checkpoints/`` with a manifest.

    ``weights=None`` publishes the log and manifest only (runs whose weights are too
    large to commit; their training-log figures still work, ``load`` refuses them).

    ``steps`` is the step the weights were taken at (the end of the MS phase for
    ``cascnn_ms_fp16.pt``); ``run_steps`` and ``wall_time_s`` are the whole run's.
    """
    run_dir = Path(run_dir)
    dest = Path(dest) if dest is not None else COMMITTED
    run = json.loads((run_dir / "manifest.json").read_text())
    if not run.get("finished"):
        raise ValueError(f"{run_dir}: the run is not finished ({run.get('steps_done')}/{run.get('steps_total')} steps)")
    dest.mkdir(parents=True, exist_ok=True)
    weights_meta = fp16_meta(run_dir / weights) if weights else {}  # an MS export knows its own step
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
        "sha256": sha256(dest / f"{name}.pt") if weights else None,
        "bytes": (dest / f"{name}.pt").stat().st_size if weights else 0,
        "storage": "float16 weights, loaded as float32" if weights else "log only: weights not committed (size)",
        "qf": run["qf"], "budget": run["budget"], "budget_config": run["budget_config"],
        "steps": weights_meta.get("steps", run["steps_done"]), "phase": weights_meta.get("phase", "final"),
        "run_steps": run["steps_done"], "wall_time_s": run["wall_time_s"], "data": run["data"],
        "init_from": run.get("init_from"), "params": run["model"]["params"], "git_commit": run.get("git_commit"),
        "torch_version": run.get("torch_version"), "threads": run.get("threads"), "device": run.get("device", "cpu"),
        "precision": run.get("precision"), "cpu": run.get("cpu"), "git_clean": run.get("git_clean"),
        "throughput_last_chunk": run.get("throughput_last_chunk"), "chunks": run.get("chunks"),
        "log_sha256": sha256(dest / f"{name}.log.csv"),
        "filters_sha256": sha256(dest / f"{name}.filters.npz") if (dest / f"{name}.filters.npz").exists() else None,
    }
    write_json_atomic(meta, dest / f"{name}.json")
    return dest / f"{name}.json"
