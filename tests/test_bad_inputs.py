"""The bad-input catalogue: every case ends in a clear one-line message (CLI: exit status 2, no traceback) or
works as documented, and nothing partial is left behind. 31 cases:

files given to ``restore``                  1 zero-byte file, 2 truncated JPEG, 3 PNG named .jpg, 4 CMYK JPEG,
                                            5 progressive JPEG, 6 12-bit JPEG (refused); 7 arithmetic-coded JPEG
                                            (restored: same pixels as the Huffman-coded file)
sizes                                       8 1x1, 9 7x13, 10 smaller than the receptive field (every family)
images given to ``baseline``/``evaluate``   11 palette PNG, 12 opaque RGBA PNG, 13 LA PNG (converted);
                                            14 transparent RGBA and 15 16-bit PNG (refused with the reason);
                                            16 a .jpg reference (warned: already lossy)
quality factors                             17 QF 0, 18 QF 101, 19 QF -1, 20 QF abc
metrics                                     21 NaN and 22 Inf in an image
checkpoints                                 23 wrong sha256, 24 truncated, 25 another architecture,
                                            26 a pickle with a code payload (refused by weights_only)
data                                        27 a manifest with a wrong hash, 28 an archive with ../ or absolute
                                            member paths, 29 a data root that does not exist
writing                                     30 a read-only output folder, 31 a full disk during a checkpoint
                                            write (the previous checkpoint survives); EXIF and ICC carried to the output; Ctrl-C in a folder
                                            restore leaves finished outputs complete and no partial file
"""
import io
import os
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from paperlib import atomic, checkpoint, cli, data, jpeg, metrics, models, zoo
from paperlib.models.cascnn import CASCNN, train_cascnn
from paperlib.models.onetomany import ProposalNet
from paperlib.models.qgcn import QGCN
from paperlib.models.svoboda import L4, L8
from paperlib.restorer import Restorer


def _rgb(h=40, w=52, seed=0):
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory):
    """A committed-networks folder with one tiny gray CAS-CNN (``cas``), trained for the smoke budget."""
    rng = np.random.default_rng(0)
    imgs = [np.clip(rng.normal(128, 40, (40, 48)), 0, 255).astype(np.uint8) for _ in range(3)]
    root = tmp_path_factory.mktemp("zoo")
    train_cascnn(20, imgs, root / "run", "smoke", sources=["synthetic"], progress=False, width=8)
    checkpoint.publish(root / "run", "cas", dest=root / "checkpoints")
    return root / "checkpoints"


@pytest.fixture
def zoo_dir(tiny_zoo, monkeypatch):
    monkeypatch.setattr(zoo, "CHECKPOINT_DIR", tiny_zoo)
    return tiny_zoo


def _cli(capsys, *args):
    code = cli.main([str(a) for a in args])
    err = capsys.readouterr().err.strip()
    return code, err


# ---- 1-7: files given to restore ------------------------------------------------------------------

