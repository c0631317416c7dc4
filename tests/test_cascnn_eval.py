"""paperlib.cascnn_eval: the CAS-CNN notebook's tables (no training here)."""
import numpy as np
import pandas as pd
import pytest

from paperlib import cascnn_eval as ce
from paperlib import data, protocols, published


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


def test_ints_or_blank():
    assert list(ce.ints_or_blank(pd.Series([4000, None, float("nan"), 3.0]))) == ["4000", "", "", "3"]
