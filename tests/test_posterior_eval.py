"""Evaluation helpers of the posterior-sampling notebook (paperlib.posterior_eval) and the CLI's Ours-P / stochastic report.

Independent sources: the paper's Table 1 (its check marks and printed cells), the Makefile that trains the networks,
Pillow's own codec and colour conversion, closed-form statistics.
"""
import io
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn
from PIL import Image
from synthetic import smooth_images

from paperlib import checkpoint, cli, diffjpeg, jpeg, zoo
from paperlib import posterior_eval as pe
from paperlib.models.posterior import Losses, PosteriorNet

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)   # small networks on a shared CPU: see tests/test_posterior.py
    yield
    torch.set_num_threads(n)


# ---- Table 1's rows -------------------------------------------------------------------------------------------

# The paper's Table 1, check marks typed from the text: GAN, C, FM, P, SM (with its weight).
PAPER_TABLE1 = {"Perceptual Baseline": (1, 0, 1, 1, 0), "Baseline": (1, 1, 0, 0, 0), "+ First-Moment": (1, 1, 1, 0, 0),
                "+ VGG": (1, 1, 1, 1, 0), "+ Second-Moment": (1, 1, 1, 1, 10), "Ours": (1, 1, 1, 1, 1000)}


def _switches(losses: Losses):
    return (int(losses.gan > 0), int(losses.consistency > 0), int(losses.first_moment > 0), int(losses.perceptual > 0),
            losses.second_moment)


def test_table1_rows_are_the_papers():
    assert {row: _switches(losses) for row, (_, losses) in pe.TABLE1.items()} == PAPER_TABLE1
    printed_methods = set(pe.printed().method)
    assert printed_methods == set(pe.TABLE1) | {"Ours-P"} | set(pe.PUBLISHED_ONLY)
    assert pe.network_name("Ours") == "posterior-color" and pe.network_name("Baseline") == "posterior-color-baseline"
    assert [pe.sweep_name(c) for c in (0, 0.1, 5)] == ["posterior-color-q5-c0", "posterior-color-q5-c0.1",
                                                       "posterior-color-q5-c5"]
    assert _switches(pe.sweep_losses(5)) == (1, 1, 1, 0, 0)   # the paper's FFHQ recipe: GAN + C + FM
    with pytest.raises(ValueError, match="Table 1 row"):
        pe.network_name("Bahat")


def test_makefile_trains_every_network_with_its_rows_losses():
    """``make posterior-checkpoints`` trains each named network with exactly the losses its row stands for."""
    text = (ROOT / "Makefile").read_text()
    block = text[text.index("POSTERIOR_RUNS = \\"):text.index("posterior-checkpoints: $(STAMP)")]
    runs = dict(re.findall(r"(posterior-[\w.-]+):(\S+)", block))
    want = {pe.network_name(row): losses for row, (_, losses) in pe.TABLE1.items()}
    want.update({pe.sweep_name(c): pe.sweep_losses(c) for c in pe.SWEEP})
    assert set(runs) == set(want) | {"posterior-color-mse"}
    for name, args in runs.items():
        flags = args.split(",")
        opts = dict(zip(flags[::2], flags[1::2]))
        assert opts["--kind"] == ("mse" if name.endswith("-mse") else "posterior")
        if name.endswith("-mse"):
            continue
        got = Losses(**{k[2:].replace("-", "_"): float(v) for k, v in opts.items()
                        if k not in ("--kind", "--qf", "--mmse")})
        assert got == want[name], name
        assert ("--mmse" in opts) == bool(got.second_moment)              # SM needs X̄ = Ours-MSE
        assert opts.get("--qf") == ("5" if name in {pe.sweep_name(c) for c in pe.SWEEP} else None)


def test_table1_puts_printed_cells_and_gaps_beside_ours():
    t = pe.table1([{"method": "Ours", "network": "x", "psnr": 25.0, "consistency": 1.5, "swd_x1e3": 3.0},
                   {"method": "Ours-P", "network": "x", "psnr": 25.7},
                   {"method": "+ VGG", "network": "y", "note": "no committed checkpoint"}])
    ours = t.set_index("method").loc["Ours"]
    assert ours.paper_psnr == "25.5758" and ours.gap_psnr == pytest.approx(25.0 - 25.5758)
    assert ours.gap_consistency == pytest.approx(1.5 - 0.9696) and math.isnan(ours.gap_fid)
    assert ours.source == "this run"
    p = t.set_index("method").loc["Ours-P"]
    assert p.paper_consistency == "" and p.paper_per_pixel_std == "0.0188"   # "≈ 0*" is not a number
    assert t.set_index("method").loc["+ VGG"].source == "missing"
    bahat = t.set_index("method").loc["Bahat"]
    assert bahat.source == "paper only" and bahat.paper_fid == "13.71"


