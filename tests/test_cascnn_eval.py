"""paperlib.cascnn_eval: the CAS-CNN notebook's evaluation helpers (no training here; tiny networks)."""
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from paperlib import cascnn_eval as ce
from paperlib import data, protocols, published
from paperlib.models.cascnn import CASCNN, enhance


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    return CASCNN(width=8).eval()


def _images(seed=0, shapes=((40, 48), (40, 48), (33, 50), (40, 48))):
    rng = np.random.default_rng(seed)
    out = []
    for h, w in shapes:
        y, x = np.mgrid[:h, :w]
        img = 128 + 60 * np.sin(x / 5.0) * np.cos(y / 7.0) + rng.normal(0, 8, (h, w))
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return out


def _write_pngs(imgs, folder):
    paths = []
    for i, img in enumerate(imgs):
        p = folder / f"im{i}.png"
        Image.fromarray(img).save(p)
        paths.append(p)
    return paths


def test_enhance_batch_equals_enhance_per_image(small):
    imgs = _images()
    batched = ce.enhance_batch(small, imgs, batch=3)
    for img, b in zip(imgs, batched):
        one = enhance(small, img)
        assert b.shape == img.shape and b.dtype == np.uint8
        diff = np.abs(b.astype(int) - one.astype(int))
        assert diff.max() <= 1 and (diff == 0).mean() > 0.99   # same up to float summation order


def test_enhance_batch_rejects_non_uint8(small):
    with pytest.raises(ValueError):
        ce.enhance_batch(small, [np.zeros((8, 8), np.float32)])


def test_evaluate_arrays_matches_protocols_evaluate(small, tmp_path):
    imgs = _images()
    paths = _write_pngs(imgs, tmp_path)
    ref = protocols.evaluate(paths, [10, 50], "gray", restore=lambda im, qf: enhance(small, im), progress=False)
    got = ce.evaluate_arrays({p.stem: im for p, im in zip(paths, imgs)}, [10, 50], small, batch=2)
    ref = ref.sort_values(["image", "qf"]).reset_index(drop=True)
    got = got.sort_values(["image", "qf"]).reset_index(drop=True)
    assert list(got.columns) == list(ref.columns)
    cols = ["image", "qf", "height", "width", "bpp", "jpeg_psnr", "jpeg_ssim", "jpeg_psnrb"]
    pd.testing.assert_frame_equal(got[cols], ref[cols])
    assert np.allclose(got.restored_psnr, ref.restored_psnr, atol=0.05)
    assert "restored_psnr" not in ce.evaluate_arrays({"a": imgs[0]}, [10]).columns


def test_evaluate_network_keeps_the_requested_outputs(small, tmp_path):
    imgs = _images(shapes=((24, 32), (16, 40)))
    paths = _write_pngs(imgs, tmp_path)
    df, kept = ce.evaluate_network(paths, [10, 30], small, keep={"im1"})
    assert len(df) == 4 and set(kept) == {("im1", 10), ("im1", 30)}
    dec, _ = protocols.GRAY.compress(imgs[1], 30)
    assert np.array_equal(kept[("im1", 30)], enhance(small, dec))
    row = df[(df.image == "im1") & (df.qf == 30)].iloc[0]
    assert row.restored_psnr == pytest.approx(protocols.GRAY.score(imgs[1], kept[("im1", 30)])["psnr"])


def test_center_crops(tmp_path):
    img = np.arange(60 * 80, dtype=np.uint32).reshape(60, 80).astype(np.uint8)
    (p,) = _write_pngs([img], tmp_path)
    crops = ce.center_crops([p], 32)
    assert np.array_equal(crops["im0"], img[14:46, 24:56])
    assert ce.center_crops([p], 100)["im0"].shape == (60, 80)   # smaller images stay whole


def _jpeg_summary():
    return pd.DataFrame({"qf": [10, 20], "n_images": [29, 29], "jpeg_psnr": [27.7698, 30.0720],
                         "jpeg_psnrb": [25.3325, 27.5657], "jpeg_ssim": [0.7905, 0.8683], "bpp": [0.4, 0.6]})


