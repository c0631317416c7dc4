"""One-to-Many (Guo & Chao 2017): the proposal component, shift-and-average, the critic, the recipe (smoke)."""
import json

import numpy as np
import pytest
import torch
import torch.nn as nn

from paperlib import checkpoint as ckpt
from paperlib import models
from paperlib.models.onetomany import (BUDGETS, Critic, Losses, ProposalNet, ResUnit, default_name, load_features,
                                       shift_and_average, train_onetomany)
from paperlib.restorer import Restorer
from synthetic import synthetic_images

# ---- parameter counts, from the paper's layer list (Fig. 3, Table 1), 64 filters -------------------------

W = 64
CONV = lambda c_in, c_out, k: c_in * c_out * k * k + c_out   # noqa: E731  weights + biases
BN = lambda c: 2 * c                                          # noqa: E731  scale + shift
UNIT = 2 * BN(W) + 2 * CONV(W, W, 3)                          # pre-activation residual unit
BRANCH = lambda c: CONV(c, W, 4) + 5 * UNIT                   # noqa: E731  stride-2 4x4 down + 5 units
AGGREGATION = 10 * UNIT + BN(W)
UP_LAST = lambda c: CONV(W, W, 4) + CONV(W, c, 3)             # noqa: E731  4x4 deconvolution + last layer


