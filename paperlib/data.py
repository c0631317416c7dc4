"""Benchmark data: manifests, resolution, download, verification, and the demo set.

Every dataset is described by ``data_manifests/<name>.json``: its files with
sha256, their split, the licence/terms note and where to download it. A
dataset folder is looked for, in this order:

1. ``data_root/<name>`` when a data root is given (function argument / notebook parameter);
2. ``$PAPERLIB_DATA/<name>``;
3. the user cache (``$PAPERLIB_CACHE`` or the OS cache dir, e.g. ``~/.cache/paperlib``);
4. a download into the cache with pooch, from the manifest's sources in order.

Files are verified against the manifest before use; a file whose checksum
does not match is refused by name. When nothing works, ``DataNotFound`` says
where it looked and how to provide the data.

A *training pack* (``pack``) is a data root holding a size-capped subset of training sets, the files
copied unchanged, for a machine the full sets cannot be sent to (a lent GPU takes 64 MiB per call).
Each packed dataset folder has a ``PACK.json`` naming its files; only training (``gray_images``,
``rgb_images``) reads a pack, and says so; evaluation never takes a pack for the whole set.

``demo`` is a built-in set of scikit-image's bundled photos, always available.
It is NOT a benchmark: anything computed on it is not comparable with the papers.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pooch
from tqdm.auto import tqdm

from . import atomic

__all__ = ["ENV_VAR", "CACHE_ENV_VAR", "MANIFEST_DIR", "DEMO", "DEMO_NOTE", "DataNotFound", "ChecksumError",
           "names", "manifest", "cache_dir", "verify", "locate", "download", "image_paths", "images_or_demo",
           "gray_images", "rgb_images", "pack", "PACK_FILE"]

ENV_VAR = "PAPERLIB_DATA"
CACHE_ENV_VAR = "PAPERLIB_CACHE"
MANIFEST_DIR = Path(__file__).resolve().parent.parent / "data_manifests"
DEMO = "demo"
DEMO_NOTE = ("DEMO DATA (scikit-image sample photos): the benchmark images were not found, so these "
             "numbers are NOT comparable with the papers")
PACK_FILE = "PACK.json"
_DEMO_IMAGES = ("astronaut", "camera", "coffee", "chelsea", "rocket", "coins", "moon", "brick")


class DataNotFound(FileNotFoundError):
    """A dataset is not available locally and could not be downloaded."""


class ChecksumError(ValueError):
    """A file exists but its content differs from the manifest."""


def names() -> list:
    return sorted(p.stem for p in MANIFEST_DIR.glob("*.json")) + [DEMO]


def manifest(name: str) -> dict:
    path = MANIFEST_DIR / f"{name}.json"
    if not path.is_file():
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(names())}")
    return json.loads(path.read_text())


def cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV_VAR)
    return Path(env) if env else Path(pooch.os_cache("paperlib"))


def _entries(man: dict, split) -> list:
    if split is None:
        return man["files"]
    splits = [split] if isinstance(split, str) else list(split)
    unknown = set(splits) - set(man["splits"])
    if unknown:
        raise ValueError(f"{man['name']} has no split {sorted(unknown)}; splits: {sorted(man['splits'])}")
    return [f for f in man["files"] if f["split"] in splits]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_verified: dict = {}  # (path, size, mtime_ns) -> sha256, so a session hashes each file once


def _hash_cached(path: Path) -> str:
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _verified:
        _verified[key] = _sha256(path)
    return _verified[key]


def _packed(folder: Path) -> dict | None:
    path = folder / PACK_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def verify(name: str, folder, split=None, allow_pack: bool = False) -> list:
    """Check ``folder`` against the manifest; return the verified file paths, sorted.

    Raises FileNotFoundError listing missing files, ChecksumError naming every
    file whose sha256 differs. A training pack's folder (``pack``) is refused unless
    ``allow_pack``; then only its files are checked and returned.
    """
    man = manifest(name)
    folder = Path(folder)
    entries = _entries(man, split)
    packed = _packed(folder)
    if packed is not None:
        listed = set(packed["files"])
        kept = [e for e in entries if e["path"] in listed]
        if not allow_pack:
            raise FileNotFoundError(f"{name}: {folder} is a training pack ({len(kept)} of {len(entries)} files); "
                                    "only training reads packs")
        if not kept:
            raise FileNotFoundError(f"{name}: the training pack in {folder} holds none of the {len(entries)} files "
                                    f"of {split or 'any split'}")
        entries = kept
    missing = [e["path"] for e in entries if not (folder / e["path"]).is_file()]
    if missing:
        raise FileNotFoundError(f"{name}: {len(missing)} of {len(entries)} files missing in {folder} "
                                f"(first: {', '.join(missing[:3])})")
    bad = [e["path"] for e in entries if _hash_cached(folder / e["path"]) != e["sha256"]]
    if bad:
        raise ChecksumError(f"{name}: refusing {len(bad)} file(s) in {folder} whose sha256 does not match "
                            f"the manifest: {', '.join(bad)}")
    return sorted(folder / e["path"] for e in entries)


def _candidates(name: str, data_root) -> list:
    out = []
    if data_root is not None:
        out.append(("data_root argument", Path(data_root).expanduser() / name))
    if os.environ.get(ENV_VAR):
        out.append((f"${ENV_VAR}", Path(os.environ[ENV_VAR]).expanduser() / name))
    out.append(("user cache", cache_dir() / name))
    return out


def locate(name: str, data_root=None, split=None, download_missing: bool = True, allow_pack: bool = False) -> Path:
    """The verified folder of ``name`` (see the module docstring for the search order; packs only with
    ``allow_pack``)."""
    man = manifest(name)
    _entries(man, split)  # unknown split: ValueError now, not a failed search
    tried = []
    for label, folder in _candidates(name, data_root):
        if not folder.is_dir():
            tried.append(f"{label}: {folder} (not there)")
            continue
        try:
            verify(name, folder, split, allow_pack)
            return folder
        except FileNotFoundError as err:  # incomplete copy or a pack: keep looking
            tried.append(f"{label}: {err}")
    if download_missing:
        try:
            folder = download(name, split=split)
            verify(name, folder, split)
            return folder
        except ChecksumError:
            raise
        except Exception as err:  # noqa: BLE001 - reported below with every place tried
            tried.append(f"download into {cache_dir() / name}: {type(err).__name__}: {err}")
    raise DataNotFound(
        f"dataset {name!r} not found. Looked in:\n  - " + "\n  - ".join(tried) +
        f"\nProvide it by passing data_root=DIR (DIR/{name}/... as in the manifest), setting "
        f"${ENV_VAR}=DIR, or downloading from {man['official_page']}; "
        f"check a copy with `python -m paperlib data verify {name} --root DIR`.")


def _fetch_files(source: dict, entries: list, dest: Path) -> None:
    registry = {e["path"]: f"sha256:{e['sha256']}" for e in entries}
    fetcher = pooch.create(path=dest, base_url=source["base_url"], registry=registry, retry_if_failed=1)
    for e in tqdm(entries, desc=f"download {dest.name}", leave=False):
        fetcher.fetch(e["path"])


def _refuse_escaping(archive: Path, names) -> None:
    """An archive with absolute member paths or ``..`` components is refused as a whole (path traversal)."""
    bad = [n for n in names if n.startswith(("/", "\\")) or ".." in Path(n).parts or ":" in Path(n).parts[0]]
    if bad:
        raise ValueError(f"{archive.name}: refusing an archive whose members escape its folder ({bad[0]!r})")


def _fetch_archive(source: dict, entries: list, dest: Path) -> None:
    archive = Path(pooch.retrieve(source["url"], known_hash=source.get("sha256"),
                                  path=cache_dir() / "_archives", progressbar=True))
    strip = source.get("strip", "")
    wanted = {strip + e["path"]: dest / e["path"] for e in entries}
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tar:
            _refuse_escaping(archive, [m.name for m in tar.getmembers()])
            members = [(m.name, m) for m in tar.getmembers() if m.isfile() and m.name in wanted]
            for member_name, m in members:
                atomic.write_bytes(wanted[member_name], tar.extractfile(m).read())
    elif zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            _refuse_escaping(archive, zf.namelist())
            for member_name in zf.namelist():
                if member_name in wanted:
                    atomic.write_bytes(wanted[member_name], zf.read(member_name))
    else:
        raise ValueError(f"{archive} is neither a tar nor a zip archive")


def download(name: str, split=None) -> Path:
    """Download ``name`` into the user cache from its manifest's sources and verify it."""
    man = manifest(name)
    dest = cache_dir() / name
    entries = _entries(man, split)
    errors = []
    for source in man["sources"]:
        try:
            if source["kind"] == "files":
                _fetch_files(source, entries, dest)
            elif source["kind"] == "archive":
                _fetch_archive(source, entries, dest)
            else:
                raise ValueError(f"unknown source kind {source['kind']!r}")
            verify(name, dest, split)
            return dest
        except ChecksumError:
            raise
        except Exception as err:  # noqa: BLE001 - try the next source
            errors.append(f"{source.get('url') or source.get('base_url')}: {type(err).__name__}: {err}")
    raise DataNotFound(f"could not download {name}: " + " | ".join(errors))


