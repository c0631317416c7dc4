"""paperlib.qgcn_eval: the QGCN notebook's evaluation helpers (tiny networks, synthetic images and summaries)."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from paperlib import protocols, published
from paperlib import qgcn_eval as qe
from paperlib.models.qgcn import QCN, QGCN, EDSR
from synthetic import smooth_images


def _images(shapes=((40, 48), (40, 48), (33, 50)), color=True, seed=0):
    return smooth_images(shapes, color, seed)


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    # larger init than the paper's 0.01 so the networks change the image measurably
    return {"qgcn": QGCN(3, n_res=1, init_std=0.05).eval(), "qcn": QCN(3, n_res=1, init_std=0.05).eval(),
            "edsr": EDSR(3, n_res=1, init_std=0.05).eval(), "gray": QGCN(1, n_res=1, init_std=0.05).eval()}


def test_downscaled_sizes_and_area():
    ref = np.random.default_rng(0).integers(0, 256, (505, 768, 3), dtype=np.uint8)
    c = qe.downscaled(ref)
    assert sorted(c) == [1, 2, 3, 4]
    assert c[1].shape == ref.shape and np.array_equal(c[1], ref) and c[1] is not ref
    assert c[2].shape == (252, 384, 3) and c[3].shape == (168, 256, 3) and c[4].shape == (126, 192, 3)
    for s, im in c.items():
        assert im.dtype == np.uint8
        assert abs(im.shape[0] * im.shape[1] / (ref.shape[0] * ref.shape[1]) - 1 / s ** 2) < 0.01
    assert qe.downscaled(ref[..., 0], (2,))[2].shape == (252, 384)
    with pytest.raises(ValueError):
        qe.downscaled(ref, (1.5,))


def test_largest_picks_by_area(tmp_path):
    for name, (w, h) in {"a": (10, 10), "b": (30, 20), "c": (20, 30), "d": (8, 8)}.items():
        Image.new("RGB", (w, h)).save(tmp_path / f"{name}.png")
    got = qe.largest(sorted(tmp_path.glob("*.png")), 3)
    assert [p.stem for p in got] == ["b", "c", "a"]


def test_scale_sweep_rows(nets):
    refs = {"x": _images(shapes=((64, 96),))[0]}
    df = qe.scale_sweep(refs, {"QGCN": nets["qgcn"], "QCN": nets["qcn"]}, qfs=[10, 30], scales=(1, 2))
    assert len(df) == 2 * 2 * 2
    assert set(df[df.scale == 2].height) == {32} and set(df[df.scale == 2].width) == {48}
    np.testing.assert_allclose(df.ipsnr, df.restored_psnr - df.jpeg_psnr)


def _summary(qfs, base, n):
    return pd.DataFrame({"qf": list(qfs), "n_images": n, "bpp": 1.0,
                         **{f"jpeg_{m}": [base[m] + 0.0 * q for q in qfs] for m in base}})


def test_results_table_against_a_synthetic_summary():
    pr = qe.printed("II", "LIVE1")
    pj = pr[pr.method == "JPEG"]
    # JPEG summary equal to the printed JPEG row at QF10 and 20
    jpeg = pd.DataFrame([{"qf": q, "n_images": 29, "bpp": 1.0,
                          **{f"jpeg_{m}": float(pj[(pj.qf == q) & (pj.metric == m)].value.iloc[0]) for m in qe.METRICS}}
                         for q in (10, 20)])
    qgcn10 = pd.DataFrame([{"qf": 10, "n_images": 29, "restored_psnr": 27.70, "restored_ssim": 0.8000,
                            "restored_psnrb": 26.9}])
    same = qe.same_images_jpeg(jpeg[jpeg.qf == 10])
    ours = [{"qf": 10, "method": "JPEG (same images)", "paper_method": None, "network": "none", "summary": same},
            {"qf": 10, "method": "QGCN (ours)", "paper_method": "QGCN", "network": "qgcn-color", "summary": qgcn10,
             "budget": "cpu", "steps": 3000},
            {"qf": 20, "method": "QGCN (ours)", "paper_method": "QGCN", "network": "qgcn-color", "summary": None,
             "note": "not evaluated"}]
    t, cells = qe.results_table("II", "LIVE1", jpeg, ours, qfs=(10, 20))
    assert list(t[t.qf == 10].method) == ["JPEG", "AR-CNN", "JPEG (same images)", "QGCN (ours)"]
    assert (t.dataset == "LIVE1").all()
    j10 = t[(t.qf == 10) & (t.method == "JPEG")].iloc[0]
    assert j10.paper_psnr == "25.60" and j10.diff_psnr == 0.0
    q10 = t[(t.qf == 10) & (t.method == "QGCN (ours)")].iloc[0]
    assert q10.paper_psnr == "27.84" and q10.diff_psnr == pytest.approx(-0.14) and q10.diff_ssim == pytest.approx(-0.0182)
    assert q10.source == "this run" and q10.budget == "cpu" and q10.steps == "3000"
    arcnn = t[(t.qf == 10) & (t.method == "AR-CNN")].iloc[0]
    assert arcnn.source.startswith("paper only") and "transcribed" in arcnn.source and arcnn.psnr != arcnn.psnr
    miss = t[(t.qf == 20) & (t.method == "QGCN (ours)")].iloc[0]
    assert miss.source == "missing" and miss.note == "not evaluated" and miss.paper_psnr == "30.16"
    assert set(cells.eval_set) == {"LIVE1"} and set(cells.row) >= {"QGCN (ours)"}
    # gain over JPEG: ours vs the same-images JPEG row, the paper's vs its printed JPEG row
    ip = qe.ipsnr_table(t, pr, "JPEG (same images)")
    assert list(ip.method) == ["QGCN (ours)"]
    assert ip.ipsnr_ours.iloc[0] == pytest.approx(27.70 - 25.60)
    assert ip.ipsnr_paper.iloc[0] == pytest.approx(27.84 - 25.60)
    assert ip.ipsnr_gap.iloc[0] == pytest.approx(-0.14)


def test_same_images_jpeg_renames_and_averages():
    per = pd.DataFrame({"image": ["a", "b", "a"], "qf": [10, 10, 20], "bpp": 1.0, "jpeg_psnr": [20.0, 22.0, 30.0],
                        "jpeg_ssim": 0.5, "jpeg_psnrb": 19.0, "restored_psnr": 99.0, "restored_ssim": 1.0,
                        "restored_psnrb": 99.0})
    s = qe.same_images_jpeg(per)
    assert list(s.qf) == [10, 20] and list(s.n_images) == [2, 1]
    assert list(s.restored_psnr) == [21.0, 30.0] and not any(c.startswith("jpeg_") for c in s.columns)


def _per(method, qf, restored, jpeg, images=None):
    """Per-image rows of one network: PSNR, SSIM and PSNR-B all equal to ``restored`` (JPEG: ``jpeg``)."""
    images = images or [f"im{i}" for i in range(len(restored))]
    r, j = np.asarray(restored, float), np.asarray(jpeg, float)
    return pd.DataFrame({"image": images, "qf": qf, "method": method, **{f"restored_{m}": r for m in qe.METRICS},
                         **{f"jpeg_{m}": j for m in qe.METRICS}})


def test_paired_ordering_margins_and_noise():
    jpeg = 25.0 + np.arange(20.0)
    per = pd.concat([_per("QGCN", 10, jpeg + 1.25 + np.tile([0.5, -0.5], 10), jpeg),  # = QCN on average, noisy
                     _per("QCN", 10, jpeg + 1.25, jpeg),                                 # a constant 1.25 dB gain
                     _per("EDSR", 20, jpeg, jpeg)])                                      # scored at another QF only
    o = qe.paired_ordering(per, ["QGCN", "QCN", "JPEG (same images)"], qf=10, metrics=("psnr",)).set_index("pair")
    a = o.loc["QGCN > QCN"]
    assert a.difference == pytest.approx(0.0, abs=1e-12) and a.low < 0 < a.high and not a.beyond_noise
    b = o.loc["QCN > JPEG (same images)"]   # JPEG = the JPEG scores of QCN's images: a zero-width interval
    assert (b.a, b.b, b.difference, b.low, b.high) == (pytest.approx(jpeg.mean() + 1.25), pytest.approx(jpeg.mean()),
                                                      1.25, 1.25, 1.25)
    assert b.holds and b.beyond_noise and b.n_images == 20
    # a network without rows at this QF: not known, never False
    m = qe.paired_ordering(per, ["QCN", "EDSR"], qf=10, metrics=("psnr",)).iloc[0]
    assert m.holds is None and m.beyond_noise is None and m.n_images == 0
    assert "not decided" in qe.ordering_verdict(qe.paired_ordering(per, ["QCN", "EDSR"], qf=10), "x")
    # pairs are compared on the images both were scored on
    part = pd.concat([_per("A", 10, [30.0, 31.0, 32.0], [29.0] * 3, ["x", "y", "z"]),
                      _per("B", 10, [29.0, 31.0], [29.0] * 2, ["x", "y"])])
    p = qe.paired_ordering(part, ["A", "B"], qf=10, metrics=("psnr",)).iloc[0]
    assert p.n_images == 2 and p.difference == 0.5 and p.a == 30.5


def test_ordering_verdict_text():
    jpeg = 25.0 + np.arange(10.0)
    per = pd.concat([_per("QGCN", 10, jpeg + 1.5, jpeg), _per("QCN", 10, jpeg + 1.0 + np.tile([1.0, -1.0], 5), jpeg)])
    text = qe.ordering_verdict(qe.paired_ordering(per, ["QGCN", "QCN", "JPEG (same images)"], qf=10), "colour")
    assert text.startswith("**colour: yes**, 6 of 6 comparisons in the stated order")
    assert "PSNR +0.5000 dB (95% interval" in text and "within the noise" in text
    assert "QCN > JPEG (same images): PSNR +1.0000 dB" in text
    rev = qe.ordering_verdict(qe.paired_ordering(per, ["QCN", "QGCN"], qf=10, metrics=("psnr",)), "colour")
    assert rev.startswith("**colour: no**, 0 of 1 comparisons in the stated order, 0 of them beyond")


def test_ipsnr_intervals_and_best_by_qf():
    jpeg = 25.0 + np.arange(10.0)
    per = pd.concat([_per("QGCN", 10, jpeg + 1.0, jpeg), _per("QGCN", 20, jpeg - 0.25, jpeg),
                     _per("QCN", 10, jpeg + 0.75, jpeg), _per("QCN", 20, jpeg + np.tile([1.0, -1.0], 5), jpeg)])
    g = qe.ipsnr_intervals(per[per.method == "QGCN"], qfs=(10, 20, 30)).set_index("qf")
    assert list(g.ipsnr[:2]) == [1.0, -0.25] and list(g.improves) == [True, False, None]
    assert list(g.beyond_noise) == [True, True, None] and g.loc[30, "n_images"] == 0
    line = qe.vs_jpeg_line(g.reset_index(), "LIVE1")
    assert "improves at 1 of 2 QFs evaluated, 1 of them beyond" in line and "QF10 +1.00 dB [+1.00, +1.00]" in line
    assert "worse than JPEG beyond the noise at 1" in line and "1 QF(s) not evaluated" in line
    b = qe.best_by_qf(per, ["QGCN", "QCN"], qfs=(10, 20)).set_index("qf")
    assert b.loc[10, "best"] == "QGCN" and b.loc[10, "runner_up"] == "QCN" and b.loc[10, "lead"] == 0.25
    assert b.loc[10, "beyond_noise"] and b.loc[20, "best"] == "QCN" and b.loc[20, "ipsnr_best"] == 0.0
    assert not b.loc[20, "beyond_noise"] and b.loc[20, "low"] < 0 < b.loc[20, "high"]
    assert "QF10 QGCN (+1.00 dB; lead over QCN: +0.2500 dB" in qe.best_line(b.reset_index(), "LIVE1")


def test_paired_ordering_agrees_with_the_committed_table():
    # table2_per_image.csv and ordering.csv are written by the notebook from the same evaluation; the means of the
    # per-image rows must give ordering.csv's a, b and difference (computed there from Table II's summaries)
    fig = Path(__file__).resolve().parents[1] / "figures" / "qgcn"
    per = pd.read_csv(fig / "table2_per_image.csv")
    order = pd.read_csv(fig / "ordering.csv")
    order = order[order.kind == "colour (Table II)"].set_index(["pair", "metric"])
    qf = int(order.qf.iloc[0])
    o = qe.paired_ordering(per[per.dataset == "LIVE1"], ["QGCN (ours)", "QCN (ours)", "EDSR (ours)",
                                                          "JPEG (same images)"], qf)
    for r in o.itertuples():
        ref = order.loc[(r.pair, r.metric)]
        assert (r.a, r.b, r.difference) == (pytest.approx(ref.a, abs=1e-9), pytest.approx(ref.b, abs=1e-9),
                                            pytest.approx(ref.difference, abs=1e-9))
        assert r.holds == bool(ref.holds) and r.low <= r.difference <= r.high


def test_params_reading_from_the_models():
    from paperlib.models.qgcn import QGCNNet
    name, count = qe.largest_layer(QGCNNet("qgcn", 3, 8).global_branch)
    assert (name, count) == ("fc1", 256 * 7 * 7 * 1024 + 1024)    # Table I: fc 256x7x7 -> 1024, with bias
    params = pd.read_csv(Path(__file__).resolve().parents[1] / "figures" / "qgcn" / "params.csv")
    text = qe.params_reading(params, (name, count))
    assert "`fc1`, holds 12.85 M parameters" in text
    c = params[params.images == "colour"].set_index(["n_res", "network"]).params
    assert f"QGCN / QCN = {c[(32, 'QGCN')] / c[(32, 'QCN')]:.1f}" in text


def test_nres_stability_and_val_curves():
    log = pd.DataFrame({"step": [1, 250, 500], "crop": [64, 64, 256], "val_psnr": [np.nan, 30.0, 30.5],
                        "val_ipsnr": [np.nan, 0.5, 0.7], "val_ipsnr_q10": [np.nan, 0.8, 0.9],
                        "val_ipsnr_q20": [np.nan, 0.6, 0.65]})
    s = qe.nres_stability({8: log, 16: log.drop(columns=["val_ipsnr_q20"])}, qfs=(10, 20))
    assert list(zip(s.n_res, s.qf, s.val_ipsnr, s.step)) == [(8, 10, 0.9, 500), (8, 20, 0.65, 500),
                                                              (16, 10, 0.9, 500)]
    c = qe.val_curves({"A": log})
    assert list(c.step) == [250, 500] and list(c.crop) == [64, 256] and set(c.run) == {"A"}


def test_printed_rows_and_constants_agree_with_the_paper():
    assert set(qe.printed("III", "BSDS500 test").method) == {"JPEG", "QGCN", "CAS-CNN", *qe.PUBLISHED_ONLY["III"]}
    assert set(qe.printed("II", "LIVE1").method) == {"JPEG", "QGCN", "QCN", "EDSR", *qe.PUBLISHED_ONLY["II"]}
    assert {p for _, p in qe.COLOR_NETS.values()} <= set(published.load(paper="qgcn", table="II").method)
    assert set(qe.TABLES["II"].values()) | set(qe.TABLES["III"].values()) <= set(
        ["live1", "live1-color", "bsds500-test", "bsds500-test-color"])
    assert protocols.get("color-qgcn").color and not protocols.get("gray").color


def test_evaluate_plan_and_ours_row(nets, tmp_path):
    imgs = _images()
    paths = []
    for i, im in enumerate(imgs):
        paths.append(tmp_path / f"im{i}.png")
        Image.fromarray(im).save(paths[-1])
    df, kept = qe.evaluate_plan(nets["qgcn"], {10: paths, 30: paths[:1]}, "color-qgcn", keep={"im0"})
    assert list(df.groupby("qf").size()) == [3, 1] and set(kept) == {("im0", 10), ("im0", 30)}
    r = qe.ours_row(30, "QGCN (ours)", "QGCN", {"network": "n", "budget": "smoke", "steps": 4}, df)
    assert int(r["summary"].n_images.iloc[0]) == 1 and r["budget"] == "smoke" and r["note"] == ""
    miss = qe.ours_row(20, "QGCN (ours)", "QGCN", {"network": "n", "note": "no checkpoint"}, df)
    assert miss["summary"] is None and miss["note"] == "no checkpoint"
    with pytest.raises(ValueError):
        qe.evaluate_plan(nets["qgcn"], {10: []}, "color-qgcn")


def test_net_provenance_of_committed_and_log_only_entries():
    log_only = qe.net_provenance("qgcn-color-r16")
    assert log_only["weights"] == "log only" and log_only["n_res"] == 16 and log_only["steps"] == 3000
    full = qe.net_provenance("qgcn-color")
    assert full["weights"] == "committed" and full["n_res"] == 8 and full["budget"] == "cpu"
    assert "bsds500:train" in full["train_data"] and "live1" not in full["train_data"]


def test_describe_nets_groups_by_provenance():
    e = [{"network": "a", "budget": "cpu", "n_res": 8, "steps": 3000, "device": "cuda (H200)"},
         {"network": "b", "budget": "cpu", "n_res": 8, "steps": 3000, "device": "cuda (H200)"},
         {"network": "c", "budget": "cpu", "n_res": None, "steps": 4000, "device": "cpu"}]
    assert qe.describe_nets(e) == ("a, b: budget cpu, n_res 8, 3000 steps, trained on cuda (H200); "
                                   "c: budget cpu, 4000 steps, trained on cpu")
    assert qe.describe_nets([]) == "none"


def test_custom_tables_are_not_ijg_and_reach_the_file():
    from paperlib import jpeg
    t = qe.custom_tables()
    assert t.shape == (2, 8, 8) and t.min() >= 1 and t.max() <= 255
    assert jpeg.estimate_qf(t[0]) is None and jpeg.estimate_qf(t[1], "chroma") is None   # no IJG quality gives them
    assert np.array_equal(t[:, 0, 0], jpeg.ijg_tables(qe.CUSTOM_BASE_QF, True)[:, 0, 0])  # DC as IJG's QF 20
    ref = _images()[0]
    blob = qe.custom_jpeg(ref, t)
    assert all(np.array_equal(jpeg.quant_tables(blob)[k], t[k]) for k in (0, 1))       # Pillow's own report
    q = qe.nearest_ijg_qf(t)
    assert all(np.abs(jpeg.ijg_tables(q, True) - t).sum() <= np.abs(jpeg.ijg_tables(o, True) - t).sum()
               for o in (q - 1, q + 1))


def test_the_continued_gray_row_is_qgcn_gray_trained_on_with_its_recipe():
    from paperlib import zoo
    name, paper = qe.GRAY_NETS["QGCN (ours, cpu budget continued)"]
    assert paper == qe.GRAY_NETS["QGCN (ours)"][1] == "QGCN"
    base = zoo.info("qgcn-gray")   # raises for a network that is not committed
    assert base["init_from"] is None
    same = ("n_res", "crop", "batch", "hard_crop", "hard_batch", "lr", "lr_milestones", "steps", "hard_start")
    chain = zoo.lineage(name)   # init_from followed back: every link the same recipe on the same data
    for link in chain[:-1]:
        info = zoo.info(link)
        assert {k: info["budget_config"][k] for k in same} == {k: base["budget_config"][k] for k in same}
        assert info["qf"] == base["qf"] and info["data"]["sources"] == base["data"]["sources"]
    assert chain == ["qgcn-gray-cont4", "qgcn-gray-cont3", "qgcn-gray-cont2", "qgcn-gray-cont", "qgcn-gray"]
