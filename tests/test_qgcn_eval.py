"""paperlib.qgcn_eval: the QGCN notebook's evaluation helpers (tiny networks, synthetic images and summaries)."""
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


def test_ordering_and_beats_jpeg():
    o = qe.ordering({"QGCN": {"psnr": 27.8, "ssim": 0.81}, "QCN": {"psnr": 27.9, "ssim": 0.80},
                     "JPEG": {"psnr": 25.6, "ssim": None}}, metrics=("psnr", "ssim"))
    got = {(r.pair, r.metric): r.holds for r in o.itertuples()}
    assert got == {("QGCN > QCN", "psnr"): False, ("QGCN > QCN", "ssim"): True,
                   ("QCN > JPEG", "psnr"): True, ("QCN > JPEG", "ssim"): None}
    b = qe.beats_jpeg(pd.DataFrame({"qf": [10, 20, 30], "ipsnr": [1.2, 0.1, -0.05]}), qfs=(10, 20, 30, 40))
    assert list(b.improves) == [True, True, False, None]


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