# ---- inputs, restorations, the Ours-P check -----------------------------------------------------------------

def _refs(n=2, size=(64, 80)):
    return {f"im{k}": im for k, im in enumerate(smooth_images((size,) * n, color=True, seed=3))}


def test_jpeg_inputs_are_the_codecs_own():
    refs = _refs()
    inputs = pe.jpeg_inputs(refs, 20)
    for n, ref in refs.items():
        dec, coefs = inputs[n]
        data = Image.open(io.BytesIO(jpeg.encode(ref, 20)))
        assert np.array_equal(dec, np.asarray(data.convert("RGB")))            # Pillow's own decode
        assert coefs.subsampling == "4:2:0"
        ijg = jpeg.ijg_tables(20, True)
        assert np.array_equal(coefs.tables[0].numpy(), ijg[[0, 1, 1]])       # the file's tables = IJG at QF 20
        for a, b in zip(coefs.blocks, diffjpeg.encode(torch.from_numpy(ref).permute(2, 0, 1)[None].double(), 20).blocks):
            assert torch.equal(a, b)
        assert pe.reencode_rmse(ref, dec, coefs) == 0.0    # the original re-encodes to the very same file


class Shift(nn.Module):
    """A gray 'network' adding a constant to the luma (what restore_luma must put into Y and only Y)."""
    channels, uses_tables, stochastic, halo, grid = 1, False, False, 0, 1

    def __init__(self, shift=0.0):
        super().__init__()
        self.shift = nn.Parameter(torch.tensor(shift))

    def forward(self, x):
        return x + self.shift


def test_restore_luma_changes_the_luma_only():
    dec = {n: jpeg.roundtrip(r, 10)[0] for n, r in _refs().items()}
    same = pe.restore_luma(Shift(0.0), dec, 10)
    for n, d in dec.items():   # identity network: exactly Pillow's own YCbCr round trip
        assert np.array_equal(same[n], np.asarray(Image.fromarray(d).convert("YCbCr").convert("RGB")))
    brighter = pe.restore_luma(Shift(10 / 255), dec, 10)
    for n, d in dec.items():
        y0, y1 = (np.asarray(Image.fromarray(a).convert("YCbCr")).astype(int) for a in (same[n], brighter[n]))
        inside = (y0[..., 0] > 20) & (y0[..., 0] < 230)
        assert np.abs(y1[..., 0] - y0[..., 0] - 10)[inside].max() <= 2       # +10 levels of luma (RGB rounding)
        assert np.abs(y1[..., 1:] - y0[..., 1:])[inside].max() <= 2           # chroma kept


def test_ours_p_passes_the_8_bit_check_on_stand_ins():
    refs = _refs(3)
    for qf in (10, 50):
        inputs = pe.jpeg_inputs(refs, qf)
        cands = pe.stand_ins({n: v[0] for n, v in inputs.items()}, seed=0)
        check = pe.projection_check(cands, inputs, qf)
        assert len(check) == 6 and (check.rmse_projected <= 0.3).all(), check
        blur = check[check.candidate.str.contains("blurred")]
        assert (blur.rmse_unprojected > 1.0).all()        # the stand-in is far from consistent before projection


def test_ours_p_passes_the_8_bit_check_on_bsds500(data_root):
    """Real photos (BSDS500 test crops, with saturated regions), the blurred stand-in, QF 5 to 50."""
    from paperlib import data
    paths = data.image_paths("bsds500", "test", data_root=data_root, download_missing=False)[:4]
    refs = pe.references(paths, 128)
    for qf in (5, 10, 30, 50):
        inputs = pe.jpeg_inputs(refs, qf)
        blur = {k: v for k, v in pe.stand_ins({n: v[0] for n, v in inputs.items()}).items() if "blurred" in k}
        check = pe.projection_check(blur, inputs, qf)
        assert (check.rmse_projected <= 0.3).all(), check