def test_parameter_counts():
    gray = BRANCH(1) + BRANCH(1) + CONV(2 * W, W, 3) + AGGREGATION + UP_LAST(1)
    assert gray == 1_624_513
    assert sum(p.numel() for p in ProposalNet(1).parameters()) == gray
    color = BRANCH(3) + BRANCH(1) + CONV(2 * W, W, 3) + AGGREGATION + UP_LAST(3)
    assert sum(p.numel() for p in ProposalNet(3).parameters()) == color == 1_627_715
    baseline = BRANCH(1) + AGGREGATION + UP_LAST(1)                # no Z branch, no merge
    assert sum(p.numel() for p in ProposalNet(1, noise=False).parameters()) == baseline == 1_179_073
    # D: 4 units of a stride-1 and a stride-2 4x4 conv, BN after every conv but the last, logistic regression
    widths, c, d = (64, 128, 256, 512), 1, 0
    for k, w in enumerate(widths):
        d += CONV(c, w, 4) + BN(w) + CONV(w, w, 4) + (BN(w) if k < 3 else 0)
        c = w
    d += 512 * (48 // 16) ** 2 + 1
    assert sum(p.numel() for p in Critic(1, patch=48).parameters()) == d == 8_333_441


def test_residual_unit_is_pre_activation():
    u = ResUnit(8)
    kinds = [type(m).__name__ for m in u.children()]
    assert kinds == ["BatchNorm2d", "Conv2d", "BatchNorm2d", "Conv2d"]
    with torch.no_grad():
        u.conv2.weight.zero_()
        u.conv2.bias.zero_()
    x = torch.randn(2, 8, 5, 5)
    assert torch.equal(u(x), x)        # identity shortcut


# ---- shift-and-average (Sec. 3.2.2) -----------------------------------------------------------

def test_shift_and_average_keeps_a_constant_image_constant():
    torch.manual_seed(0)
    up = nn.ConvTranspose2d(1, 1, 4, stride=2, padding=1, bias=False)
    c = torch.full((1, 1, 6, 6), 0.7)
    raw = up(c).detach()[0, 0, 2:-2, 2:-2]     # interior: every output pixel gets its full set of taps
    w = up.weight.detach()[0, 0]
    # the paper's 1-D argument in 2-D: the interior alternates between sums of the filter's even/odd taps
    assert torch.allclose(raw[0, 0], 0.7 * w[1::2, 1::2].sum()) and torch.allclose(raw[0, 1], 0.7 * w[1::2, ::2].sum())
    assert raw.std() > 1e-3                          # grid-like: not constant without the strategy
    sa = shift_and_average(up(c).detach())[0, 0]
    assert torch.allclose(sa[2:-2, 2:-2], torch.full_like(sa[2:-2, 2:-2], 0.7 * w.sum() / 4), atol=1e-6)
    flat = torch.full((1, 3, 7, 9), 2.5)
    assert torch.equal(shift_and_average(flat), flat)   # borders too (edge replication)


def test_shift_and_average_is_the_mean_of_four_shifts():
    x = torch.arange(20.0).reshape(1, 1, 4, 5)
    y = shift_and_average(x)
    assert y[0, 0, 2, 3] == (x[0, 0, 2, 3] + x[0, 0, 2, 2] + x[0, 0, 1, 3] + x[0, 0, 1, 2]) / 4
    assert y[0, 0, 0, 0] == x[0, 0, 0, 0]


# ---- the proposal component ---------------------------------------------------------------------------

@pytest.mark.parametrize("channels", [1, 3])
def test_any_size_noise_and_seeds(channels):
    torch.manual_seed(0)
    g = ProposalNet(channels, width=8, branch_units=1, aggregation_units=1).eval()
    nn.init.normal_(g.last.weight, 0, 0.1)    # a trained-like correction (it starts at zero)
    for h, w in ((33, 47), (16, 16), (5, 3)):
        y = torch.rand(2, channels, h, w)
        assert g(y).shape == y.shape
    y = torch.rand(1, channels, 21, 19)
    z1 = g.noise(y, torch.Generator().manual_seed(1))
    z2 = g.noise(y, torch.Generator().manual_seed(2))
    assert z1.shape == (1, 1, 21, 19)
    with torch.no_grad():
        assert not torch.equal(g(y, z1), g(y, z2))                                       # Z matters
        assert torch.equal(g(y, z1), g(y, g.noise(y, torch.Generator().manual_seed(1))))  # same seed, same output
    base = ProposalNet(channels, noise=False, width=8, branch_units=1, aggregation_units=1).eval()
    assert not base.stochastic and base(y).shape == y.shape


def test_starts_as_the_identity():
    y = torch.rand(2, 1, 24, 24)
    g = ProposalNet(1, width=8, branch_units=1, aggregation_units=1).eval()
    with torch.no_grad():
        assert torch.equal(g(y), y)


def test_restorer_draws_samples():
    torch.manual_seed(0)
    g = ProposalNet(1, width=8, branch_units=1, aggregation_units=1).eval()
    nn.init.normal_(g.last.weight, 0, 0.1)
    img = synthetic_images(1)[0]
    s = Restorer(g)([img], seed=0, samples=3)[0]
    assert s.shape == (3, *img.shape) and s.dtype == np.uint8
    assert not np.array_equal(s[0], s[1])
    assert np.array_equal(s, Restorer(g)([img], seed=0, samples=3)[0])


def test_losses_and_names():
    assert Losses().natural == 0.1 and Losses().jpeg == 0.1 and Losses().percept_layer == "relu5_4"
    assert default_name("baseline", False, 10) == "onetomany-baseline-gray-q10"
    assert default_name("onetomany", True, 5) == "onetomany-color-q5"
    net = load_features()   # never downloads: the real weights where present, else the labelled stand-in
    from paperlib import weights
    found = weights.status("vgg19")[0] is not None
    assert ("NOT pretrained" in net.weights_label) != found


# ---- the recipe (smoke budget) ------------------------------------------------------------------------

@pytest.mark.isa
@pytest.mark.parametrize("kind", ["baseline", "onetomany"])
def test_smoke_training_publish_load_restore(kind, tmp_path):
    imgs = synthetic_images(3)
    res = train_onetomany(kind, 10, imgs, tmp_path / "run", "smoke", val_images=imgs[:1], sources=["synthetic"],
                          progress=False)
    b = BUDGETS["smoke"]
    assert res.finished and res.step == b.steps
    log = res.log
    m = json.loads((tmp_path / "run" / "manifest.json").read_text())
    if kind == "onetomany":
        assert [("d" in r) for r in log] == [s >= b.critic_start for s in range(b.steps)]   # D after the first "epoch"
        assert all(np.isfinite([r["percept"], r["jpeg"]]).all() for r in log)
        assert "val_z_effect" in log[-1]
        from paperlib import weights   # the manifest names the feature network; the stand-in only without VGG-19
        assert ("NOT pretrained" in m["perceptual_features"]) == (weights.status("vgg19")[0] is None)
    assert m["kind"] == kind and m["qf"] == 10
    ckpt.publish(tmp_path / "run", default_name(kind, False, 10), weights="onetomany_fp16.pt", dest=tmp_path / "zoo")
    net = models.load(tmp_path / "zoo" / f"{default_name(kind, False, 10)}.pt")
    assert net.stochastic == (kind == "onetomany")
    out = Restorer(net)([imgs[0]])[0]
    assert out.shape == imgs[0].shape
