"""Atomic file writes: write a temp file next to the target, fsync, rename over it.

A run killed mid-write leaves the previous file intact, never a truncated one.
The one place the project writes checkpoints, manifests, tables, figures and
downloaded data through.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["write", "write_bytes", "write_text"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_MODE = 0o666 & ~_umask()  # what open() would give a new file; mkstemp's temp files are 0600


def write(path, fill, durable: bool = True) -> Path:
    """Call ``fill(binary_file_object)`` on a temp file next to ``path``, then rename it onto ``path``.

    ``durable=False`` skips the fsync: still never a truncated file after a killed run, but after a power
    loss the file may be empty or missing (for what can be recomputed, such as the results cache)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            fill(f)
            f.flush()
            if durable:
                os.fsync(f.fileno())
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), _MODE)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_bytes(path, data: bytes, durable: bool = True) -> Path:
    return write(path, lambda f: f.write(data), durable)


def write_text(path, text: str, durable: bool = True) -> Path:
    return write(path, lambda f: f.write(text.encode("utf-8")), durable)
