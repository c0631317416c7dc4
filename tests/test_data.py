import functools
import hashlib
import http.server
import io
import json
import tarfile
import threading

import numpy as np
import pytest
from PIL import Image

from paperlib import data

REAL_MANIFEST_DIR = data.MANIFEST_DIR


def _png(seed):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (16, 24, 3)).astype(np.uint8)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """A two-split toy dataset served as a .tar.gz from a loopback HTTP server."""
    files = {"train/a.png": _png(0), "train/b.png": _png(1), "test/c.png": _png(2)}
    served = tmp_path / "served"
    served.mkdir()
    with tarfile.open(served / "toy.tar.gz", "w:gz") as tar:
        for rel, blob in list(files.items()) + [("README.txt", b"not an image")]:
            info = tarfile.TarInfo(f"toy-release/images/{rel}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    man = {
        "name": "toy", "description": "toy", "license": "test", "official_page": "http://127.0.0.1/",
        "sources": [
            {"kind": "files", "base_url": f"http://127.0.0.1:{port}/nothing-here/"},  # 404: falls through
            {"kind": "archive", "url": f"http://127.0.0.1:{port}/toy.tar.gz", "strip": "toy-release/images/"},
        ],
        "splits": {"train": 2, "test": 1},
        "files": [{"path": k, "sha256": hashlib.sha256(v).hexdigest(), "split": k.split("/")[0]}
                  for k, v in files.items()],
    }
    (manifests / "toy.json").write_text(json.dumps(man))
    monkeypatch.setattr(data, "MANIFEST_DIR", manifests)
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("PAPERLIB_DATA", raising=False)
    yield files, tmp_path
    server.shutdown()


def test_loopback_download_extracts_and_verifies(toy):
    files, tmp = toy
    paths = data.image_paths("toy", "train")
    assert [p.name for p in paths] == ["a.png", "b.png"]
    assert all(p.read_bytes() == files[f"train/{p.name}"] for p in paths)
    assert paths[0].parent.parent == tmp / "cache" / "toy"
    assert not (tmp / "cache" / "toy" / "README.txt").exists()  # only manifest files are extracted
    assert len(data.image_paths("toy")) == 3


def test_checksum_mismatch_is_refused_by_name(toy):
    files, tmp = toy
    root = tmp / "root"
    for rel, blob in files.items():
        (root / "toy" / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / "toy" / rel).write_bytes(blob)
    (root / "toy" / "train" / "b.png").write_bytes(_png(99))
    with pytest.raises(data.ChecksumError, match="train/b.png"):
        data.image_paths("toy", data_root=root)
    # the other split is still usable: only the files in use are checked
    assert [p.name for p in data.image_paths("toy", "test", data_root=root)] == ["c.png"]


def test_resolution_order(toy, monkeypatch):
    files, tmp = toy
    for root in ("explicit", "env"):
        for rel, blob in files.items():
            (tmp / root / "toy" / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / root / "toy" / rel).write_bytes(blob)
    monkeypatch.setenv("PAPERLIB_DATA", str(tmp / "env"))
    assert data.locate("toy", data_root=tmp / "explicit") == tmp / "explicit" / "toy"
    assert data.locate("toy") == tmp / "env" / "toy"
    # an explicit root without the dataset falls through to the environment variable
    assert data.locate("toy", data_root=tmp / "nowhere") == tmp / "env" / "toy"


def test_not_found_error_names_dataset_and_places(toy, monkeypatch):
    files, tmp = toy
    with pytest.raises(data.DataNotFound) as err:
        data.locate("toy", data_root=tmp / "nowhere", download_missing=False)
    msg = str(err.value)
    assert "'toy'" in msg and str(tmp / "nowhere" / "toy") in msg and "PAPERLIB_DATA" in msg


def test_unknown_dataset_and_split(toy):
    with pytest.raises(ValueError, match="unknown dataset"):
        data.manifest("nope")
    with pytest.raises(ValueError, match="no split"):
        data.image_paths("toy", "val")


def test_demo_set_is_always_there_and_labelled(toy):
    paths, note = data.images_or_demo("toy", data_root=None, download_missing=False)
    assert len(paths) >= 5 and all(p.is_file() for p in paths)
    assert "NOT comparable" in note
    paths, note = data.images_or_demo("toy")
    assert note is None and len(paths) == 3


