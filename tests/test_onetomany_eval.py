"""paperlib.onetomany_eval: names, Table 2 and Figs. 5/6 beside the printed numbers, the measurements (no training)."""
import json
import re
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn

from paperlib import data, evaluation, jpeg, protocols, weights
from paperlib import onetomany_eval as oe
from paperlib.models.onetomany import Losses, ProposalNet, shift_and_average

ROOT = Path(__file__).resolve().parents[1]


def _images(n=3, h=64, w=64, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:h, :w]
    return {f"im{i}": np.clip(128 + 60 * np.sin(x / (3.0 + i)) * np.cos(y / 5.0) + rng.normal(0, 8, (h, w)), 0, 255)
            .astype(np.uint8) for i in range(n)}


@pytest.fixture(scope="module")
def tiny():
    """A tiny stochastic F(Y; Z) whose correction is not zero (a trained network's would not be)."""
    torch.manual_seed(0)
    g = ProposalNet(1, width=8, branch_units=1, aggregation_units=1).eval()
    nn.init.normal_(g.last.weight, 0, 0.2)
    return g


# ---- names, the Makefile, the ablations ------------------------------------------------------------------

def test_network_names():
    assert oe.network_name("baseline", 10) == "onetomany-baseline-gray-q10"
    assert oe.network_name("onetomany", 5) == oe.network_name("onetomany", 5, ablation="full") == "onetomany-gray-q5"
    assert oe.network_name("onetomany", 5, color=True) == "onetomany-color-q5"
    assert oe.network_name("onetomany", 5, ablation="8b") == "onetomany-gray-q5-percept"
    with pytest.raises(ValueError):
        oe.network_name("onetomany", 5, ablation="8d")


def test_ablations_follow_the_paper():
    # Sec. 3.4: lambda_1 = lambda_2 = 0.1 in the full model; Sec. 4.4: 8b is L_percept alone, 8c adds L_natural,
    # 8a differs from 8b only by the up-sampling (no shift-and-average)
    full, a, b, c = (oe.ABLATIONS[k] for k in ("full", "8a", "8b", "8c"))
    assert (full[2].natural, full[2].jpeg, full[3]) == (0.1, 0.1, True)
    assert (b[2].natural, b[2].jpeg, b[3]) == (0.0, 0.0, True)
    assert (c[2].natural, c[2].jpeg, c[3]) == (0.1, 0.0, True)
    assert a[2] == b[2] and a[3] is False
    assert all(v[2].percept_layer == "relu5_4" and v[2].diversity == 0 for v in oe.ABLATIONS.values())


def test_makefile_trains_the_networks_the_notebook_loads():
    text = (ROOT / "Makefile").read_text()
    block = re.search(r"^ONETOMANY_RUNS = \\\n((?:.*\\\n)*.*\n)", text, re.M).group(1)
    # the Baselines: a foreach over QFs; every other run is one NAME:ARGS word
    fe = re.search(r"\$\(foreach q,([\d ]+),onetomany-baseline-gray-q\$\(q\):([^)]*\$\(q\))\)", block)
    runs = {f"onetomany-baseline-gray-q{q}": fe.group(2).replace("$(q)", q).split(",") for q in fe.group(1).split()}
    for tok in block.replace(fe.group(0), " ").replace("\\\n", " ").split():
        name, _, args = tok.partition(":")
        runs[name] = args.split(",")
    want = {oe.network_name("baseline", q) for q in oe.TABLE_QFS}
    want |= {oe.network_name("onetomany", oe.FIG_QF, color=True)}
    want |= {oe.network_name("onetomany", oe.FIG_QF, ablation=k) for k in oe.ABLATIONS}
    assert set(runs) == want
    for k, (_, _, losses, shift) in oe.ABLATIONS.items():
        args = runs[oe.network_name("onetomany", oe.FIG_QF, ablation=k)]
        flag = lambda f, default: float(args[args.index(f) + 1]) if f in args else default  # noqa: E731
        assert "--gray" in args and args[args.index("--qf") + 1] == str(oe.FIG_QF)
        assert flag("--natural", Losses().natural) == losses.natural and flag("--jpeg", Losses().jpeg) == losses.jpeg
        assert ("--no-shift-average" in args) == (not shift)
    assert "onetomany-checkpoints:" in text and "--publish $$name" in text