def test_ours_p_of_a_stack_in_batches_is_each_draw_projected_alone(monkeypatch):
    from paperlib.models import posterior
    ref = _refs(1)["im0"]
    dec, coefs = pe.jpeg_inputs({"a": ref}, 10)["a"]
    rng = np.random.default_rng(0)
    stack = np.clip(dec[None] + rng.normal(0, 8, (5, *dec.shape)), 0, 255).astype(np.uint8)
    monkeypatch.setattr(posterior, "PROJECTION_BATCH", 2)   # batches of 2, 2 and 1
    together = posterior.project(stack, coefs)
    assert together.shape == stack.shape and together.dtype == np.uint8
    for draw, out in zip(stack, together):
        assert np.array_equal(posterior.project(draw, coefs), out)
    assert not np.array_equal(together[0], together[1])   # each draw its own projection


def test_ours_p_stops_passes_that_change_nothing(monkeypatch):
    """Each image leaves the passes once it has settled: the same pixels as all 20 + 3 passes of Eq. 11 in a plain
    loop, with fewer image-passes where restorations settle."""
    from paperlib import diffjpeg
    from paperlib.models import posterior
    ref = _refs(1)["im0"]
    dec, coefs = pe.jpeg_inputs({"a": ref}, 10)["a"]
    rng = np.random.default_rng(1)
    stack = np.stack([dec, np.clip(dec + rng.normal(0, 30, dec.shape), 0, 255).astype(np.uint8),
                      np.zeros_like(dec), np.full_like(dec, 255)])   # the decode; noisy; all black; all white
    # (the noisy one settles over about 10 passes, the others within 2)
    x = torch.from_numpy(stack.astype(np.float64)).permute(0, 3, 1, 2)
    for k in range(posterior.PROJECTION_ITERATIONS + 3):
        x = diffjpeg.project(x, coefs, "pillow", margin=posterior.PROJECTION_MARGIN)
        x = (torch.floor(x + 0.5) if k >= posterior.PROJECTION_ITERATIONS else x).clamp(0.0, 255.0)
    every_pass = x.permute(0, 2, 3, 1).numpy().astype(np.uint8)
    passes = []
    real = diffjpeg.project
    monkeypatch.setattr(diffjpeg, "project", lambda im, *a, **kw: passes.append(len(im)) or real(im, *a, **kw))
    assert np.array_equal(posterior.project(stack, coefs), every_pass)
    assert passes[0] == 4 and len(passes) < 23 and sum(passes) < 4 * 23, passes   # every image stops early


# ---- measurements ------------------------------------------------------------------------------------------------

def test_sample_statistics_closed_form():
    ref = np.full((16, 16, 3), 100, np.uint8)
    ref[:8] = 60
    c, d = 2, 6
    stack = np.stack([ref.astype(int) + c + d, ref.astype(int) + c - d]).astype(np.uint8)   # mean ref + c, spread d
    refs, inputs = {"a": ref}, pe.jpeg_inputs({"a": ref}, 50)
    s = pe.sample_statistics(refs, {"a": stack}, inputs, 50).iloc[0]
    assert s.per_pixel_std == pytest.approx(d / 255)                     # population std over the draws
    assert s.psnr_average == pytest.approx(10 * math.log10(255 ** 2 / c ** 2))
    assert s.mse_ratio_db == pytest.approx(10 * math.log10((c ** 2 + d ** 2) / c ** 2))   # E(c +- d)^2 / c^2
    table, facts = pe.theorem1(pd.DataFrame([s]), pd.DataFrame(columns=["method", "image", "consistency", "psnr"]),
                               "Ours-MSE")
    assert facts["theory_db"] == pytest.approx(3.0103, abs=1e-4) and facts["samples"] == 2
    assert list(table.method) == ["Ours-A (average of draws)", "Ours (single draws)"]


