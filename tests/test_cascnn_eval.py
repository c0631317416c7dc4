"""paperlib.cascnn_eval: the CAS-CNN notebook's tables (no training here)."""
from pathlib import Path

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


# --- the notebook's computed readings ---------------------------------------------------------------------------
FIG = Path(__file__).resolve().parents[1] / "figures" / "cascnn"


def _committed(name, **kw):
    return pd.read_csv(FIG / name, **kw)   # real numbers the notebook wrote (committed in figures/cascnn)


def _per_image(gains, method="ours, w/ loss FT", qf=20, base=30.0):
    """Synthetic per-image rows: the network's PSNR is its JPEG PSNR plus ``gains`` (one per image)."""
    n = len(gains)
    j = base + np.arange(n, dtype=float)
    return pd.DataFrame({"image": [f"im{i}" for i in range(n)], "qf": qf, "method": method, "jpeg_psnr": j,
                         "restored_psnr": j + np.asarray(gains, dtype=float), "jpeg_ssim": 0.8,
                         "restored_ssim": 0.8 + 0.01 * np.sign(gains)})


def test_paired_gains_constant_and_noisy_differences():
    ft = _per_image([0.5] * 10)
    ms = _per_image([0.25] * 10, method="ours, MS loss")
    g = ce.paired_gains(pd.concat([ft, ms])).set_index(["a", "b"])
    # constant per-image differences: a zero-width interval at that constant, beyond the noise
    assert tuple(g.loc[("ours, w/ loss FT", "JPEG"), ["difference", "low", "high"]]) == (0.5, 0.5, 0.5)
    assert tuple(g.loc[("ours, w/ loss FT", "ours, MS loss"), ["difference", "low", "high"]]) == (0.25, 0.25, 0.25)
    assert g.beyond_noise.all() and (g.n_images == 10).all()
    # a network trained beyond the cpu budget is also compared with the cpu-budget one of the same loss, same images
    gpu = ce.LONGER[-1][2]
    g2 = ce.paired_gains(pd.concat([ft, _per_image([0.9] * 10, method=gpu)])).set_index(["a", "b"])
    assert g2.loc[(gpu, "ours, w/ loss FT"), "difference"] == pytest.approx(0.4)
    assert g2.loc[(gpu, "JPEG"), "difference"] == pytest.approx(0.9)
    text2 = ce.table2_reading(pd.DataFrame({"source": [], "diff_psnr": []}), pd.DataFrame(),
                              ce.paired_gains(pd.concat([ft, _per_image([0.9] * 10, method=gpu)])), "synthetic")
    assert (f"Longer training against the cpu-budget network of the same loss (PSNR, same images): QF 20 {gpu} − "
            "ours, w/ loss FT: +0.400") in text2
    # an MS-loss row trained longer is compared with the cpu-budget MS row, not the FT one
    gpu_ms = next(label for _, _, label, paper in ce.LONGER if "gpu" in label.lower() and paper == "CAS-CNN (MS loss)")
    g3 = ce.paired_gains(pd.concat([ft, ms, _per_image([0.75] * 10, method=gpu_ms)])).set_index(["a", "b"])
    assert g3.loc[(gpu_ms, "ours, MS loss"), "difference"] == pytest.approx(0.5)
    assert (gpu_ms, "ours, w/ loss FT") not in g3.index
    # +-1 dB around 0: the mean is 0 and the interval covers it
    noisy = ce.paired_gains(_per_image([1.0, -1.0] * 20)).iloc[0]
    assert noisy.difference == 0 and noisy.low < 0 < noisy.high and not noisy.beyond_noise
    text = ce.table2_reading(pd.DataFrame({"source": [], "diff_psnr": []}), pd.DataFrame(),
                             ce.paired_gains(_per_image([1.0, -1.0] * 20)), "synthetic")
    assert "+0.00 dB (95% interval" in text and "within the image-to-image noise" in text
    assert "Of these 1 gains, 0 are beyond" in text


def test_table2_reading_from_the_committed_tables():
    table = _committed("table2_live1.csv", dtype={"paper_psnr": str}, keep_default_na=False, na_values=[""])
    table["paper_psnr"] = table.paper_psnr.fillna("")
    cells = _committed("table2_live1_cells.csv")
    per = _committed("table2_live1_per_image.csv")
    paired = ce.paired_gains(per)
    # the per-image means agree with Table II's means, which are written from the same evaluation by another path
    ours = table[table.source == "this run"].set_index(["qf", "method"])
    jpeg = table[table.method == "JPEG"].set_index("qf").psnr
    for r in paired[paired.b == "JPEG"].itertuples():
        assert r.difference == pytest.approx(ours.loc[(r.qf, r.a), "psnr"] - jpeg[r.qf], abs=1e-9)
        assert r.low <= r.difference <= r.high and r.n_images == 29
    text = ce.table2_reading(table, cells, paired, "LIVE1, all 29 images")
    # JPEG: the four QF 60/80 PSNR and PSNR-B cells the paper computed on crops to a multiple of 32 pixels
    # (notebooks/protocols.ipynb) are the only ones that differ
    assert "11 of 15 printed cells equal ours" in text and "QF 80 PSNR-B -0.21" in text
    # the paper's FT-minus-MS PSNR differences, from its printed rows (31.70 - 31.67 at QF 20)
    assert "the paper's printed FT minus MS: +0.03 dB" in text
    assert "MS 3000, FT 4000 (33% more" in text   # the steps of cascnn-q20-ms and cascnn-q20 (their manifests)


