"""L4 / L8 (Svoboda et al. 2016): sizes, receptive fields, init, objectives, optimizer groups, training recipe.

Tiny tensors and synthetic images only: the file takes seconds on a 2-core CPU.
"""
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from paperlib import checkpoint as ckpt
from paperlib.models.svoboda import (BUDGETS, L4, L8, PAPER_TEXT, RECEPTIVE_FIELD, SvobodaNet, _main, counts,
                                     default_name, first_layer_filters, get_budget, layer_channels,
                                     load_svoboda, make_optimizer, make_step_fn, objective_loss, sobel,
                                     sobel_loss, train_svoboda)
from paperlib.patches import PatchSampler
from paperlib.restorer import Restorer
from paperlib.train import CHECKPOINT, LOG, MANIFEST, TrainConfig, read_log, train
from synthetic import synthetic_images

ROOT = Path(__file__).resolve().parents[1]


IMAGES = synthetic_images(height=48, width=64)


def n_params(net):
    return sum(p.numel() for p in net.parameters())


# ---- architecture -------------------------------------------------------------------------------

def test_exact_parameter_counts_and_flops():
    # Table 2: 1*48*121 + 48*64*9 + 64*64*9 + 64*1*25 weights, + 48+64+64+1 biases
    assert counts("L4") == {"weights": 71_920, "biases": 177, "params": 72_097, "flops_per_pixel": 143_840,
                            "receptive_field": 19}
    # Table 1, layer 1's 32 activations concatenated to the outputs of layers 4 and 6 (inputs of 5 and 7)
    assert counts("L8") == {"weights": 220_064, "biases": 481, "params": 220_545, "flops_per_pixel": 440_128,
                            "receptive_field": 25}
    # ... or to the inputs of layers 4 and 6: the "≈567 k" FLOPs of docs/conventions.md
    assert counts("L8", "before")["weights"] == 283_552 and counts("L8", "before")["flops_per_pixel"] == 567_104
    assert layer_channels("L8") == [(1, 32, 11), (32, 64, 3), (64, 64, 3), (64, 64, 3), (96, 64, 1),
                                    (64, 64, 5), (96, 128, 1), (128, 1, 5)]
    assert n_params(L4()) == 72_097
    assert n_params(L8()) == 220_545
    assert n_params(L8(skip="before")) == 284_033
    # The text's "approx 70 K and 220 K" parameters and "approximately 140 K and 440 K" FLOPs per pixel
    # (weights; with biases L8 has 220.5 k)
    assert round(counts("L4")["weights"] / 1e4) * 10 == PAPER_TEXT["L4"]["params_k"] == 70
    assert round(counts("L8")["weights"] / 1e3) == PAPER_TEXT["L8"]["params_k"] == 220
    assert round(counts("L4")["flops_per_pixel"] / 1e4) * 10 == PAPER_TEXT["L4"]["flops_per_pixel_k"] == 140
    assert round(counts("L8")["flops_per_pixel"] / 1e3) == PAPER_TEXT["L8"]["flops_per_pixel_k"] == 440
    # The Conclusions' 20 K / 100 K match no reading (NOTES.md): off by more than 2x
    assert counts("L4")["params"] > 3 * PAPER_TEXT["L4"]["params_k_conclusions"] * 1000
    assert counts("L8")["params"] > 2 * PAPER_TEXT["L8"]["params_k_conclusions"] * 1000


def test_paper_text_numbers_match_transcription():
    path = ROOT / "paperlib" / "published" / "svoboda.csv"
    rows = {(r["method"], r["metric"]): float(r["value"]) for r in csv.DictReader(path.open()) if r["table"] == "text"}
    for arch in ("L4", "L8"):
        assert rows[(arch, "params_k")] == PAPER_TEXT[arch]["params_k"]
        assert rows[(arch, "flops_per_pixel_k")] == PAPER_TEXT[arch]["flops_per_pixel_k"]
        assert rows[(f"{arch} (as stated in Conclusions)", "params_k")] == PAPER_TEXT[arch]["params_k_conclusions"]


