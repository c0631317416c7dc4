"""JPEG posterior sampling (Man et al. 2023): the generator, the critic, the moment penalties, the recipe (smoke).

Independent sources: parameter and FLOP counts written down from the layer lists (paperlib/models/posterior.py's
docstring) and, for the generator without noise, ESRGAN's published RRDBNet size; the receptive field measured with
autograd; the moment penalties against closed-form answers.
"""
import json
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from synthetic import smooth_images

from paperlib import checkpoint as ckpt
from paperlib import losses, models, speed
from paperlib.models.posterior import (
    BUDGETS,
    Critic,
    Losses,
    PosteriorNet,
    default_name,
    load_posterior,
    train_posterior,
)
from paperlib.restorer import Restorer

# ---- parameter counts and FLOPs, from the layer list ---------------------------------------------------------

CONV = lambda c_in, c_out, k=3: c_in * c_out * k * k + c_out   # noqa: E731  weights + biases


def generator_params(c, f, n, g, noise):
    e = 1 if noise else 0
    dense = sum(CONV(f + k * g + e, g if k < 4 else f) for k in range(5)) + (5 if noise else 0)   # + 5 noise gains
    return (CONV(16 * c, f) + n * 3 * dense + CONV(f, f)                    # pixel-unshuffled input, trunk, trunk end
            + 2 * CONV(f + e, f) + (2 if noise else 0) + CONV(f, f) + CONV(f, c))   # up-sampling, hr, last


def generator_flops_per_pixel(c, f, n, g, noise):
    """2 k^2 c_in c_out per pixel of each convolution's grid, per output pixel (quarter grid: /16, half: /4)."""
    e = 1 if noise else 0
    mac = lambda c_in, c_out: 9 * c_in * c_out   # noqa: E731
    quarter = mac(16 * c, f) + n * 3 * sum(mac(f + k * g + e, g if k < 4 else f) for k in range(5)) + mac(f, f)
    return 2 * (quarter / 16 + mac(f + e, f) / 4 + mac(f + e, f) + mac(f, f) + mac(f, c))