def test_objective_and_provenance(tmp_path):
    assert oe.objective("baseline", {"l2": 1.0}) == "per-pixel L2 (no Z)"
    assert oe.objective("onetomany", asdict(Losses())) == "L_percept + 0.1 L_natural + 0.1 L_jpeg at relu5_4"
    assert oe.objective("onetomany", asdict(Losses(natural=0, jpeg=0)), False) == \
        "L_percept at relu5_4; no shift-and-average"
    assert "beyond the paper" in oe.objective("onetomany", asdict(Losses(diversity=0.5)))
    label = "vgg19-random (stand-in: random He-normal weights; NOT pretrained)"
    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text(json.dumps({
        "kind": "onetomany", "budget": "smoke", "steps_done": 4, "wall_time_s": 3.5, "device": "cpu",
        "losses": asdict(Losses(jpeg=0)), "perceptual_features": label,
        "model": {"kwargs": {"channels": 1, "noise": True, "shift_average": True}},
        "data": {"sources": ["bsds500:train"], "n_images": 4}}))
    p = oe.run_provenance(run)
    assert p["kind"] == "onetomany" and p["objective"] == "L_percept + 0.1 L_natural at relu5_4"
    assert p["perceptual_features"] == label and p["budget"] == "smoke" and p["steps"] == 4
    phrase = oe.features_phrase([{**p, "network": "a"}, {"kind": "baseline", "network": "b"}])
    assert "NOT pretrained" in phrase and "(a)" in phrase and "b" not in phrase.split("(")[-1]
    assert oe.features_phrase([{"kind": "baseline", "network": "b"}]) == ""


# ---- Table 2 and the figures' printed PSNRs ----------------------------------------------------------------

def _summary(prefix, qfs, psnr, ssim, psnrb, n=200):
    return pd.DataFrame({"qf": list(qfs), "n_images": [n] * len(qfs), f"{prefix}psnr": psnr, f"{prefix}ssim": ssim,
                         f"{prefix}psnrb": psnrb})


