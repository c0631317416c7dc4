"""paperlib.svoboda_eval, reproduce.method_table, svoboda.filter_mosaic and zoo.filters (tiny networks, no training)."""
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
    sweep = se.qf_sweep([{"model": l4, "network": "a", "trained_qf": 10},
                         {"model": l4, "network": "b", "trained_qf": "10-60"}], refs, [10, 30])
    assert len(sweep) == 4 and list(sweep.qf) == [10, 30, 10, 30] and set(sweep.trained_qf) == {"10", "10-60"}
    assert (sweep.n_images == 2).all()
    assert se.qf_sweep([], refs, [10]).empty


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