def _demo_paths() -> list:
    """Materialise scikit-image's bundled photos as PNG files (once) and return their paths."""
    from PIL import Image
    import skimage.data
    folder = cache_dir() / DEMO
    paths = []
    for n in _DEMO_IMAGES:
        path = folder / f"{n}.png"
        if not path.is_file():
            buf = __import__("io").BytesIO()
            Image.fromarray(np.asarray(getattr(skimage.data, n)())).save(buf, format="PNG")
            atomic.write_bytes(path, buf.getvalue())
        paths.append(path)
    return paths


def image_paths(name: str, split=None, data_root=None, download_missing: bool = True) -> list:
    """Verified image files of dataset ``name`` (optionally one split or a list of splits)."""
    if name == DEMO:
        return _demo_paths()
    folder = locate(name, data_root, split, download_missing)
    return verify(name, folder, split)


def images_or_demo(name: str, split=None, data_root=None, download_missing: bool = True):
    """``(paths, note)``: the dataset, or the demo set with ``DEMO_NOTE`` if it cannot be had.

    ``note`` is None for real benchmark data. Checksum mismatches are never papered over.
    """
    try:
        return image_paths(name, split, data_root, download_missing), None
    except DataNotFound as err:  # the message's last line says how to provide the data
        return _demo_paths(), f"{DEMO_NOTE} ({name}: {str(err).splitlines()[-1]})"