def _bad_files(folder: Path) -> dict:
    folder.mkdir(exist_ok=True)
    im = Image.fromarray(_rgb())
    (folder / "zero.jpg").write_bytes(b"")
    buf = io.BytesIO()
    im.convert("L").save(buf, format="JPEG", quality=30)
    (folder / "trunc.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    im.save(folder / "png.jpg", format="PNG")
    im.convert("CMYK").save(folder / "cmyk.jpg", quality=30)
    im.convert("L").save(folder / "prog.jpg", quality=30, progressive=True)
    im.convert("L").save(folder / "b12.jpg", quality=30)
    blob = bytearray((folder / "b12.jpg").read_bytes())
    sof = blob.index(b"\xff\xc0")
    blob[sof + 1], blob[sof + 4] = 0xC1, 12        # extended sequential, 12 bits per sample
    (folder / "b12.jpg").write_bytes(bytes(blob))
    return {"zero.jpg": "empty file", "trunc.jpg": "truncated or corrupt", "png.jpg": "not a JPEG file (PNG)",
            "cmyk.jpg": "CMYK", "prog.jpg": "progressive", "b12.jpg": "12-bit JPEG"}


def test_refused_files_one_line_exit_2_nothing_written(zoo_dir, tmp_path, capsys):
    files = _bad_files(tmp_path / "in")
    for name, why in files.items():
        out = tmp_path / f"{name}.png"
        code, err = _cli(capsys, "restore", tmp_path / "in" / name, out, "--model", "cas")
        assert code == 2 and why in err and err.startswith("error:") and "\n" not in err, (name, err)
        assert not out.exists()
    # a folder restores what it can and names every file it skipped (exit 1)
    assert cli.main(["restore", str(tmp_path / "in"), str(tmp_path / "out"), "--model", "cas", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert all(why in err for why in files.values())
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())   # nothing partial


def test_arithmetic_coded_jpeg_restores_like_huffman(zoo_dir, tmp_path):
    import jpeglib
    gray = _rgb()[..., 0].copy()
    with jpeglib.version("9e"):
        for name, flags in (("huff.jpg", []), ("arith.jpg", ["+ARITH_CODE"])):
            jpeglib.from_spatial(gray[..., None]).write_spatial(str(tmp_path / name), qt=30, flags=flags)
    assert b"\xff\xc9" in (tmp_path / "arith.jpg").read_bytes()               # SOF9: arithmetic coding
    a, _, _ = jpeg.read_jpeg(tmp_path / "arith.jpg")
    h, _, _ = jpeg.read_jpeg(tmp_path / "huff.jpg")
    assert np.array_equal(a, h)                                                # entropy coding is lossless
    r = Restorer.load("cas")
    assert np.array_equal(r.restore_file(tmp_path / "arith.jpg")[0], r.restore_file(tmp_path / "huff.jpg")[0])


# ---- 8-10: tiny images, smaller than any receptive field ------------------------------------------------

@pytest.mark.parametrize("size", [(1, 1), (7, 13), (15, 17)])
def test_tiny_images_every_family(size):
    torch.manual_seed(0)
    nets = [CASCNN(width=8), L4(), L8(), QGCN(3, n_res=1), QGCN(1, n_res=1),
            ProposalNet(1, width=8, branch_units=1, aggregation_units=1)]
    for net in nets:
        img = _rgb(*size) if net.channels == 3 else _rgb(*size)[..., 0].copy()
        assert max(size) < 2 * net.halo                                      # inside one receptive field
        out = Restorer(net)([img], qf=10)[0]
        assert out.shape == img.shape and out.dtype == np.uint8, type(net).__name__


# ---- 11-16: images given to baseline / evaluate -----------------------------------------------------------

def test_image_modes_for_the_protocols(tmp_path, capsys):
    rgb = _rgb(24, 32)
    ok = tmp_path / "ok"
    ok.mkdir()
    Image.fromarray(rgb).convert("P").save(ok / "palette.png")
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])).save(ok / "opaque.png")
    Image.fromarray(np.dstack([rgb[..., 0], np.full(rgb.shape[:2], 255, np.uint8)]), "LA").save(ok / "la.png")
    assert cli.main(["baseline", "--images", str(ok), "--qf", "50", "--json"]) == 0
    capsys.readouterr()
    for name, img, why in (("alpha.png", Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)])),
                            "transparent"),
                           ("deep.png", Image.fromarray(rgb[..., 0].astype(np.uint16) * 257), "16-bit")):
        folder = tmp_path / name
        folder.mkdir()
        img.save(folder / name)
        code, err = _cli(capsys, "baseline", "--images", folder, "--qf", "50")
        assert code == 2 and why in err and "\n" not in err, err


def test_lossy_references_are_warned_about(tmp_path, capsys):
    Image.fromarray(_rgb(24, 32)).save(tmp_path / "ref.jpg", quality=90)
    assert cli.main(["baseline", "--images", str(tmp_path), "--qf", "50"]) == 0
    assert "already lossy" in capsys.readouterr().err


# ---- 17-20: quality factors ---------------------------------------------------------------------------------

@pytest.mark.parametrize("qf,why", [("0", "1..100"), ("101", "1..100"), ("-1", "1..100"), ("abc", "invalid int")])
def test_bad_quality_factors(tmp_path, capsys, qf, why):
    Image.fromarray(_rgb(16, 16)).save(tmp_path / "a.png")
    try:
        code = cli.main(["baseline", "--images", str(tmp_path), "--qf", qf])
    except SystemExit as exit_:   # argparse's own refusal (not an integer)
        code = exit_.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and why in err and len(err.splitlines()) == 1, err