def test_measures_come_from_the_cache_only_for_the_same_pixels_and_qf(monkeypatch):
    """A warm run reads per-image measures back (equal to the fresh ones); other pixels or another QF recompute."""
    refs = {f"i{k}": im for k, im in enumerate(smooth_images(((16, 16),) * 2, color=True, seed=2))}
    stacks = {n: np.stack([np.clip(r.astype(int) + d, 0, 255).astype(np.uint8) for d in (-3, 4, 9)])
              for n, r in refs.items()}
    inputs = pe.jpeg_inputs(refs, 30)
    fresh_s, fresh_m = pe.sample_statistics(refs, stacks, inputs, 30), pe.image_measures(refs, {"m": stacks}, 30)
    calls = []
    real_s, real_m = pe._sample_row, pe._measure_row
    monkeypatch.setattr(pe, "_sample_row", lambda *a: calls.append("s") or real_s(*a))
    monkeypatch.setattr(pe, "_measure_row", lambda *a: calls.append("m") or real_m(*a))
    pd.testing.assert_frame_equal(pe.sample_statistics(refs, stacks, inputs, 30), fresh_s)
    pd.testing.assert_frame_equal(pe.image_measures(refs, {"m": stacks}, 30), fresh_m)
    assert calls == []                                                    # hits, equal to the fresh rows
    changed = {**stacks, "i0": stacks["i0"][::-1].copy()}                 # the same draws in another order
    pe.sample_statistics(refs, changed, inputs, 30)
    assert calls == ["s"]                                                 # only the changed image
    pe.image_measures(refs, {"m": stacks}, 40)
    assert calls == ["s", "m", "m"]                                       # another QF: every image


def test_distribution_of_identical_and_repeated_sets():
    refs = {f"i{k}": im for k, im in enumerate(smooth_images(((32, 32),) * 3, color=True, seed=1))}
    same = pe.distribution(refs, [refs])
    assert same["swd_x1e3"] == pytest.approx(0.0, abs=1e-3) and same["n_draws"] == 1 and math.isnan(same["swd_x1e3_std"])
    assert math.isnan(same["fid"])                                       # no Inception weights given: no FID
    noisy = [{n: np.clip(r + np.random.default_rng(k).normal(0, 20, r.shape), 0, 255).astype(np.uint8)
              for n, r in refs.items()} for k in range(2)]
    two = pe.distribution(refs, noisy)
    assert two["n_draws"] == 2 and two["swd_x1e3"] > 1.0 and two["swd_x1e3_std"] >= 0


def test_model_size_reports_the_budgets():
    size = pe.model_size(("smoke", "cpu"), height=16).set_index("budget")
    assert size.loc["cpu", "generator_params"] == 417_507 and size.loc["cpu", "generator_flops_per_pixel"] == 92_376
    assert size.loc["cpu", "critic_params"] == 1_437_689


# ---- the CLI: restore --project, evaluate on a stochastic model ------------------------------------------------

@pytest.fixture
def posterior_zoo(tmp_path, monkeypatch):
    """A tiny posterior network with a nonzero correction, committed under a temporary zoo as posterior-color."""
    torch.manual_seed(0)
    g = PosteriorNet(3, 8, 1).eval()
    nn.init.normal_(g.last.weight, 0, 0.05)
    zoo_dir = tmp_path / "zoo"
    zoo_dir.mkdir()
    path = checkpoint.export_fp16(g.state_dict(), zoo_dir / "posterior-color.pt", {"arch": "Posterior", "kwargs": g.kwargs})
    (zoo_dir / "posterior-color.json").write_text(json.dumps(
        {"name": "posterior-color", "arch": "Posterior", "file": path.name, "sha256": checkpoint.sha256(path),
         "qf": [5, 50], "budget": "test", "steps": 0, "wall_time_s": 0.0, "data": {"sources": []}}))
    monkeypatch.setattr(zoo, "CHECKPOINT_DIR", zoo_dir)
    return zoo_dir