def _training_images(specs, read, data_root, min_side, limit):
    out, dropped = [], 0
    for spec in specs:
        name, _, split = spec.partition(":")
        if name == DEMO:
            paths, folder = _demo_paths(), None
        else:
            folder = locate(name, data_root, split or None, allow_pack=True)
            paths = verify(name, folder, split or None, allow_pack=True)
        if folder is not None and _packed(folder) is not None:
            total = len(_entries(manifest(name), split or None))
            print(f"training on a pack: {len(paths)} of {total} files of {spec} ({folder})", file=sys.stderr)
        imgs = [read(p) for p in (paths[:limit] if limit else paths)]
        if min_side:
            dropped += sum(min(im.shape[:2]) < min_side for im in imgs)
            imgs = [im for im in imgs if min(im.shape[:2]) >= min_side]
        out += imgs
    return out, dropped


def gray_images(specs, data_root=None, min_side: int | None = None, limit: int | None = None):
    """Gray-protocol luma arrays of dataset specs ``name[:split]`` (e.g. ``"bsds500:train"``), for training.

    No demo fallback: training must not silently use other data. Images with a
    side below ``min_side`` (the training crop) are dropped; ``limit`` keeps the
    first images of each spec. Returns ``(images, n_dropped)``.
    """
    from .images import read_gray
    return _training_images(specs, read_gray, data_root, min_side, limit)


def rgb_images(specs, data_root=None, min_side: int | None = None, limit: int | None = None):
    """RGB arrays (HxWx3 uint8) of dataset specs, for training the colour networks; otherwise as ``gray_images``."""
    from .images import read_rgb
    return _training_images(specs, read_rgb, data_root, min_side, limit)


def pack(specs, dest, max_mib: float, data_root=None) -> dict:
    """Copy the verified files of training ``specs`` (``name[:split]``) into the data root ``dest``, at most
    ``max_mib`` MiB in all: the specs in the order given, each in manifest order, as many files as fit.

    Files are copied unchanged; each dataset folder gets a ``PACK.json`` listing them. Returns
    ``{spec: (files packed, files in the spec)}``. ``dest`` must not exist yet (nothing is merged).
    """
    import shutil
    dest = Path(dest)
    if dest.exists():
        raise FileExistsError(f"{dest} exists; a pack is written into a new folder")
    budget, used, counts, listed = max_mib * 2 ** 20, 0, {}, {}
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        for spec in specs:
            name, _, split = spec.partition(":")
            folder = locate(name, data_root, split or None)
            paths = verify(name, folder, split or None)
            taken = 0
            for path in paths:
                size = path.stat().st_size
                if used + size > budget:
                    break
                rel = path.relative_to(folder).as_posix()
                (tmp / name / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, tmp / name / rel)
                listed.setdefault(name, []).append(rel)
                used += size
                taken += 1
            counts[spec] = (taken, len(paths))
        for name, files in listed.items():
            atomic.write_text(tmp / name / PACK_FILE, json.dumps({"dataset": name, "files": files}, indent=1))
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return counts
