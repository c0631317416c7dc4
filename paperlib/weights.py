"""Pretrained weight files (VGG-16, VGG-19, FID Inception): manifests, resolution, download, verification.

The project bundles no pretrained weights. Each file it can use is described by
``data_manifests/weights/<name>.json``: the official file name, its full sha256
(with where that hash came from), download URLs, source and licence notes.
A weight file is looked for, in this order:

1. an explicit ``path`` (function argument / ``--path``);
2. ``$PAPERLIB_WEIGHTS/<file>``;
3. torch's hub cache, ``torch.hub.get_dir()/checkpoints/<file>`` (``$TORCH_HOME/hub/checkpoints``,
   default ``~/.cache/torch/hub/checkpoints``): where torchvision and torch-fidelity keep the same files;
4. a download with pooch from the manifest's URLs, in order, into that hub cache, so that
   torchvision and torch-fidelity find the copy too (pooch writes to a temporary file and moves it
   into place only after the sha256 matched).

A file that is found is always checked against the full sha256; one that does not
match is refused by name (``ChecksumError``), never skipped over. When nothing works,
``WeightsNotFound`` names the file, every place looked and how to provide it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from .data import ChecksumError, _hash_cached

__all__ = ["ENV_VAR", "MANIFEST_DIR", "WeightsNotFound", "ChecksumError", "names", "manifest", "hub_dir",
           "verify", "resolve", "status"]

ENV_VAR = "PAPERLIB_WEIGHTS"
MANIFEST_DIR = Path(__file__).resolve().parent.parent / "data_manifests" / "weights"


class WeightsNotFound(FileNotFoundError):
    """A weight file is not available locally and could not be downloaded."""


def names() -> list:
    return sorted(p.stem for p in MANIFEST_DIR.glob("*.json"))


def manifest(name: str) -> dict:
    path = MANIFEST_DIR / f"{name}.json"
    if not path.is_file():
        raise ValueError(f"unknown weight file {name!r}; known: {', '.join(names())}")
    return json.loads(path.read_text())


def hub_dir() -> Path:
    """torch's hub checkpoint folder (read at call time, so ``$TORCH_HOME`` and ``torch.hub.set_dir`` count)."""
    import torch.hub
    return Path(torch.hub.get_dir()) / "checkpoints"


def verify(name: str, path) -> Path:
    """``path`` if its sha256 is the manifest's; FileNotFoundError if absent, ChecksumError if different."""
    man = manifest(name)
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{name}: {path} is not a file")
    digest = _hash_cached(path)
    if digest != man["sha256"]:
        raise ChecksumError(f"{name}: refusing {path}: its sha256 {digest[:16]}... ({path.stat().st_size} bytes) "
                            f"is not {man['file']}'s {man['sha256'][:16]}... ({man['bytes']} bytes)")
    return path


def _candidates(name: str, path) -> list:
    file = manifest(name)["file"]
    out = []
    if path is not None:
        out.append(("path argument", Path(path).expanduser()))
    env = os.environ.get(ENV_VAR)
    if env:
        out.append((f"${ENV_VAR}", Path(env).expanduser() / file))
    else:
        out.append((f"${ENV_VAR}", None))
    out.append(("torch hub cache", hub_dir() / file))
    return out


def _search(name: str, path) -> tuple:
    """``(verified path or None, places looked)``; ChecksumError for a found file that does not match."""
    looked = []
    for label, candidate in _candidates(name, path):
        if candidate is None:
            looked.append(f"{label}: not set")
        elif candidate.is_file():
            return verify(name, candidate), looked
        else:
            looked.append(f"{label}: {candidate} (not there)")
    return None, looked


def _download(name: str) -> Path:
    """Fetch into the hub cache from each URL in turn; only a file with the manifest's sha256 is kept."""
    import pooch
    man = manifest(name)
    errors, refused = [], []
    for url in man["urls"]:
        try:
            pooch.retrieve(url, known_hash=f"sha256:{man['sha256']}", fname=man["file"], path=hub_dir(),
                           progressbar=True)
            return verify(name, hub_dir() / man["file"])
        except ValueError as err:  # pooch: the downloaded bytes' hash differs (the file is deleted)
            refused.append(f"{url}: {err}")
        except Exception as err:  # noqa: BLE001 - network errors, reported with every URL tried
            errors.append(f"{url}: {type(err).__name__}: {err}")
    if refused:
        raise ChecksumError(f"{name}: refusing the download of {man['file']}: sha256 does not match the "
                            "manifest: " + " | ".join(refused + errors))
    raise WeightsNotFound(f"could not download {man['file']}: " + " | ".join(errors))


def _how_to_provide(name: str) -> str:
    man = manifest(name)
    return (f"Provide {man['file']} ({man['bytes'] / 2**20:.0f} MiB) by passing its path, putting it in "
            f"${ENV_VAR}=DIR or in {hub_dir()}, or downloading it from {man['urls'][0]} "
            f"(`python -m paperlib weights fetch {name}` does that and verifies it).")


def resolve(name: str, path=None, download: bool = True) -> Path:
    """The verified local file of weight ``name`` (see the module docstring for the search order)."""
    man = manifest(name)
    found, looked = _search(name, path)
    if found is not None:
        return found
    if download:
        try:
            return _download(name)
        except WeightsNotFound as err:
            looked.append(f"download into {hub_dir()}: {err}")
    else:
        looked.append("download: not attempted (download=False)")
    raise WeightsNotFound(f"weight file {man['file']} ({name}) not found. Looked in:\n  - " +
                          "\n  - ".join(looked) + "\n" + _how_to_provide(name))


def status(name: str, path=None) -> tuple:
    """``(path, why)`` without downloading: the verified file and where it was found, or None and why not."""
    try:
        found, looked = _search(name, path)
    except ChecksumError as err:
        return None, f"refused: {err}"
    if found is not None:
        return found, f"found: {found} (sha256 verified)"
    return None, "missing: " + "; ".join(looked)