def test_images_improved_and_fig3_reading():
    per = pd.concat([_per_image([0.5, 0.2, -0.1]), _per_image([0.3, 0.4, 0.1], qf=40)])
    imp = ce.images_improved(per).set_index("qf")
    assert list(imp.improved_psnr) == [2, 3] and list(imp.improved_ssim) == [2, 3] and list(imp.n_images) == [3, 3]
    assert imp.loc[20, "worst_image"] == "im2" and imp.loc[20, "worst_psnr_change"] == pytest.approx(-0.1)
    text = ce.fig3_reading(per, "ours, w/ loss FT", "synthetic")
    assert "QF 20: PSNR 2 of 3" in text and "QF 40: PSNR 3 of 3" in text
    assert "No ours, MS loss network" in ce.fig3_reading(per, "ours, MS loss", "synthetic")


def test_sweep_reading_finds_the_qfs_beyond_the_noise():
    rows = []
    for qf, gain in ((10, -0.5), (20, 0.0), (30, 0.4), (40, 0.6), (50, 0.3)):
        spread = [1.0, -1.0] * 10 if gain == 0 else [0.01, -0.01] * 10
        p = _per_image([gain + s for s in spread], qf=qf)
        rows.append(p.assign(network="net-q40", trained_qf=40))
    text = ce.sweep_reading(pd.concat(rows), "synthetic crops")
    assert "at its own QF 40: +0.60 dB" in text and "largest mean gain +0.60 dB at QF 40" in text
    assert "gain beyond the noise at QF 30-50" in text and "loss beyond the noise at QF 10." in text
    one = pd.concat(rows[:2])   # only QF 10 (a loss) and QF 20 (noise)
    assert "gain beyond the noise at no QF" in ce.sweep_reading(one, "synthetic crops")


def test_fig6_reading_from_the_committed_tables():
    mapping = _committed("fig6_classic5_matching.csv")
    fig6 = _committed("fig6_classic5.csv", keep_default_na=False, na_values=[""])
    text = ce.fig6_reading(mapping, fig6)
    # the paper's img4 JPEG numbers are a copy of its img3 CAS-CNN numbers (published/NOTES.md): img4 can only be
    # matched by elimination and its three JPEG cells are the ones that do not agree
    assert "img4 = 4 (by elimination)" in text and "12 of 15 equal the printed ones" in text
    assert "img4 carries the copy-error note" in text


def test_throughput_reading_counts_the_layers_and_the_gtx1080_peak():
    import torch

    from paperlib import speed
    from paperlib.models.cascnn import CASCNN
    torch.manual_seed(0)
    by_module = speed.flops_by_module(CASCNN())
    tp = pd.DataFrame([{"what": "paper", "precision": "fp32", "image": "not stated", "mpixel_per_s": 1.01,
                        "gflops": 1.01 * 1025.823625, "source": "Mpixel/s transcribed from the paper"}])
    text = ce.throughput_reading(tp, by_module)
    # the two costliest layers, by hand: A(2) is a 3x3 convolution 128 -> 128 at full resolution (2*128*128*9
    # FLOP per pixel); B~ a 4x4 stride-2 transposed convolution 257 -> 128, 4 taps per output pixel (2*257*128*4)
    assert "`A2` (0.295 MFLOP) and `Btilde` (0.263 MFLOP)" in text
    # the GTX 1080's fp32 peak from its specification: 2560 cores x 1.733 GHz x 2 = 8.873 TFLOP/s
    assert ce.GTX1080_FP32_PEAK_TFLOPS == pytest.approx(8.873, abs=5e-4)
    assert f"{1.01 * 1025.823625 / 8872.96:.1%} of that card's fp32 peak" in text


def test_longer_rows_are_committed_networks_at_their_qf():
    from paperlib import zoo
    for qf, name, label, paper in ce.LONGER:
        meta = zoo.info(name)   # raises for a network that is not committed
        assert int(meta["qf"]) == qf and label in ce.OURS and ce.OURS[label][1] == paper
        if label in (ce.CONTINUED, ce.CONTINUED_MS):   # QF 20 continues cascnn-q20; the other QFs start from it
            want = "cascnn-q20.pt" if qf == 20 else "cascnn-q20-cont.pt"
            assert Path(meta["init_from"]).name == want


def test_figures_show_the_continued_family_only_when_it_covers_every_qf():
    model = object()
    cpu = [{"qf": q, "method": "ours, w/ loss FT", "model": model} for q in ce.TABLE_II_QFS]
    cont = [{"qf": q, "method": ce.CONTINUED, "model": model} for q in ce.TABLE_II_QFS]
    assert ce.shown_method(cpu + cont) == ce.CONTINUED
    assert ce.shown_method(cpu + cont[:-1]) == "ours, w/ loss FT"          # one QF not derived yet
    missing = dict(cont[0], model=None)                                   # listed but not committed
    assert ce.shown_method(cpu + [missing] + cont[1:]) == "ours, w/ loss FT"
    assert ce.shown_method(cpu + cont[1:2], qfs=[20]) == ce.CONTINUED      # a one-QF run (qf=20)
    # the MS rows of the continued family never stand in for the FT ones
    ms = [{"qf": q, "method": ce.CONTINUED_MS, "model": model} for q in ce.TABLE_II_QFS]
    assert ce.shown_method(cpu + ms) == "ours, w/ loss FT"