def test_table2_lines_up_the_printed_cells():
    jpeg_full = _summary("jpeg_", oe.TABLE_QFS, [25.3612, 27.8049, 30.0489], [0.67641, 0.78749, 0.86714],
                         [22.9077, 25.1012, 27.2151])
    net = {"network": "onetomany-baseline-gray-q5", "budget": "cpu", "steps": 3000, "train_data": "x"}
    same = oe.same_images_jpeg(pd.DataFrame({"qf": [5, 5], "jpeg_psnr": [25.0, 25.2], "jpeg_ssim": [0.65, 0.67],
                                             "jpeg_psnrb": [22.7, 22.9]}))
    rows = [{"qf": 5, "method": oe.JPEG_SAME, "paper_method": None, "network": "none (JPEG decode)", "summary": same,
             "note": "the images our rows are scored on"},
            oe.ours_row(5, oe.BASELINE, "Baseline", net,
                        pd.DataFrame({"qf": [5], "restored_psnr": [27.004], "restored_ssim": [0.74],
                                      "restored_psnrb": [26.9]})),
            oe.ours_row(5, oe.ONETOMANY, None, {"network": "onetomany-gray-q5"},
                        pd.DataFrame({"qf": [5], "restored_psnr": [24.5], "restored_ssim": [0.6],
                                      "restored_psnrb": [24.0]})),
            oe.ours_row(10, oe.BASELINE, "Baseline", {"network": "onetomany-baseline-gray-q10",
                                                       "note": "no committed checkpoint"}, None)]
    table, cells = oe.results_table(jpeg_full, rows)
    assert list(table[table.qf == 5].method) == ["JPEG", "ARCNN", "TNRD", "DDCN", oe.JPEG_SAME, oe.BASELINE,
                                                 oe.ONETOMANY]
    jp = table[(table.method == "JPEG")].set_index("qf")
    assert list(jp.paper_psnr) == ["25.36", "27.80", "30.05"] and (jp.diff_psnr == 0).all()   # printed JPEG row
    assert list(jp.paper_psnrb) == ["22.91", "25.10", "27.22"] and (jp.diff_ssim == 0).all()
    b5 = table[(table.qf == 5) & (table.method == oe.BASELINE)].iloc[0]
    assert b5.paper_psnr == "27.12" and b5.diff_psnr == pytest.approx(27.00 - 27.12)
    assert b5.paper_ssim == "0.7406" and b5.diff_ssim == pytest.approx(0.74 - 0.7406)
    o5 = table[(table.qf == 5) & (table.method == oe.ONETOMANY)].iloc[0]
    assert o5.paper_psnr == "" and np.isnan(o5.diff_psnr) and o5.source == "this run"   # Table 2 prints none
    b10 = table[(table.qf == 10) & (table.method == oe.BASELINE)].iloc[0]
    assert b10.source == "missing" and b10.note == "no committed checkpoint" and b10.paper_psnr == "29.56"
    ddcn = table[(table.qf == 20) & (table.method == "DDCN")].iloc[0]
    assert "transcribed" in ddcn.source and ddcn.paper_psnrb == "31.10" and np.isnan(ddcn.psnr)
    assert set(table.dataset) == {oe.EVAL_SET} and set(cells.row) == {"JPEG", oe.BASELINE}
    with pytest.raises(ValueError):
        oe.results_table(jpeg_full, [{**rows[1], "paper_method": "DDCN"}])
    cost = oe.onetomany_cost(table).set_index("metric")
    assert list(cost.qf) == [5, 5, 5]
    assert cost.loc["psnr", "minus_baseline"] == pytest.approx(24.5 - 27.004)
    assert cost.loc["psnr", "minus_jpeg"] == pytest.approx(24.5 - 25.1)
    assert cost.loc["ssim", "minus_baseline"] == pytest.approx(0.6 - 0.74)


def test_paper_figure_gaps_from_the_printed_psnrs():
    g = oe.paper_figure_gaps().set_index(["image", "candidate"])
    assert len(g) == 6   # Fig. 5: one candidate per image; Fig. 6: two
    assert g.loc[("6046", "One-to-Many"), "minus_jpeg"] == pytest.approx(23.59 - 24.09)
    assert g.loc[("344010", "One-to-Many"), "minus_baseline"] == pytest.approx(23.57 - 25.38)
    assert g.loc[("coastguard", "One-to-Many (2)"), "minus_baseline"] == pytest.approx(25.32 - 26.77)
    assert (g.minus_jpeg < 0).all() and (g.minus_baseline < 0).all()   # the paper: worse than JPEG on PSNR


def test_figure_images_exist_and_their_jpeg_psnrs_reproduce(data_root):
    gray = protocols.get("gray")
    for fig, (name, split), stems in (("fig5", ("bsds500", "test"), oe.FIG5_IMAGES),
                                      ("fig6", ("set14", None), oe.FIG6_IMAGES)):
        paths = {p.stem: p for p in data.image_paths(name, split, data_root=data_root)}
        assert set(stems) <= set(paths)
        refs = oe.references([paths[s] for s in stems])
        dec = oe.compress(refs, oe.FIG_QF)
        ours = {(n, "JPEG"): row.jpeg_psnr for n, row in oe.scores(refs, dec, oe.FIG_QF).set_index("image").iterrows()}
        t = oe.figure_psnr(ours, fig)
        jp = t[t.method == "JPEG"]
        assert len(jp) == 2 and (jp["diff"] == 0).all() and jp.match.all()     # the printed JPEG PSNRs, exactly
        assert t[t.method != "JPEG"].psnr.isna().all() and t[t.method != "JPEG"].match.isna().all()
        # the gray protocol's codec is the one the crops were scored with
        assert all(np.array_equal(dec[s], gray.compress(refs[s], oe.FIG_QF)[0]) for s in stems)
    other = oe.figure_psnr({("6046", "JPEG"): 26.0}, "fig5", qf=10)
    assert other["diff"].isna().all() and other.paper_qf.eq(5).all()         # no diff at another QF
    crops = oe.figure_psnr({("6046", "JPEG"): 24.09}, "fig5", whole_images=False)
    assert crops["diff"].isna().all() and crops.match.isna().all()          # nor on crops