# ---- 21-22: metrics --------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_values_are_refused_by_the_metrics(bad):
    ref = np.full((16, 16), 100.0)
    test = ref.copy()
    test[3, 4] = bad
    for fn in (metrics.psnr, metrics.ssim, metrics.psnrb):
        with pytest.raises(ValueError, match="NaN or infinite"):
            fn(ref, test)


# ---- 23-26: checkpoints -------------------------------------------------------------------------------------

def test_wrong_sha256_is_refused_at_the_cli(zoo_dir, tmp_path, capsys):
    Image.fromarray(_rgb(16, 16)).save(tmp_path / "a.png")
    path = zoo_dir / "cas.pt"
    blob = path.read_bytes()
    try:
        path.write_bytes(blob[:-1] + bytes([blob[-1] ^ 1]))
        code, err = _cli(capsys, "evaluate", "--model", "cas", "--images", tmp_path, "--qf", "20")
        assert code == 2 and "sha256 does not match" in err and "\n" not in err
    finally:
        path.write_bytes(blob)


def test_truncated_foreign_and_malicious_checkpoints(tmp_path):
    good = checkpoint.export_fp16(CASCNN(width=8).state_dict(), tmp_path / "good.pt",
                                  {"arch": "CASCNN", "kwargs": {"width": 8}})
    (tmp_path / "trunc.pt").write_bytes(good.read_bytes()[:200])
    with pytest.raises(ValueError, match="not a readable weights-only checkpoint"):
        models.load(tmp_path / "trunc.pt")
    # a CAS-CNN file presented as QGCN, and QGCN weights under a CAS-CNN label
    with pytest.raises(ValueError, match="holds a CASCNN network, not the QGCN"):
        models.load(good, arch="QGCN")
    checkpoint.export_fp16(QGCN(1, n_res=1).state_dict(), tmp_path / "foreign.pt",
                           {"arch": "CASCNN", "kwargs": {"width": 8}})
    with pytest.raises(ValueError, match="do not fit a CASCNN network"):
        models.load(tmp_path / "foreign.pt")

    class Payload:   # unpickling it would run code
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"format": checkpoint.FP16_FORMAT, "x": Payload()}))
    with pytest.raises(ValueError, match="not a readable weights-only checkpoint"):
        models.load(tmp_path / "evil.pt")
    assert not (tmp_path / "pwned").exists()


# ---- 27-29: data -----------------------------------------------------------------------------------------

def _toy_manifest(tmp_path, monkeypatch, blob: bytes, sha: str, source=None):
    import json
    man_dir = tmp_path / "manifests"
    man_dir.mkdir(exist_ok=True)
    (man_dir / "toy.json").write_text(json.dumps({
        "name": "toy", "official_page": "nowhere", "license": "test", "splits": {"test": 1},
        "sources": [source or {"kind": "files", "base_url": "http://127.0.0.1:9/"}],
        "files": [{"path": "a.png", "sha256": sha, "split": "test"}]}))
    monkeypatch.setattr(data, "MANIFEST_DIR", man_dir)
    (tmp_path / "root" / "toy").mkdir(parents=True, exist_ok=True)
    (tmp_path / "root" / "toy" / "a.png").write_bytes(blob)


def test_manifest_hash_mismatch_is_refused_by_name(tmp_path, monkeypatch):
    _toy_manifest(tmp_path, monkeypatch, b"not the file", "0" * 64)
    with pytest.raises(data.ChecksumError, match="a.png"):
        data.verify("toy", tmp_path / "root" / "toy")


@pytest.mark.parametrize("member", ["../evil.png", "/tmp/evil.png"])
def test_archives_escaping_their_folder_are_refused(tmp_path, member):
    for kind in ("tar", "zip"):
        arc = tmp_path / f"a.{kind}"
        if kind == "tar":
            with tarfile.open(arc, "w") as t:
                info = tarfile.TarInfo(member)
                info.size = 3
                t.addfile(info, io.BytesIO(b"bad"))
        else:
            with zipfile.ZipFile(arc, "w") as z:
                z.writestr(member, b"bad")
        with pytest.raises(ValueError, match="escape its folder"):
            data._refuse_escaping(arc, tarfile.open(arc).getnames() if kind == "tar" else zipfile.ZipFile(arc).namelist())
    assert not (tmp_path.parent / "evil.png").exists()


