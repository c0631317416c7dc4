"""paperlib.svoboda_eval, reproduce.method_table, svoboda.filter_mosaic and zoo.filters (tiny networks, no training)."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from paperlib import published, reproduce, zoo
from paperlib import svoboda_eval as se
from paperlib.models import svoboda


@pytest.fixture(scope="module")
def l4():
    torch.manual_seed(0)
    return svoboda.L4("residual").eval()


def _images(n=3, h=40, w=48, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:h, :w]
    return [np.clip(128 + 60 * np.sin(x / (4.0 + i)) * np.cos(y / 6.0) + rng.normal(0, 6, (h, w)), 0, 255)
            .astype(np.uint8) for i in range(n)]


# --- filter mosaic --------------------------------------------------------------------------------

def test_filter_mosaic_shape_range_and_layout():
    rng = np.random.default_rng(0)
    w = rng.normal(0, 1, (48, 11, 11)).astype(np.float32)
    w[5] = 0.0                                               # a dead filter stays mid-gray
    m = svoboda.filter_mosaic(w)
    assert m.shape == (6 * 12 + 1, 8 * 12 + 1) and m.dtype == np.float32
    assert m.min() >= 0.0 and m.max() <= 1.0
    assert (m[0] == 1).all() and (m[:, 0] == 1).all() and (m[12] == 1).all()   # white borders
    cell = lambda i: m[1 + (i // 8) * 12:(i // 8 + 1) * 12, 1 + (i % 8) * 12:(i % 8 + 1) * 12]  # noqa: E731
    assert np.allclose(cell(3), 0.5 + 0.5 * w[3] / np.abs(w[3]).max())
    assert np.isclose(np.abs(cell(3) - 0.5).max(), 0.5)      # each filter uses its full range
    assert (cell(5) == 0.5).all()
    # 4-D (C x 1 x k x k) weights and fewer filters than a full row
    m2 = svoboda.filter_mosaic(w[:3, None], cols=8)
    assert m2.shape == (13, 97) and (m2[1:12, 37:] == 1).all()   # unused cells stay white
    with pytest.raises(ValueError):
        svoboda.filter_mosaic(np.zeros((11, 11)))


def test_first_layer_filters_grid_is_the_mosaic(l4):
    w = svoboda.first_layer_filters(l4)
    assert w.shape == (48, 11, 11)
    assert np.array_equal(svoboda.first_layer_filters(l4, grid=True), svoboda.filter_mosaic(w))


def test_zoo_filters_snapshots():
    snaps = zoo.filters("l4-sobel-q10")
    assert list(snaps) == sorted(snaps) and snaps and min(snaps) == 0
    assert all(v.shape == (48, 11, 11) for v in snaps.values())
    assert zoo.filters("l4-residual-q20") == {}              # trained without --filter-steps
    with pytest.raises(ValueError):
        zoo.filters("no-such-network")


def test_filter_steps_shown():
    assert se.filter_steps_shown([0, 25, 50, 2500], [0, 50, 999]) == [0, 50, 2500]
    assert se.filter_steps_shown([4, 0, 2]) == [0, 2, 4]
    assert se.filter_steps_shown([]) == []


# --- names and tables -----------------------------------------------------------------------------

def test_network_names():
    assert se.network_name("L4", "residual", 10) == "l4-residual-q10"
    assert se.network_name("L4", "residual", (10, 60)) == "l4-residual-q10-60"
    assert se.network_name("L8", "residual", 20, 64) == "l8-residual-q20-n64"
    assert se.network_name("L8", "residual", 20, 400) == "l8-residual-q20"     # the whole training set
    for n in se.DATA_SIZES:                                                    # every Fig. 8 network is committed
        assert se.network_name("L4", "residual", 20, n) in zoo.names()


def _jpeg(psnr, psnrb, ssim, qfs=(10, 20)):
    return pd.DataFrame({"qf": list(qfs), "n_images": [29] * len(qfs), "jpeg_psnr": psnr, "jpeg_psnrb": psnrb,
                         "jpeg_ssim": ssim})


def _ours(qf, psnr, psnrb, ssim):
    return pd.DataFrame({"qf": [qf], "n_images": [29], "restored_psnr": [psnr], "restored_psnrb": [psnrb],
                         "restored_ssim": [ssim]})


def test_table3_lines_up_printed_cells_and_diffs():
    jpeg = _jpeg([27.7698, 30.0720], [25.3325, 27.5657], [0.7905, 0.8683])
    ours = [{"qf": 10, "method": "L4 residual (ours)", "network": "l4-residual-q10",
             "summary": _ours(10, 28.964, 28.3449, 0.81449), "budget": "cpu", "steps": 2500},
            {"qf": 20, "method": "L4 residual (ours)", "network": "l4-residual-q20",
             "summary": _ours(20, 31.293, 30.913, 0.8875)},
            {"qf": 20, "method": "L8 residual (ours)", "network": "l8-residual-q20", "summary": None,
             "note": "no committed checkpoint"}]
    table, cells = se.results_table("3", jpeg, ours)
    assert list(table[table.qf == 10].method) == ["JPEG", "spp", "SA-DCT", "AR-CNN", "L4 residual (ours)"]
    assert list(table[table.qf == 20].method) == ["JPEG", "spp", "SA-DCT", "AR-CNN", "L4 residual (ours)",
                                                  "L8 residual (ours)"]
    jp = table[(table.qf == 10) & (table.method == "JPEG")].iloc[0]
    assert (jp.diff_psnr, jp.diff_psnrb, jp.diff_ssim) == (0, 0, 0) and jp.note == ""   # LIVE1 JPEG reproduces
    l4 = table[(table.qf == 10) & (table.method == "L4 residual (ours)")].iloc[0]
    assert (l4.paper_psnr, l4.paper_psnrb, l4.paper_ssim) == ("29.08", "28.71", "0.824")
    assert l4.diff_psnr == pytest.approx(28.96 - 29.08)      # ours rounded to the printed precision first
    assert l4.diff_psnrb == pytest.approx(28.34 - 28.71)
    assert l4.diff_ssim == pytest.approx(0.814 - 0.824)
    assert l4.steps == "2500" and l4.budget == "cpu" and l4.source == "this run"
    l8 = table[(table.qf == 20) & (table.method == "L8 residual (ours)")].iloc[0]
    assert l8.source == "missing" and np.isnan(l8.psnr) and l8.paper_psnr == "31.51"
    spp = table[(table.qf == 20) & (table.method == "spp")].iloc[0]
    assert "transcribed" in spp.source and np.isnan(spp.psnr) and spp.paper_psnr == "30.49"
    # every printed cell of the JPEG and L4 rows is compared, one line each
    assert len(cells) == 2 * 2 * 3 and set(cells.row) == {"JPEG", "L4 residual (ours)"}  # 2 rows x 2 QFs x 3 metrics
    demo, _ = se.results_table("3", jpeg, ours, demo=True)
    assert demo.diff_psnr.isna().all()


def test_table4_has_no_sadct_and_table5_flags_the_printed_jpeg_row():
    jpeg4 = _jpeg([27.5763, 29.7248], [24.9675, 26.9722], [0.7694, 0.8519])
    t4, _ = se.results_table("4", jpeg4, [])
    assert "SA-DCT" not in set(t4.method) and (t4[t4.method == "JPEG"].diff_psnr == 0).all()
    jpeg5 = _jpeg([27.7698], [25.3325], [0.7905], qfs=(10,))
    ours5 = [{"qf": 10, "method": label, "network": f"l4-{o}-q10", "summary": _ours(10, 28.3 + i / 3, 28.0, 0.81)}
             for i, (o, (label, _)) in enumerate(se.OBJECTIVE_ROWS.items())]
    t5, cells5 = se.results_table("5", jpeg5, ours5, qfs=(10,))
    assert list(t5.method) == ["JPEG"] + [label for label, _ in se.OBJECTIVE_ROWS.values()]
    jp = t5[t5.method == "JPEG"].iloc[0]
    assert jp.paper_psnr == "27.58" and jp.diff_psnr == pytest.approx(27.77 - 27.58)
    assert "BSDS500-val" in jp.note
    assert (t5[t5.method != "JPEG"].note == "").all()        # the mislabel note is the JPEG row's only
    direct = t5[t5.method == se.OBJECTIVE_ROWS["direct"][0]].iloc[0]
    assert direct.paper_psnr == "28.99" and direct.diff_psnr == pytest.approx(28.30 - 28.99)
    with pytest.raises(ValueError):
        se.results_table("5", jpeg5, [{"qf": 10, "method": "L4 residual", "summary": None}])


def test_method_table_is_generic():
    printed = published.load(paper="svoboda", table="3", dataset="live1")
    ours = [{"qf": 20, "method": "mine", "paper_method": None, "network": "x", "summary": _ours(20, 31.0, 30.0, 0.88)}]
    table, cells = reproduce.method_table(printed, _jpeg([27.7698, 30.0720], [25.3325, 27.5657], [0.7905, 0.8683]),
                                          ours, [20], published_only=("AR-CNN",))
    assert list(table.method) == ["JPEG", "AR-CNN", "mine"]
    mine = table[table.method == "mine"].iloc[0]
    assert mine.psnr == 31.0 and mine.paper_psnr == "" and np.isnan(mine.diff_psnr)   # no printed counterpart
    assert set(cells.row) == {"JPEG"}


def test_compare_notes_only_printed_jpeg_cells():
    printed = published.load(paper="svoboda", table="5", dataset="live1")
    c = reproduce.compare(printed[printed.qf == 10], _ours(10, 29.0, 28.7, 0.82), prefix="restored_")
    assert (c[c.method == "JPEG"].note != "").all() and (c[c.method != "JPEG"].note == "").all()
    # the CAS-CNN crop explanation, too, is about the JPEG row (the only row whose inputs we can recompute)
    cas = published.load(paper="cascnn", table="II", dataset="live1", qf=60, metric="psnr")
    c = reproduce.compare(cas, pd.DataFrame({"qf": [60], "jpeg_psnr": [34.0]}))
    assert c[c.method == "JPEG"].note.str.contains("multiple of 32").all() and (c[c.method != "JPEG"].note == "").all()


# --- scoring helpers ------------------------------------------------------------------------------

def test_ipsnr_and_datasize_point(l4):
    imgs = _images()
    refs = {f"v{i}": im for i, im in enumerate(_images(seed=1))}
    rows = se.datasize_point(l4, imgs, refs, 20)
    assert [r["split"] for r in rows] == ["train (images it was trained on)", "validation"]
    assert all(r["n_images"] == 3 for r in rows)
    three = se.datasize_point(l4, imgs, refs, 20, common_imgs=imgs[:2])
    assert [r["split"] for r in three] == [se.TRAIN_SPLIT, se.COMMON_SPLIT.format(n=2), se.VAL_SPLIT]
    assert three[1]["n_images"] == 2 and three[0]["ipsnr"] == pytest.approx(rows[0]["ipsnr"])
    one = se.ipsnr_on(l4, refs, 20)
    assert one["ipsnr"] == pytest.approx(one["restored_psnr"] - one["jpeg_psnr"])
    assert rows[1]["ipsnr"] == pytest.approx(one["ipsnr"])


def test_qf_sweep_rows(l4):
    refs = {f"im{i}": im for i, im in enumerate(_images(2))}
    nets = [{"model": l4, "network": "a", "trained_qf": 10}, {"model": l4, "network": "b", "trained_qf": "10-60"}]
    crops = se.sweep_crops(nets, refs, [10, 30])
    assert len(crops) == 2 * 2 * 2 and set(crops.trained_qf) == {"10", "10-60"}
    sweep = se.sweep_table(crops)
    assert len(sweep) == 4 and list(sweep.qf) == [10, 30, 10, 30] and set(sweep.trained_qf) == {"10", "10-60"}
    assert (sweep.n_images == 2).all()
    # each row is the mean per-crop gain of that network at that QF
    a10 = crops[(crops.network == "a") & (crops.qf == 10)]
    assert sweep.ipsnr.iloc[0] == pytest.approx((a10.restored_psnr - a10.jpeg_psnr).mean())
    assert se.sweep_table(se.sweep_crops([], refs, [10])).empty


def test_speed_table_beside_the_paper(l4):
    torch.manual_seed(0)
    tab = se.speed_table({"L4": (l4, "l4"), "L8": (svoboda.L8().eval(), "l8")}, size=32, min_time_s=0.01)
    t = tab.set_index("arch")
    assert t.loc["L4", "paper_ms_per_mpixel"] == 220 and t.loc["L8", "paper_ms_per_mpixel"] == 1052
    assert t.loc["L4", "paper_flops_per_pixel"] == 140_000 and t.loc["L8", "paper_params"] == 220_000
    assert t.loc["L4", "flops_per_pixel_analytic"] == svoboda.counts("L4")["flops_per_pixel"] == 143_840
    assert t.loc["L8", "params_measured"] == t.loc["L8", "params_analytic"] == 220_545
    # the counted FLOPs include the mirror-padded border, so they exceed the valid network's count
    assert (t.flops_per_pixel_measured > t.flops_per_pixel_analytic).all()
    assert (t.ms_per_mpixel > 0).all()


def test_training_images_follow_the_manifest(data_root):
    from paperlib import data
    meta = zoo.info("l4-residual-q20-n4")
    imgs = se.training_images(meta, data_root)
    ref, _ = data.gray_images(list(svoboda.TRAIN_SETS), data_root, min_side=64)
    assert len(imgs) == 4 and all(np.array_equal(a, b) for a, b in zip(imgs, ref[:4]))
    assert len(se.training_images(zoo.info("l4-residual-q20"), data_root, limit=5)) == 5


# --- the notebook's computed readings ---------------------------------------------------------------------------
FIG = Path(__file__).resolve().parents[1] / "figures" / "svoboda"


def _rows(network, restored, jpeg, qf=20, dataset="live1", images=None):
    images = images or [f"im{i}" for i in range(len(restored))]
    return pd.DataFrame({"image": images, "qf": qf, "network": network, "dataset": dataset,
                         "restored_psnr": np.asarray(restored, float), "jpeg_psnr": np.asarray(jpeg, float)})


def test_paired_networks_constant_noisy_and_disjoint():
    j = 28.0 + np.arange(12.0)
    per = pd.concat([_rows("l8", j + 0.75, j), _rows("l4", j + 0.5, j), _rows("x", j + 0.5 + np.tile([1, -1], 6), j),
                     _rows("l4", j, j, dataset="bsds500-val")])
    assert se.paired_networks(per, "l8", "l4", "live1", 20) == {"difference": 0.25, "low": 0.25, "high": 0.25,
                                                               "n_images": 12}
    r = se.paired_networks(per, "x", "l4", "live1", 20)
    assert r["difference"] == pytest.approx(0.0, abs=1e-12) and r["low"] < 0 < r["high"]
    assert "within the image-to-image noise" in se.margin_text(r["difference"], r["low"], r["high"])
    assert se.paired_networks(per, "l8", "l4", "bsds500-val", 20)["n_images"] == 0      # no common images
    assert "beyond the image-to-image noise" in se.margin_text(0.25, 0.25, 0.25)


def test_l8_minus_l4_from_the_committed_tables():
    # the per-image rows and Table 3/4's means are written from the same evaluation by two paths: the mean
    # per-image difference must equal the difference of the table means
    per = pd.read_csv(FIG / "tables_per_image.csv")
    for stem, key in (("table3_live1", "live1"), ("table4_bsds500_val", "bsds500-val")):
        t = pd.read_csv(FIG / f"{stem}.csv")
        t20 = t[(t.qf == 20) & (t.source == "this run")].set_index("method")
        r = se.paired_networks(per, "l8-residual-q20", "l4-residual-q20", key, 20)
        assert r["difference"] == pytest.approx(t20.loc["L8 residual (ours)", "psnr"] - t20.loc["L4 residual (ours)", "psnr"],
                                                abs=1e-9)
        assert r["low"] <= r["difference"] <= r["high"] and r["n_images"] == int(t20.n_images.iloc[0])


def test_table5_reading_from_the_committed_tables():
    t5 = pd.read_csv(FIG / "table5_objectives_live1.csv", dtype={"paper_psnr": str}, keep_default_na=False,
                     na_values=[""])
    t5["paper_psnr"] = t5.paper_psnr.fillna("")
    per = pd.read_csv(FIG / "tables_per_image.csv")
    text = se.table5_reading(t5, per)
    # the paper's printed PSNR order (Table 5: residual 29.08 > direct 28.99 > Sobel 28.69)
    assert "The paper's order: L4 residual (29.08) > L4 direct mapping (28.99) > L4 edge preserving, Sobel (28.69)" in text
    have = t5[t5.source == "this run"].sort_values("psnr", ascending=False)
    assert text.count("95% interval") == len(have) - 1
    best = have.method.iloc[0].replace(" (ours)", "")
    assert f"PSNR order here: {best} (" in text and f"{best}: 1 here" in text
    one = t5[t5.method.isin(["JPEG", "L4 residual (ours)"])]
    assert "Fewer than two objectives" in se.table5_reading(one, per)


def test_fig5_reading_on_synthetic_crops():
    j = 25.0 + np.arange(10.0)
    rows = []
    # specific networks at QF 10 and 20 and the all-QF one: the QF10 network leads at QF 10 by a constant 0.5 dB;
    # at QF 20 the QF20 network and the QF10 one differ by +-1 dB noise around 0; the all-QF one is 0.25 dB behind
    for tq, q, gain in (("10", 10, j * 0 + 1.0), ("20", 10, j * 0 + 0.5), ("10", 20, 0.8 + np.tile([1.0, -1.0], 5)),
                        ("20", 20, j * 0 + 0.8), ("10-60", 10, j * 0 + 0.75), ("10-60", 20, j * 0 + 0.55)):
        rows.append(pd.DataFrame({"image": [f"c{i}" for i in range(10)], "qf": q, "network": f"l4-q{tq}",
                                  "trained_qf": tq, "jpeg_psnr": j, "restored_psnr": j + gain}))
    text = se.fig5_reading(pd.concat(rows))
    assert "at 1 of 2 such QFs, 1 of them beyond the crop-to-crop noise" in text
    assert "QF 10: +0.50 dB (95% interval +0.50 to +0.50, beyond the crop-to-crop noise) over the QF20 network" in text
    assert "QF 20: +0.00 dB" in text and "within the crop-to-crop noise) over the QF10 network" in text
    assert "QF 10: -0.25 dB (95% interval -0.25 to -0.25, beyond the crop-to-crop noise) vs the QF10 network" in text
    assert "ranges 0.55-0.75 dB over QF 10-20" in text


def test_size_reading_against_the_paper_text():
    text = se.size_reading()
    # Section 4 of the paper: "approximately 140 K and 440 K" FLOPs, "approx 70 K and 220 K" parameters; the
    # analytic counts from Tables 1-2 (svoboda.counts): L4 143,840 FLOPs, 72,097 parameters; L8 440,128 / 220,545
    assert f"{143840 / 140000 - 1:+.1%} from the paper's 140 K" in text
    assert f"{72097 / 70000 - 1:+.1%} from the paper's 70 K, {72097 / 20000 - 1:+.0%} from the Conclusions' 20 K" in text
    assert f"{220545 / 220000 - 1:+.1%} from the paper's 220 K" in text
    assert f"{567104 / 440000 - 1:+.1%} from the paper's 440 K" in text     # the other reading of L8's skips