def critic_params(c, nf, size):
    def block(fin, fout):
        h = min(fin, fout)
        return CONV(fin, h) + CONV(h, fout) + (fin * fout if fin != fout else 0)   # 1x1 shortcut, no bias
    stages = ((1, 1, 2), (2, 2, 4), (4, 4, 8), (8, 8, 16), (16, 16, 16), (16, 16, 16))
    return CONV(c, nf) + sum(block(a * nf, b * nf) + block(b * nf, d * nf) for a, b, d in stages) \
        + 16 * nf * (size // 32) ** 2 + 1


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def test_parameter_counts_paper_and_cpu():
    paper, cpu = BUDGETS["paper"], BUDGETS["cpu"]
    g, g_mse = PosteriorNet(3, paper.features, paper.n_blocks), PosteriorNet(3, 64, 23, noise=False)
    d = Critic(3, paper.crop, paper.critic_features)
    assert n_params(g) == generator_params(3, 64, 23, 32, True) == 16_844_638
    # Without noise this is ESRGAN's RRDBNet (16,697,987 parameters at x4, input conv 3 -> 64) with the scale-1
    # input conv (48 -> 64, pixel-unshuffled input): 16,697,987 - 1,792 + 27,712.
    assert n_params(g_mse) == generator_params(3, 64, 23, 32, False) == 16_697_987 - CONV(3, 64) + CONV(48, 64)
    assert n_params(d) == critic_params(3, 48, 128) == 51_695_185
    small = PosteriorNet(3, cpu.features, cpu.n_blocks)
    assert n_params(small) == generator_params(3, cpu.features, cpu.n_blocks, cpu.features // 2, True) == 417_507
    assert n_params(Critic(3, cpu.crop, cpu.critic_features)) == critic_params(3, cpu.critic_features, cpu.crop) \
        == 1_437_689
    assert n_params(PosteriorNet(1, 8, 1, noise=False)) == generator_params(1, 8, 1, 4, False)


def test_flops_per_pixel_paper_and_cpu():
    paper, cpu = BUDGETS["paper"], BUDGETS["cpu"]
    for f, n in ((paper.features, paper.n_blocks), (cpu.features, cpu.n_blocks)):
        want = generator_flops_per_pixel(3, f, n, f // 2, True)
        got = speed.flops_per_pixel(PosteriorNet(3, f, n), 16, 16, in_channels=3)   # per pixel: any multiple of 16
        assert got == pytest.approx(want, rel=1e-12)
    assert generator_flops_per_pixel(3, 64, 23, 32, True) == pytest.approx(2_260_440)
    assert generator_flops_per_pixel(3, 32, 2, 16, True) == pytest.approx(92_376)


# ---- the generator ----------------------------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def one_thread():
    """Small networks: one thread avoids OpenMP barriers waiting on descheduled threads on a shared CPU
    (this file: ~21 s with one thread, 60-80 s with two, at load 5-6 on 2 cores)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _tiny(channels=3, noise=True, n_blocks=1, seed=0):
    torch.manual_seed(seed)
    g = PosteriorNet(channels, 8, n_blocks, noise=noise).eval()
    nn.init.normal_(g.last.weight, 0, 0.1)   # a trained-like correction (it starts at zero)
    return g


def test_starts_as_the_identity():
    g = PosteriorNet(3, 8, 1).eval()
    y = torch.rand(2, 3, 37, 29)
    with torch.no_grad():
        assert torch.equal(g(y), y)


@pytest.mark.parametrize("channels", [1, 3])
def test_any_size_noise_and_seeds(channels):
    g = _tiny(channels)
    for h, w in ((33, 47), (16, 16), (5, 3), (17, 32)):
        y = torch.rand(2, channels, h, w)
        with torch.no_grad():
            assert g(y).shape == y.shape
    y = torch.rand(1, channels, 21, 19)
    z1, z2 = g.noise(y, torch.Generator().manual_seed(1)), g.noise(y, torch.Generator().manual_seed(2))
    assert z1.shape == (1, g.noise_channels, 21, 19) and g.noise_channels == math.ceil(15 / 16) + 2
    with torch.no_grad():
        assert not torch.equal(g(y, z1), g(y, z2))                                        # Z matters
        assert torch.equal(g(y, z1), g(y, g.noise(y, torch.Generator().manual_seed(1))))   # same seed, same output
    mse = _tiny(channels, noise=False)
    with torch.no_grad():
        assert not mse.stochastic and mse(y).shape == y.shape
    with pytest.raises(ValueError, match="no Z"):
        mse.noise(y)
    with pytest.raises(ValueError, match="z must be"):
        g(y, z1[..., :-1])


def test_every_injected_map_is_used():
    """Each of the 15 n quarter-resolution maps, the half- and the full-resolution map reaches the output."""
    g = _tiny(n_blocks=2)
    for m in g.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, 0, 0.05)
    y = torch.rand(1, 3, 32, 32)
    z = g.noise(y, torch.Generator().manual_seed(0)).requires_grad_(True)
    g(y, z).sum().backward()
    a = g.noise_channels - 2
    quarter = nn.functional.pixel_unshuffle(z.grad[:, :a], 4)[0, :g.n_quarter]
    assert (quarter.abs().flatten(1).sum(1) > 0).all()
    half = nn.functional.pixel_unshuffle(z.grad[:, a:a + 1], 2)[0]
    assert half[0].abs().sum() > 0 and half[1:].abs().sum() == 0    # the first sub-grid only
    assert z.grad[0, a + 1].abs().sum() > 0


@pytest.mark.parametrize("n_blocks", [1, 2])
def test_halo_covers_the_receptive_field(n_blocks):
    """The declared halo >= the receptive field measured with autograd, for the image and for Z."""
    g = _tiny(n_blocks=n_blocks)
    for m in g.modules():   # nonzero weights everywhere, so that every path shows up in the gradient
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, 0, 0.05)
    size = 2 * g.halo + 64
    x = torch.rand(1, 3, size, size, requires_grad=True)
    z = g.noise(x.detach(), torch.Generator().manual_seed(0)).requires_grad_(True)
    c = size // 2
    g(x, z)[0, :, c, c].sum().backward()
    for grad in (x.grad, z.grad):
        touched = (grad[0].abs().sum(0) > 0).nonzero()
        radius = int((touched - c).abs().max())
        assert g.halo - 16 < radius <= g.halo, (radius, g.halo)   # covered, and not grossly over-estimated


def test_restorer_tiles_and_draws_samples():
    g = _tiny(n_blocks=1)
    img = smooth_images(((150, 171),), color=True)[0]
    whole = Restorer(g)([img], qf=10, seed=5, samples=2)[0]
    tiled = Restorer(g, tile=64, max_pixels=64 * 64)([img], qf=10, seed=5, samples=2)[0]
    d = np.abs(whole.astype(int) - tiled.astype(int))
    assert d.max() <= 1 and (d == 0).mean() > 0.999      # float summation order only
    assert whole.shape == (2, 150, 171, 3) and not np.array_equal(whole[0], whole[1])
    assert np.array_equal(whole, Restorer(g)([img], qf=10, seed=5, samples=2)[0])


def test_critic_shapes_and_sizes():
    d = Critic(3, 64, 4)
    assert d(torch.rand(5, 3, 64, 64)).shape == (5, 1)
    with pytest.raises(ValueError, match="multiple of 32"):
        Critic(3, 48, 4)


# ---- the moment penalties (paperlib.losses), against closed forms ---------------------------------------------

def test_first_moment_is_the_error_of_the_sample_mean():
    clean = torch.rand(2, 3, 4, 5)
    offsets = torch.tensor([0.1, 0.3, -0.2, 0.6])                       # K = 4 draws, mean 0.2
    samples = clean[:, None] + offsets.view(1, 4, 1, 1, 1)
    assert losses.first_moment_loss(samples, clean).item() == pytest.approx(0.2 ** 2)
    spread = clean[:, None] + torch.tensor([-1.0, 1.0]).view(1, 2, 1, 1, 1)
    assert losses.first_moment_loss(spread, clean).item() == pytest.approx(0.0, abs=1e-12)   # spread costs nothing
    with pytest.raises(ValueError, match="N x K"):
        losses.first_moment_loss(clean, clean)


def test_second_moment_compares_the_sample_variance_with_the_squared_mmse_error():
    clean = torch.zeros(1, 1, 2, 2)
    mmse = torch.full((1, 1, 2, 2), 0.5)                                # (X - X̄)^2 = 0.25 everywhere
    samples = torch.tensor([0.0, 1.0]).view(1, 2, 1, 1, 1).expand(1, 2, 1, 2, 2)   # unbiased variance 0.5
    assert losses.second_moment_loss(samples, clean, mmse).item() == pytest.approx(0.25)
    match = torch.tensor([0.0, math.sqrt(0.5)]).view(1, 2, 1, 1, 1).expand(1, 2, 1, 2, 2)   # variance 0.25
    assert losses.second_moment_loss(match, clean, mmse).item() == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="mmse"):
        losses.second_moment_loss(samples, clean, mmse[..., :1])


# ---- the recipe (smoke budget) ----------------------------------------------------------------------------------

def test_names_and_losses():
    assert default_name() == "posterior-color" and default_name("mse") == "posterior-color-mse"
    assert default_name("posterior", 5, "-c0.1") == "posterior-color-q5-c0.1"
    assert Losses().gan == 1e-3 and Losses().consistency == 1.0 and Losses().second_moment == 1e3
    with pytest.raises(ValueError, match="MMSE"):
        train_posterior("posterior", smooth_images(color=True), "unused", "smoke")


@pytest.mark.isa
def test_smoke_training_publish_load_restore(tmp_path):
    imgs = smooth_images(((48, 56), (40, 64), (64, 48)), color=True)
    b = BUDGETS["smoke"]
    mse = train_posterior("mse", imgs, tmp_path / "mse", "smoke", val_images=imgs[:1], sources=["synthetic"],
                          progress=False)
    assert mse.finished and mse.step == b.mse_steps and "val_psnr" in mse.log[-1]
    res = train_posterior("posterior", imgs, tmp_path / "ours", "smoke", mmse=tmp_path / "mse" / "posterior_fp16.pt",
                          val_images=imgs[:1], sources=["synthetic"], progress=False)
    assert res.finished and res.step == b.steps
    for r in res.log:   # every term of "Ours" was computed, finite
        assert all(np.isfinite(r[k]) for k in ("gan", "consistency", "first_moment", "second_moment", "perceptual",
                                                "d", "r1"))
    assert "val_z_effect" in res.log[-1] and "val_consistency_rmse" in res.log[-1]
    m = json.loads((tmp_path / "ours" / "manifest.json").read_text())
    assert m["kind"] == "posterior" and m["qf"] == [5, 50] and m["losses"]["second_moment"] == 1e3
    assert m["mmse"].startswith("posterior_fp16.pt")
    from paperlib import weights  # the manifest names the feature network; the stand-in only without VGG-19
    assert ("NOT pretrained" in m["perceptual_features"]) == (weights.status("vgg19")[0] is None)
    # the export is the EMA generator, not the last iterate
    exported = load_posterior(tmp_path / "ours" / "posterior_fp16.pt")
    state = torch.load(tmp_path / "ours" / "checkpoint.pt", weights_only=True)["models"]
    for k, v in exported.state_dict().items():
        assert torch.allclose(v, state["G_ema"][k].half().float())
    assert not all(torch.equal(state["G"][k], state["G_ema"][k]) for k in state["G"])
    for run, name in ((tmp_path / "ours", default_name()), (tmp_path / "mse", default_name("mse"))):
        ckpt.publish(run, name, weights="posterior_fp16.pt", dest=tmp_path / "zoo")
        net = models.load(tmp_path / "zoo" / f"{name}.pt")
        assert net.stochastic == (name == default_name())
        out = Restorer(net)([imgs[0]], qf=10, seed=0, samples=2 if net.stochastic else None)[0]
        assert out.shape == ((2,) if net.stochastic else ()) + imgs[0].shape


@pytest.mark.parametrize("channels_last", [False, True])
def test_evaluation_forward_is_the_training_forward(channels_last):
    """Without a gradient the generator activates its convolutions' outputs in place: the same output, bit for bit,
    as the forward that training differentiates."""
    g = _tiny(n_blocks=2)
    for m in g.modules():   # nonzero weights everywhere (the last layer starts at zero)
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, 0, 0.05)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    g = g.to(memory_format=fmt)
    y = torch.rand(2, 3, 40, 36).contiguous(memory_format=fmt)
    z = g.noise(y, torch.Generator().manual_seed(3))
    trained = g(y, z)
    assert trained.requires_grad
    with torch.inference_mode():
        assert torch.equal(g(y, z), trained.detach())