# ---- restoring, scoring and measuring -------------------------------------------------------------------------

def test_restore_scores_and_seeds(tiny):
    refs = _images(2)
    dec = oe.compress(refs, 10)
    out = oe.restore(tiny, dec, 10, seed=3, samples=2)
    assert all(o.shape == (2, 64, 64) and o.dtype == np.uint8 for o in out.values())
    again = oe.restore(tiny, dec, 10, seed=3, samples=2)
    assert all(np.array_equal(out[n], again[n]) for n in refs)                 # same seed, same samples
    assert oe.z_effect(out["im0"]) > 0                                           # two draws of Z differ
    s = oe.scores(refs, dec, 10, out)
    ref_scores = evaluation.evaluate_arrays(refs, [10])                          # the project's scoring path
    for m in ("psnr", "ssim", "psnrb"):
        assert np.allclose(s[f"jpeg_{m}"], ref_scores[f"jpeg_{m}"])
    one = oe.scores(refs, dec, 10, {n: o[0] for n, o in out.items()})
    assert np.allclose(one.restored_psnr, s.restored_psnr)                      # a stack is scored by its first sample
    ident = oe.scores(refs, dec, 10, dec)
    assert np.allclose(ident.restored_psnr, ident.jpeg_psnr)


def test_color_protocol_is_the_training_codec():
    rng = np.random.default_rng(0)
    img = np.clip(rng.normal(128, 40, (32, 48, 3)), 0, 255).astype(np.uint8)
    # paperlib.patches codes training crops with jpeg.roundtrip(..., codec="pillow"), 4:2:0
    assert np.array_equal(oe.COLOR_PROTOCOL.compress(img, 5)[0], jpeg.roundtrip(img, 5, codec="pillow")[0])
    assert oe.COLOR_PROTOCOL.color and oe.COLOR_PROTOCOL.subsampling == "4:2:0"


def test_nyquist_share_analytic():
    y, x = np.mgrid[:64, :64]
    checker = 100.0 * (-1.0) ** (x + y)
    assert oe.nyquist_share(checker) > 0.99
    assert oe.nyquist_share(np.repeat(checker[..., None], 3, axis=2)) > 0.99
    stripes = 50.0 * (-1.0) ** x + 3.0                                          # period 2 along one axis only
    assert oe.nyquist_share(stripes) > 0.99
    smooth = 100 * np.sin(2 * np.pi * 4 * x / 64) * np.cos(2 * np.pi * 3 * y / 64)
    assert oe.nyquist_share(smooth) < 1e-3
    # white noise: the band's share of the frequency plane, 4b - 4b^2 (= 0.234 for b = 1/16); the estimate
    # averages ~3,800 periodogram bins of relative std 1 each, so its relative std is ~2%: 0.02 absolute is ~4 sigma
    noise = np.random.default_rng(0).normal(0, 1, (128, 128))
    b = oe.NYQUIST_BAND
    assert oe.nyquist_share(noise) == pytest.approx(4 * b - 4 * b * b, abs=0.02)
    assert np.isnan(oe.nyquist_share(np.full((16, 16), 7.0)))
    with pytest.raises(ValueError):
        oe.nyquist_share(np.zeros(5))
    # the paper's Sec. 3.2.2 argument: a stride-2 deconvolution of a constant map alternates (grid-like)
    torch.manual_seed(0)
    up = nn.ConvTranspose2d(1, 1, 4, stride=2, padding=1, bias=False)
    with torch.no_grad():
        raw = up(torch.full((1, 1, 34, 34), 0.7))[0, 0, 2:-2, 2:-2].numpy()
        flat = shift_and_average(up(torch.full((1, 1, 34, 34), 0.7)))[0, 0, 2:-2, 2:-2].numpy()
    assert oe.nyquist_share(raw) > 0.99
    assert np.ptp(flat) < 1e-6                                                   # shift-and-average: constant