def test_a_data_root_that_does_not_exist(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(data.ENV_VAR, raising=False)              # only the given root and an empty cache
    monkeypatch.setenv(data.CACHE_ENV_VAR, str(tmp_path / "cache"))
    with pytest.raises(data.DataNotFound, match="not there"):
        data.locate("live1", data_root=tmp_path / "nowhere", download_missing=False)
    code, err = _cli(capsys, "data", "verify", "live1", "--root", tmp_path / "nowhere")
    assert code == 1 and "FAILED" in err and len(err.splitlines()) == 1


# ---- 30-31 and Ctrl-C: writing --------------------------------------------------------------------------

def _jpeg_folder(folder: Path, n=3):
    folder.mkdir()
    for i in range(n):
        Image.fromarray(_rgb(seed=i)[..., 0].copy()).save(folder / f"{i}.jpg", quality=30)
    return folder


def test_unwritable_output_folder(zoo_dir, tmp_path, capsys, monkeypatch):
    src = _jpeg_folder(tmp_path / "in", 1)

    def denied(*a, **k):   # what a read-only folder does (the tests may run as root, who may write anywhere)
        raise PermissionError(13, "Permission denied", str(tmp_path / "ro"))

    monkeypatch.setattr(atomic.tempfile, "mkstemp", denied)
    code, err = _cli(capsys, "restore", src / "0.jpg", tmp_path / "ro" / "0.png", "--model", "cas")
    assert code == 2 and "Permission denied" in err and "\n" not in err
    assert not (tmp_path / "ro" / "0.png").exists()


def test_full_disk_keeps_the_previous_checkpoint(tmp_path):
    path = checkpoint.save_atomic({"step": 1}, tmp_path / "checkpoint.pt")

    def disk_full(f):
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        atomic.write(path, disk_full)
    assert checkpoint.load(path) == {"step": 1}                               # the previous one survives
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]          # no temp file left


def test_ctrl_c_in_a_folder_restore_then_resume(zoo_dir, tmp_path, capsys, monkeypatch):
    src = _jpeg_folder(tmp_path / "in", 3)
    out = tmp_path / "out"
    real = cli._save
    calls = []

    def interrupt_second(img, dst, *info):
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(img, dst, *info)

    monkeypatch.setattr(cli, "_save", interrupt_second)
    assert cli.main(["restore", str(src), str(out), "--model", "cas", "--quiet"]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["0.png"]                        # complete, nothing partial
    first = (out / "0.png").read_bytes()
    monkeypatch.setattr(cli, "_save", real)
    assert cli.main(["restore", str(src), str(out), "--model", "cas", "--quiet"]) == 0
    assert "1 of 3 outputs exist already" in capsys.readouterr().out          # rerun goes on where it stopped
    assert sorted(p.name for p in out.iterdir()) == ["0.png", "1.png", "2.png"]
    assert (out / "0.png").read_bytes() == first


def test_exif_orientation_and_icc_profile_are_carried_not_applied(zoo_dir, tmp_path, capsys):
    """The pixels stay in the stored orientation (the JPEG grid and tables belong to it); the output carries
    the input's EXIF block (orientation included) and ICC profile, as Pillow reports them for both files."""
    from PIL import ImageCms
    gray = Image.fromarray(_rgb(24, 40)[..., 0].copy())
    exif = Image.Exif()
    exif[0x0112] = 6                                        # "rotate 90 CW to display"
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    gray.save(tmp_path / "o.jpg", quality=30, exif=exif.tobytes(), icc_profile=icc)
    assert cli.main(["restore", str(tmp_path / "o.jpg"), str(tmp_path / "o.png"), "--model", "cas"]) == 0
    assert "EXIF orientation 6 kept, not applied" in capsys.readouterr().out
    with Image.open(tmp_path / "o.png") as out:
        assert out.size == (40, 24)                          # not rotated
        assert out.getexif().get(0x0112) == 6 and out.info.get("icc_profile") == icc