@pytest.mark.parametrize("name,counts", [
    ("live1", {"test": 29}), ("classic5", {"test": 5}), ("set14", {"test": 14}),
    ("bsds500", {"train": 200, "val": 100, "test": 200}), ("imagenet-sample-1000", {"train": 1000})])
def test_real_manifests_verify_against_the_offline_copies(name, counts, data_root, monkeypatch):
    monkeypatch.setattr(data, "MANIFEST_DIR", REAL_MANIFEST_DIR)
    man = data.manifest(name)
    assert man["splits"] == counts and man["license"] and man["sources"]
    assert len(data.verify(name, data_root / name)) == sum(counts.values())


def test_bsds500_splits_are_disjoint(monkeypatch):
    monkeypatch.setattr(data, "MANIFEST_DIR", REAL_MANIFEST_DIR)
    man = data.manifest("bsds500")
    stems = {s: {f["path"].split("/")[1] for f in man["files"] if f["split"] == s} for s in man["splits"]}
    assert not (stems["train"] & stems["val"] or stems["train"] & stems["test"] or stems["val"] & stems["test"])


def test_gray_images_for_training(toy):
    imgs, dropped = data.gray_images(["toy:train", "toy:test"], min_side=8)
    assert len(imgs) == 3 and dropped == 0 and all(im.dtype.name == "uint8" and im.ndim == 2 for im in imgs)
    imgs, dropped = data.gray_images(["toy:train"], min_side=20)  # the toy images are 16x24
    assert imgs == [] and dropped == 2
    assert len(data.gray_images(["toy"], limit=1)[0]) == 1
    with pytest.raises(ValueError, match="unknown dataset"):
        data.gray_images(["nope:train"])


def test_rgb_images_for_training(toy):
    from PIL import Image
    imgs, dropped = data.rgb_images(["toy:train", "toy:test"], min_side=8)
    assert len(imgs) == 3 and dropped == 0 and all(im.dtype.name == "uint8" and im.shape[2] == 3 for im in imgs)
    # the same files Pillow reads as RGB
    first = data.image_paths("toy", "train")[0]
    assert np.array_equal(imgs[0], np.asarray(Image.open(first).convert("RGB")))
    imgs, dropped = data.rgb_images(["toy:train"], min_side=20)   # 16x24: the short side decides
    assert imgs == [] and dropped == 2


def test_training_pack_is_capped_copied_unchanged_and_read_only_by_training(toy, monkeypatch, capsys):
    files, tmp = toy
    full = data.locate("toy")                                   # downloads into the cache
    one = len(files["train/a.png"])
    cap = (one + len(files["train/b.png"]) // 2) / 2 ** 20      # room for a.png and half of b.png
    counts = data.pack(["toy:train", "toy:test"], tmp / "pack", cap)
    assert counts == {"toy:train": (1, 2), "toy:test": (0, 1)}
    packed = tmp / "pack" / "toy"
    assert (packed / "train/a.png").read_bytes() == (full / "train/a.png").read_bytes()
    assert not (packed / "train/b.png").exists()
    assert sum(p.stat().st_size for p in packed.rglob("*.png")) <= cap * 2 ** 20
    # training takes the pack from the data root and says so; the test split has nothing packed
    imgs, _ = data.gray_images(["toy:train"], data_root=tmp / "pack")
    assert len(imgs) == 1 and "training on a pack: 1 of 2 files of toy:train" in capsys.readouterr().err
    # evaluation never takes a pack for the whole set: it finds the full copy instead
    assert len(data.image_paths("toy", "train", data_root=tmp / "pack")) == 2
    with pytest.raises(FileNotFoundError, match="training pack"):
        data.verify("toy", packed, "train")
    # a packed file that was changed is refused like any other
    (packed / "train/a.png").write_bytes(files["train/b.png"])
    with pytest.raises(data.ChecksumError, match="a.png"):
        data.verify("toy", packed, "train", allow_pack=True)
    with pytest.raises(FileExistsError):
        data.pack(["toy:train"], tmp / "pack", cap)