def test_table2_rows_missing_published_and_ours():
    ours_sum = pd.DataFrame({"qf": [20], "n_images": [29], "restored_psnr": [30.5],
                             "restored_psnrb": [29.004], "restored_ssim": [0.8806], "bpp": [0.6]})
    ours = [{"qf": 10, "method": "ours, w/ loss FT", "network": "cascnn-q10", "summary": None,
             "note": "no committed checkpoint"},
            {"qf": 20, "method": "ours, w/ loss FT", "network": "cascnn-q20", "summary": ours_sum,
             "budget": "cpu", "steps": 4000, "train_data": "bsds500:train (200 images)"}]
    table, cells = ce.table2(_jpeg_summary(), ours, qfs=(10, 20))
    # every printed method of the two QFs, plus our rows, in the paper's order
    assert list(table[table.qf == 20].method) == ["JPEG", "SA-DCT", "AR-CNN", "L4", "L8", "ours, w/ loss FT"]
    assert list(table[table.qf == 10].method) == ["JPEG", "SA-DCT", "AR-CNN", "L4", "ours, w/ loss FT"]
    miss = table[(table.qf == 10) & (table.method == "ours, w/ loss FT")].iloc[0]
    assert miss.source == "missing" and miss.note == "no committed checkpoint" and np.isnan(miss.psnr)
    assert miss.paper_psnr == "29.44"                        # the paper's row is still shown
    got = table[(table.qf == 20) & (table.method == "ours, w/ loss FT")].iloc[0]
    assert got.source == "this run" and got.psnr == 30.5 and got.steps == "4000" and got.budget == "cpu"
    assert got.diff_psnr == pytest.approx(30.50 - 31.70)
    assert got.diff_psnrb == pytest.approx(29.00 - 30.88)    # rounded to the printed precision first
    assert got.diff_ssim == pytest.approx(0.881 - 0.895)
    jp = table[(table.qf == 10) & (table.method == "JPEG")].iloc[0]
    assert (jp.diff_psnr, jp.diff_psnrb, jp.diff_ssim) == (0, 0, 0)
    l8 = table[(table.qf == 20) & (table.method == "L8")].iloc[0]
    assert np.isnan(l8.psnr) and l8.paper_psnr == "31.51" and "paper only" in l8.source
    assert set(cells.row) == {"JPEG", "ours, w/ loss FT"} and len(cells) == 9
    demo, _ = ce.table2(_jpeg_summary(), ours, qfs=(10, 20), demo=True)
    assert demo.diff_psnr.isna().all()                       # no diffs on demo images


def test_table2_notes_the_jpeg_cells_that_do_not_reproduce():
    s = pd.DataFrame({"qf": [60], "n_images": [29], "jpeg_psnr": [33.9841], "jpeg_psnrb": [31.7930],
                      "jpeg_ssim": [0.9396], "bpp": [1.2]})
    table, _ = ce.table2(s, [], qfs=(60,))
    jp = table[table.method == "JPEG"].iloc[0]
    assert "multiple of 32" in jp.note and jp.diff_psnrb == pytest.approx(-0.10)


def _classic5_like(order):
    """Per-image JPEG rows whose numbers are the printed ones (img4: its real values), files in ``order``."""
    printed = published.load(paper="cascnn", table="fig6", method="JPEG")
    real4 = {"psnr": 30.410, "psnrb": 27.296, "ssim": 0.8295}
    rows = []
    for f, img in zip(order, ["img1", "img2", "img3", "img4", "img5"]):
        p = printed[printed.dataset == f"classic5/{img}"].set_index("metric").value
        vals = real4 if img == "img4" else p
        rows.append({"image": f, "qf": 10, **{f"jpeg_{m}": float(vals[m]) for m in ("psnr", "psnrb", "ssim")}})
    return pd.DataFrame(rows)


def test_match_classic5_by_jpeg_psnr_and_elimination():
    per = _classic5_like(["c", "a", "e", "b", "d"])
    m = ce.match_classic5(per).set_index("paper_image")
    assert dict(m.file) == {"img1": "c", "img2": "a", "img3": "e", "img4": "b", "img5": "d"}
    assert m.loc["img4", "how"].startswith("by elimination")
    assert m.loc["img1", "jpeg_cells_agreeing"] == 3 and m.loc["img4", "jpeg_cells_agreeing"] == 0