def test_z_effect_and_sampling_table():
    ref = np.full((8, 8), 100, np.uint8)
    stack = np.stack([np.full((8, 8), v, np.uint8) for v in (90, 93, 99)])
    assert oe.z_effect(stack) == 3.0
    assert oe.z_effect(np.stack([np.zeros((4, 4), np.uint8), np.full((4, 4), 255, np.uint8)])) == 255.0
    t = oe.sampling_table({"a": ref}, {"a": stack}).iloc[0]
    assert t.samples == 3 and t.z_effect == 3.0
    assert t.per_pixel_std == pytest.approx(np.std([90, 93, 99]) / 255)        # population std, images in [0, 1]
    assert t.per_pixel_std_gray_levels == pytest.approx(np.std([90, 93, 99]))
    assert t.mean_abs_diff_all_pairs == pytest.approx((3 + 9 + 6) / 3)
    assert t.psnr_of_mean == pytest.approx(10 * np.log10(255 ** 2 / (100 - 94) ** 2))   # mean 94 exactly
    assert t.psnr_samples_min == pytest.approx(10 * np.log10(255 ** 2 / 10 ** 2))
    with pytest.raises(ValueError):
        oe.z_effect(stack[:1])
    with pytest.raises(ValueError):
        oe.z_effect(stack.astype(np.float32))


def test_image_measures_analytic():
    refs = _images(2)
    dec = oe.compress(refs, 5)
    flat = {n: np.full_like(r, 128) for n, r in refs.items()}
    t = oe.image_measures(refs, dec, {"original": refs, "jpeg": dec, "flat": flat}, 5).set_index(["method", "image"])
    orig = t.loc["original"]
    assert (orig.consistency == 0).all() and np.isinf(orig.psnr).all() and np.allclose(orig.contrast_ratio, 1)
    assert t.loc["jpeg"].correction_nyquist.isna().all()                        # no correction
    assert (t.loc["flat"].contrast_ratio == 0).all() and (t.loc["flat"].consistency > 0).all()
    grid = {n: np.clip(d.astype(int) + 3 * (-1) ** np.add.outer(np.arange(64), np.arange(64)), 0, 255).astype(np.uint8)
            for n, d in dec.items()}
    g = oe.image_measures(refs, dec, {"grid": grid}, 5)
    assert (g.correction_nyquist > 0.95).all()                                  # a period-2 correction


def test_distribution_table(tiny):
    refs = _images(3)
    dec = oe.compress(refs, 5)
    t = oe.distribution_table(refs, {"originals": refs, "JPEG": dec, "Baseline (ours)": "no committed checkpoint"})
    # 64x64 images: levels down to 16x16, floor(log2(64 / 16)) + 1 = 3 (metrics.distribution)
    assert [c for c in t.columns if c.startswith("swd_level")] == ["swd_level0_x1e3", "swd_level1_x1e3",
                                                                   "swd_level2_x1e3"]
    r = t.set_index("method")
    assert r.loc["originals", "swd_mean_x1e3"] < 1e-2                           # a set against itself: 0 (float32)
    assert r.loc["JPEG", "swd_mean_x1e3"] > 10 * max(r.loc["originals", "swd_mean_x1e3"], 1e-3)
    missing = r.loc["Baseline (ours)"]
    assert missing.note == "no committed checkpoint" and np.isnan(missing.swd_mean_x1e3)
    if weights.status("inception")[0] is None:
        assert r.loc["JPEG", "note"].startswith("FID needs Inception weights") and np.isnan(r.loc["JPEG", "fid"])
    off = oe.distribution_table(refs, {"JPEG": dec}, fid=False)
    assert off.note.iloc[0] == "FID not requested"
    assert np.isclose(off.swd_mean_x1e3.iloc[0], r.loc["JPEG", "swd_mean_x1e3"])