def test_cli_restore_samples_and_project(posterior_zoo, tmp_path, capsys):
    img = smooth_images(((64, 80),), color=True, seed=5)[0]
    src = tmp_path / "in.jpg"
    Image.fromarray(img).save(src, quality=15)
    assert cli.main(["restore", str(src), str(tmp_path / "out.png"), "--model", "posterior-color", "--samples", "4",
                     "--seed", "0"]) == 0
    outs = [np.asarray(Image.open(tmp_path / f"out-{k}.png")) for k in range(4)]
    assert all(o.shape == img.shape for o in outs) and not np.array_equal(outs[0], outs[1])
    assert cli.main(["restore", str(src), str(tmp_path / "p.png"), "--model", "posterior-color", "--samples", "2",
                     "--project"]) == 0
    assert "projected" in capsys.readouterr().out
    decoded, tables, _ = jpeg.read_jpeg(src)
    for k in range(2):
        p = np.asarray(Image.open(tmp_path / f"p-{k}.png"))
        again = jpeg.decode(diffjpeg.encode_tables(p, tables, subsampling="4:2:0"))   # Pillow, the file's tables
        assert np.sqrt(np.mean((again.astype(float) - decoded) ** 2)) <= 0.3
        raw = jpeg.decode(diffjpeg.encode_tables(outs[k], tables, subsampling="4:2:0"))
        assert np.sqrt(np.mean((raw.astype(float) - decoded) ** 2)) > 0.3   # unprojected draws are not consistent


def test_cli_evaluate_reports_consistency_and_spread(posterior_zoo, tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for k, im in enumerate(smooth_images(((48, 64), (48, 64)), color=True, seed=7)):
        Image.fromarray(im).save(folder / f"{k}.png")
    args = ["evaluate", "--model", "posterior-color", "--images", str(folder), "--qf", "50", "--protocol", "color-qgcn"]
    assert cli.main(args + ["--json", "--samples", "3"]) == 0
    r = json.loads(capsys.readouterr().out)[0]["restored"]
    assert set(r) == {"psnr", "ssim", "psnrb", "consistency", "per_pixel_std"}
    assert r["per_pixel_std"] > 0 and r["consistency"] > 0   # the draws move the JPEG at QF 50
    assert cli.main(args) == 0
    assert "per-pixel STD" in capsys.readouterr().out
    assert cli.main(["evaluate", "--model", "posterior-color", "--images", str(folder), "--qf", "10", "--protocol",
                     "color-qgcn", "--samples", "1"]) == 2
    assert "K >= 2" in capsys.readouterr().err


def test_sweep_reading_trend_and_resolution():
    # consistency falling with lambda_C; distances 10 apart with a std of 1: resolved
    s = pd.DataFrame({"lambda_c": [5.0, 0.0, 1.0], "consistency": [0.1, 0.3, 0.2],
                      "swd_x1e3": [30.0, 40.0, 35.0], "swd_x1e3_std": [1.0, 0.5, 1.0]})
    text = pe.sweep_reading(s)
    assert "falls monotonically" in text and "0.300 gray levels at λ_C = 0, 0.100 at 5" in text
    assert "spans 10.00" in text and "are resolved" in text
    # consistency not monotone; distances 1 apart with a std of 0.6: not resolved (spread <= 2 x std)
    s2 = s.assign(consistency=[0.2, 0.3, 0.1], swd_x1e3=[35.0, 35.5, 34.5], swd_x1e3_std=[0.6, 0.2, 0.3])
    text2 = pe.sweep_reading(s2)
    assert "does not fall" in text2 and "does not resolve" in text2
    assert "no trend" in pe.sweep_reading(s.iloc[:1])


def test_restore_in_batches_gives_the_draws_of_one_at_a_time(monkeypatch):
    """``restore`` runs DRAW_BATCH draws per forward pass: each image's K draws are the ones the restorer gives one
    at a time (the same Z per image and draw, the same outputs up to float summation order)."""
    from paperlib import evaluation
    from paperlib.restorer import Restorer
    monkeypatch.setenv("PAPERLIB_NO_CACHE", "1")
    torch.manual_seed(0)
    net = PosteriorNet(3, features=8, n_blocks=1).eval()
    nn.init.normal_(net.last.weight, 0, 0.05)   # a correction that is not zero
    imgs = smooth_images(shapes=((32, 48), (32, 48), (48, 32)), color=True)
    decoded = {f"im{i}": im for i, im in enumerate(imgs)}
    got = pe.restore(net, decoded, 10, seed=3, samples=5)
    one = evaluation.restore(Restorer(net, batch=1), decoded, 10, seed=3, samples=5)
    assert pe.DRAW_BATCH > 1
    for n in decoded:
        assert got[n].shape == (5, *decoded[n].shape)
        d = np.abs(got[n].astype(int) - one[n].astype(int))
        assert d.max() <= 1 and (d == 0).mean() > 0.99
        assert not np.array_equal(got[n][0], got[n][1])   # the draws differ