def test_match_classic5_leaves_ambiguous_images_unmatched():
    per = _classic5_like(["1", "2", "3", "4", "5"])
    per.loc[per.image == "5", "jpeg_psnr"] = per.loc[per.image == "1", "jpeg_psnr"].iloc[0]  # two files alike
    per.loc[per.image == "3", "jpeg_psnr"] = 99.0
    m = ce.match_classic5(per).set_index("paper_image")
    assert pd.isna(m.loc["img1", "file"]) and pd.isna(m.loc["img3", "file"]) and m.loc["img2", "file"] == "2"


def test_fig6_table_flags_the_copy_error():
    per = _classic5_like(["1", "2", "3", "4", "5"])
    t = ce.fig6_table(per, ce.match_classic5(per))
    img4 = t[(t.paper_image == "img4") & (t.method == "JPEG")]
    assert len(img4) == 3 and img4.note.str.contains("copy error").all()
    ok = t[(t.paper_image == "img1") & (t.method == "JPEG")]
    assert (ok["diff"] == 0).all() and (ok.note == "").all()
    cas = t[t.method == "CAS-CNN"]
    assert cas.ours.isna().all() and cas.note.str.contains("no network output").all()


def test_classic5_files_are_in_caption_order(data_root):
    paths = data.image_paths("classic5", data_root=data_root)
    per = protocols.evaluate(paths, [10], "gray", progress=False)
    m = ce.match_classic5(per)
    assert list(m.file) == ["1", "2", "3", "4", "5"]
    assert m.how.str.startswith("JPEG PSNR").sum() == 4


def test_provenance_reads_zoo_and_run_manifests():
    zoo_meta = {"budget": "cpu", "steps": 4000, "wall_time_s": 1800, "init_from": None,
                "data": {"sources": ["bsds500:train", "bsds500:val"], "n_images": 300}}
    p = ce.provenance(zoo_meta)
    assert p == {"budget": "cpu", "steps": 4000, "train_data": "bsds500:train + bsds500:val (300 images)",
                 "wall_time_h": 0.5, "init_from": ""}
    run_meta = {"budget": "smoke", "steps_done": 4, "wall_time_s": 5.0, "data": {"sources": ["bsds500:val"]},
                "init_from": "checkpoints/cascnn-q20.pt"}
    p = ce.provenance(run_meta)
    assert p["steps"] == 4 and p["train_data"] == "bsds500:val; started from cascnn-q20.pt"
    # the MS-phase weights carry their own step count (the run's manifest counts the whole run)
    assert ce.provenance(run_meta, {"steps": 3, "phase": "ms"})["steps"] == 3


def test_zoo_provenance_reads_the_weights_meta(tmp_path, monkeypatch):
    from paperlib import zoo
    from paperlib.models.cascnn import train_cascnn

    imgs = [np.full((32, 32), v, np.uint8) for v in (60, 120, 180)]
    run = tmp_path / "run"
    train_cascnn(20, imgs, run, "smoke", sources=["synthetic"], progress=False, width=8)
    monkeypatch.setattr(zoo, "CHECKPOINT_DIR", tmp_path / "checkpoints")
    zoo.publish(run, "cascnn-q20-ms", weights="cascnn_ms_fp16.pt")
    zoo.publish(run, "cascnn-q20")
    assert zoo.info("cascnn-q20-ms")["steps"] == 3                 # publish records the step of these weights
    assert ce.zoo_provenance("cascnn-q20-ms")["steps"] == 3        # and so does the weights file itself
    assert ce.zoo_provenance("cascnn-q20")["steps"] == 4
    assert ce.zoo_provenance("cascnn-q20")["train_data"] == "synthetic (3 images)"


def test_ints_or_blank():
    assert list(ce.ints_or_blank(pd.Series([4000, None, float("nan"), 3.0]))) == ["4000", "", "", "3"]