@pytest.mark.parametrize("arch,skip", [("L4", "after"), ("L8", "after"), ("L8", "before")])
def test_receptive_field_by_gradient(arch, skip):
    torch.manual_seed(0)
    net = SvobodaNet(arch, "direct", skip=skip).double()
    x = torch.rand(1, 1, 41, 41, dtype=torch.float64, requires_grad=True)
    net(x)[0, 0, 20, 20].backward()
    rows, cols = np.nonzero(x.grad[0, 0].numpy())
    size = RECEPTIVE_FIELD[arch]
    assert counts(arch, skip)["receptive_field"] == size
    assert (rows.max() - rows.min() + 1, cols.max() - cols.min() + 1) == (size, size)
    assert (rows.min(), cols.min()) == (20 - size // 2, 20 - size // 2)   # centred
    assert len(rows) > 0.9 * size * size                                    # the support fills the square


@pytest.mark.parametrize("arch", ["L4", "L8"])
def test_shapes_odd_sizes_and_valid_interior(arch):
    torch.manual_seed(0)
    net = SvobodaNet(arch, "residual")
    m = net.margin
    assert m == RECEPTIVE_FIELD[arch] // 2
    for h, w in ((37, 53), (33, 31), (5, 7), (1, 1)):   # the last two are too small to mirror: replicate
        assert net(torch.rand(2, 1, h, w)).shape == (2, 1, h, w)
    x = torch.rand(1, 1, 45, 51)
    with torch.no_grad():
        full, valid = net(x), net(x, pad=False)
    assert valid.shape == (1, 1, 45 - 2 * m, 51 - 2 * m)
    # interior pixels are exactly the paper's valid network (padding only touches the border)
    assert torch.allclose(full[..., m:-m, m:-m], valid, atol=1e-6)


@pytest.mark.parametrize("arch", ["L4", "L8"])
def test_gradients_reach_every_parameter(arch):
    torch.manual_seed(0)
    net = SvobodaNet(arch, "sobel")
    x, t = torch.rand(2, 1, 40, 40), torch.rand(2, 1, 40, 40)
    loss, _ = objective_loss(net(x), t, "sobel")
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


# ---- initialisation and optimizer ---------------------------------------------------------------

@pytest.mark.parametrize("arch", ["L4", "L8"])
def test_zero_mean_xavier_and_small_gaussian_init(arch):
    torch.manual_seed(0)
    net = SvobodaNet(arch)
    for conv in net.convs:
        w = conv.weight.detach()
        assert torch.allclose(w.mean(dim=(1, 2, 3)), torch.zeros(w.shape[0]), atol=1e-7)   # every filter
        assert torch.equal(conv.bias.detach(), torch.zeros_like(conv.bias))
        fan_in = w[0].numel()
        if conv is net.last:
            assert 0.8e-3 < w.std().item() < 1.2e-3
        else:  # Caffe xavier: U(+-sqrt(3/fan_in)), std 1/sqrt(fan_in), minus each filter's mean
            assert w.abs().max() <= 2 * (3 / fan_in) ** 0.5
            if w.numel() > 3000:
                assert abs(w.std().item() * fan_in ** 0.5 - 1) < 0.1
    # the filter means of a plain draw are not zero: the subtraction did something
    torch.manual_seed(0)
    raw = torch.empty(48, 1, 11, 11).uniform_(-1, 1)
    assert raw.mean(dim=(1, 2, 3)).abs().max() > 1e-2


def test_last_layer_lr_is_a_tenth_and_schedule_keeps_it(tmp_path):
    torch.manual_seed(0)
    net = L4()
    opt = make_optimizer(net, 1e-3)
    layers, last = opt.param_groups
    assert layers["lr"] == 1e-3 and last["lr"] == pytest.approx(1e-4)
    assert {id(p) for p in last["params"]} == {id(net.last.weight), id(net.last.bias)}
    assert len(layers["params"]) + len(last["params"]) == len(list(net.parameters()))
    # through the training loop's step decay both groups keep the 10:1 ratio
    batch = PatchSampler(IMAGES, 32, 2, 20, seed=0).batch(0)
    cfg = TrainConfig(str(tmp_path), steps=3, lr_milestones=(1, 2), lr_gamma=0.5, progress=False)
    train(cfg, {"svoboda": net}, {"svoboda": opt}, make_step_fn("residual"), lambda step: batch)
    assert layers["lr"] == pytest.approx(0.25e-3) and last["lr"] == pytest.approx(0.25e-4)


# ---- objectives -----------------------------------------------------------------------------------

def test_residual_output_is_input_when_last_layer_is_zero():
    torch.manual_seed(0)
    x = torch.rand(2, 1, 29, 35)
    for arch in ("L4", "L8"):
        for objective in ("residual", "sobel", "direct"):
            net = SvobodaNet(arch, objective)
            with torch.no_grad():
                net.last.weight.zero_()
                net.last.bias.zero_()
                y, yv = net(x), net(x, pad=False)
            if objective == "direct":
                assert torch.equal(y, torch.zeros_like(x))
            else:
                m = net.margin
                assert torch.equal(y, x) and torch.equal(yv, x[..., m:-m, m:-m])
    img = (np.arange(23 * 30) % 251).astype(np.uint8).reshape(23, 30)
    res = SvobodaNet("L4", "residual")
    with torch.no_grad():
        res.last.weight.zero_()
        res.last.bias.zero_()
    assert np.array_equal(Restorer(res)([img])[0], img)       # the restorer works with the residual model


def test_sobel_term():
    torch.manual_seed(0)
    a = torch.rand(2, 1, 16, 16)
    assert sobel_loss(a, a).item() == 0.0
    assert sobel_loss(a, a + 0.3).item() < 1e-12            # a constant offset has no derivative
    assert sobel_loss(a, torch.rand(2, 1, 16, 16)).item() > 0
    # a horizontal ramp of slope s: Gx = (1 + 2 + 1) * 2s, Gy = 0, on the valid (H-2) x (W-2) pixels
    ramp = (0.01 * torch.arange(12.0)).expand(1, 1, 10, 12)
    g = sobel(ramp)
    assert g.shape == (1, 2, 8, 10)
    assert torch.allclose(g[:, 0], torch.full((1, 8, 10), 0.08))
    assert torch.allclose(g[:, 1], torch.zeros(1, 8, 10), atol=1e-6)
    assert sobel_loss(torch.zeros_like(ramp), ramp).item() == pytest.approx(0.08 ** 2)
    # the objective: MSE (mean over output pixels) plus the Sobel term with weight 1
    out, clean = torch.rand(2, 1, 12, 12), torch.rand(2, 1, 12, 12)
    loss, mse = objective_loss(out, clean, "sobel")
    assert mse.item() == pytest.approx(((out - clean) ** 2).sum().item() / out.numel())
    assert loss.item() == pytest.approx(mse.item() + sobel_loss(out, clean).item())
    assert objective_loss(out, clean, "residual")[0].item() == pytest.approx(mse.item())
    assert objective_loss(out, clean, "sobel", sobel_weight=0.5)[0].item() == pytest.approx(
        mse.item() + 0.5 * sobel_loss(out, clean).item())


def test_first_layer_filters():
    net = L4()
    f = first_layer_filters(net)
    assert f.shape == (48, 11, 11) and np.array_equal(f, net.convs[0].weight.detach().numpy()[:, 0])
    g = first_layer_filters(L8(), grid=True)
    assert g.shape == (4 * 12 + 1, 8 * 12 + 1) and g.min() >= 0 and g.max() <= 1


# ---- training recipe ------------------------------------------------------------------------------

def test_budgets():
    for name in ("smoke", "cpu", "paper"):
        for arch in ("L4", "L8"):
            b = get_budget(name, arch)
            assert b.name == name and b.last_lr_mult == 0.1 and b.crop > RECEPTIVE_FIELD[arch]
    p4, p8 = BUDGETS["paper"]["L4"], BUDGETS["paper"]["L8"]
    assert (p4.steps, p4.batch, p4.crop, p8.batch, p8.crop) == (250_000, 64, 64, 4, 128)
    assert p4.lr_milestones == (50_000, 100_000, 150_000, 200_000) and p4.lr_gamma == 0.5
    c4 = BUDGETS["cpu"]["L4"]
    assert (c4.lr, c4.batch, c4.crop, c4.lr_gamma) == (1e-3, 32, 64, 0.7) and c4.lr_milestones[:2] == (500, 1000)
    assert default_name("L4", "residual", 10) == "l4-residual-q10"
    assert default_name("L4", "residual", (10, 60)) == "l4-residual-q10-60"


@pytest.mark.isa
@pytest.mark.parametrize("arch", ["L4", "L8"])
def test_smoke_run_writes_files_and_loads_back(arch, tmp_path):
    res = train_svoboda(arch, "sobel", 20, IMAGES, tmp_path, "smoke", val_images=IMAGES[:1],
                        sources=["synthetic"], progress=False)
    b = BUDGETS["smoke"][arch]
    assert res.finished and res.step == b.steps
    log = read_log(tmp_path)
    assert len(log) == b.steps and np.isfinite(log["loss"]).all() and np.isfinite(log["val_mse"].dropna()).all()
    assert (log["loss"] >= log["mse"]).all()                     # the Sobel term is added
    m = json.loads((tmp_path / MANIFEST).read_text())
    assert m["recipe"] == "svoboda" and m["arch"] == arch and m["objective"] == "sobel" and m["qf"] == 20
    assert m["model"]["arch"] == arch and m["model"]["params"] == counts(arch)["params"]
    assert m["checkpoint_sha256"] == ckpt.sha256(tmp_path / CHECKPOINT) and (tmp_path / LOG).exists()
    sd, meta = ckpt.load_fp16(tmp_path / f"{arch}_fp16.pt")
    assert meta["arch"] == arch and meta["objective"] == "sobel" and meta["kwargs"]["objective"] == "sobel"
    net = load_svoboda(tmp_path / f"{arch}_fp16.pt")
    assert net.objective == "sobel" and not net.training
    assert torch.equal(net.last.weight, res.models["svoboda"].last.weight.half().float())
    assert load_svoboda(tmp_path / CHECKPOINT).objective == "sobel"         # checkpoint + manifest.json
    img = IMAGES[0][:21, :35]
    assert Restorer(net)([img])[0].shape == img.shape
    with pytest.raises(ValueError):   # another objective in the same folder is refused
        train_svoboda(arch, "direct", 20, IMAGES, tmp_path, "smoke", progress=False)


def test_qf_range_and_publish(tmp_path):
    run = tmp_path / "run"
    train_svoboda("L4", "residual", (10, 60), IMAGES, run, "smoke", progress=False, steps=2)
    ckpt.publish(run, "l4-residual-q10-60", weights="L4_fp16.pt", dest=tmp_path / "zoo")
    meta = json.loads((tmp_path / "zoo" / "l4-residual-q10-60.json").read_text())
    assert meta["arch"] == "L4" and meta["qf"] == [10, 60] and meta["params"] == 72_097
    net = load_svoboda(tmp_path / "zoo" / meta["file"])   # what models.load calls for an "L4" file
    assert net.objective == "residual"


def test_filter_snapshots_chunk_the_run_without_changing_it(tmp_path):
    """Keeping filters at steps 1 and 3 trains in chunks; the weights equal an unchunked run's, bit for bit."""
    plain = train_svoboda("L4", "residual", 10, IMAGES, tmp_path / "plain", "smoke", progress=False)
    kept = train_svoboda("L4", "residual", 10, IMAGES, tmp_path / "kept", "smoke", progress=False,
                         filter_steps=(1, 3, 99))
    assert kept.finished and kept.step == plain.step == 4
    for a, b in zip(plain.models["svoboda"].state_dict().values(), kept.models["svoboda"].state_dict().values()):
        assert torch.equal(a, b)
    with np.load(tmp_path / "kept" / "filters.npz") as z:
        assert sorted(z.files) == ["step_0", "step_1", "step_3", "step_4"]       # 99 > steps is dropped
        assert np.array_equal(z["step_4"], first_layer_filters(kept.models["svoboda"]))
        assert not np.array_equal(z["step_0"], z["step_4"])
        torch.manual_seed(0)
        assert np.array_equal(z["step_0"], first_layer_filters(L4()))              # the initialisation
    ckpt.publish(tmp_path / "kept", "k", weights="L4_fp16.pt", dest=tmp_path / "zoo")
    assert (tmp_path / "zoo" / "k.filters.npz").read_bytes() == (tmp_path / "kept" / "filters.npz").read_bytes()


def test_overfits_a_fixed_batch(tmp_path):
    """L4 with the paper's init and lr groups on one fixed batch: the loss must fall."""
    torch.manual_seed(0)
    batch = PatchSampler(IMAGES, 32, 4, 10, seed=0).batch(0)
    for objective, factor in (("direct", 0.5), ("residual", 0.75)):
        net = L4(objective)
        cfg = TrainConfig(str(tmp_path / objective), steps=25, progress=False, prefetch=0)
        res = train(cfg, {"svoboda": net}, {"svoboda": make_optimizer(net, 1e-3)}, make_step_fn(objective),
                    lambda step: batch)
        mse = [r["mse"] for r in res.log]
        assert np.isfinite(mse).all()
        assert min(mse[-3:]) < factor * mse[0], (objective, mse)


@pytest.mark.isa
def test_cli_smoke(tmp_path, capsys):
    res = _main(["--arch", "L4", "--objective", "residual", "--qf", "10", "--budget", "smoke", "--train", "demo",
                 "--val", "demo", "--out", str(tmp_path), "--no-progress"])
    assert res.finished and (tmp_path / "L4_fp16.pt").exists()
    assert "step 4/4, finished=True" in capsys.readouterr().out
    m = json.loads((tmp_path / MANIFEST).read_text())
    assert m["data"]["sources"] == ["demo"] and m["qf"] == 10 and m["budget"] == "smoke"
