"""GAN pieces (paperlib.gan) and a toy whose posterior is known exactly: the machinery learns a posterior, not a mean.

The toy (Man et al. 2023's setting in one dimension): X is drawn from a prior with two modes inside
every quantisation cell (modes at c +- 0.5, c in {-2, 0, 2}, sd 0.15; cells of width 2 centred on c), Y is
its quantisation ``2 round(X / 2)``. The posterior p(X | Y = c) is the prior restricted to the cell:
bimodal, with mean c, where the prior has almost no mass. A conditional generator G(Y, Z) trained in the
project's loop with the non-saturating GAN loss + R1, the consistency penalty C (Eq. 4: squared error between
Y and the quantisation of G, rounding with a straight-through gradient) and the first-moment penalty FM
(Eq. 5: the mean of K samples for one Y against X) must sample that posterior; the same generator trained
with MSE must collapse onto the posterior mean (a point between the modes).
"""
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy import stats

from paperlib import gan
from paperlib.train import TrainConfig, train

# ---- the pieces, against analytic answers -------------------------------------------------------


def test_losses_are_binary_cross_entropy_on_logits():
    zero = torch.zeros(4, 1)
    assert gan.critic_loss(zero, zero).item() == pytest.approx(2 * np.log(2))
    assert gan.generator_loss(zero).item() == pytest.approx(np.log(2))
    real, fake = torch.tensor([[3.0], [-1.0]]), torch.tensor([[0.5], [2.0]])
    bce = F.binary_cross_entropy_with_logits
    want = bce(real, torch.ones_like(real)) + bce(fake, torch.zeros_like(fake))
    assert gan.critic_loss(real, fake).item() == pytest.approx(want.item())
    assert gan.generator_loss(fake).item() == pytest.approx(-torch.log(torch.sigmoid(fake)).mean().item())


def test_r1_penalty_of_a_linear_and_a_quadratic_critic():
    w = torch.tensor([[1.0, -2.0, 0.5]])
    x = torch.randn(5, 3, requires_grad=True)
    assert gan.r1_penalty(x @ w.T, x).item() == pytest.approx((w ** 2).sum().item())   # grad = w everywhere
    x2 = torch.randn(5, 3, requires_grad=True)
    r1 = gan.r1_penalty((x2 ** 2).sum(1, keepdim=True), x2)                              # grad = 2x
    assert r1.item() == pytest.approx((4 * x2.detach() ** 2).sum(1).mean().item())
    assert r1.requires_grad   # trains the critic


def test_ema_update_and_copy():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    ema = gan.ema_copy(net)
    assert not any(p.requires_grad for p in ema.parameters()) and not ema.training
    before = [p.clone() for p in ema.parameters()]
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    net.train()(torch.randn(8, 2))   # moves the batch-norm running statistics
    gan.ema_update(ema, net, 0.9)
    for e, b, p in zip(ema.parameters(), before, net.parameters()):
        assert torch.allclose(e, 0.9 * b + 0.1 * p)
    assert torch.equal(ema[1].running_mean, net[1].running_mean)
    with pytest.raises(ValueError, match="decay"):
        gan.ema_update(ema, net, 1.5)


def test_seeded_draws_repeat_and_leave_the_global_rng_alone():
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    with gan.seeded(1):
        a = torch.randn(4)
    with gan.seeded(1):
        b = torch.randn(4)
    assert torch.equal(a, b)
    assert torch.equal(torch.rand(3), expected)


# ---- the toy posterior ----------------------------------------------------------------------------

STEP, SD = 2.0, 0.15
CELLS = (-2.0, 0.0, 2.0)
MODES = tuple(c + d for c in CELLS for d in (-0.5, 0.5))
K = 8            # samples of Z per Y for the first moment (Man et al.: 8)


def prior(n, rng):
    return rng.choice(MODES, size=n) + SD * rng.standard_normal(n)


def quantize(x):
    return STEP * np.round(x / STEP)


def quantize_st(x):
    """Quantisation with a straight-through gradient (d round / dx = 1), as Man et al.'s differentiable JPEG."""
    return x + (STEP * torch.round(x / STEP) - x).detach()


def mlp(n_in, hidden=32):
    return nn.Sequential(nn.Linear(n_in, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
                         nn.Linear(hidden, 1))


class Generator(nn.Module):
    """G(Y, Z) = Y + f(Y, Z), Z ~ N(0, 1) drawn from torch's RNG (reseeded by the loop every step)."""

    def __init__(self, stochastic=True):
        super().__init__()
        self.f, self.stochastic = mlp(2), stochastic

    def forward(self, y):
        z = torch.randn_like(y) if self.stochastic else torch.zeros_like(y)
        return y + self.f(torch.cat([y, z], 1))


class Critic(nn.Module):
    def __init__(self):
        super().__init__()
        self.f = mlp(2)

    def forward(self, x, y):
        return self.f(torch.cat([x, y], 1))


def batches(n, seed):
    def batch(step):
        x = prior(n, np.random.default_rng([seed, step]))
        return torch.tensor(x, dtype=torch.float32)[:, None], torch.tensor(quantize(x), dtype=torch.float32)[:, None]
    return batch


def gan_step(models, optimizers, batch, step, ctx, r1_gamma=0.1, ema_decay=0.99):
    x, y = batch
    g, d = models["G"], models["D"]
    x = x.requires_grad_(True)
    real = d(x, y)
    loss_d = gan.critic_loss(real, d(g(y).detach(), y)) + r1_gamma / 2 * gan.r1_penalty(real, x)
    ctx.update(loss_d, "D")
    fake = g(y)
    consistency = F.mse_loss(quantize_st(fake), y)                             # Eq. 4
    n = y.shape[0] // K
    mean_k = g(y[:n].repeat_interleave(K, 0)).view(n, K).mean(1, keepdim=True)
    first_moment = F.mse_loss(mean_k, x[:n].detach())                          # Eq. 5
    loss_g = gan.generator_loss(d(fake, y)) + consistency + first_moment
    ctx.update(loss_g, "G")
    gan.ema_update(models["G_ema"], g, ema_decay)
    return {"d": loss_d.item(), "g": loss_g.item(), "c": consistency.item(), "fm": first_moment.item()}


def mse_step(models, optimizers, batch, step, ctx):
    x, y = batch
    loss = F.mse_loss(models["G"](y), x)
    ctx.update(loss, "G")
    return {"mse": loss.item()}


def fit(tmp_path, kind, steps=2000, seed=0):
    torch.manual_seed(seed)
    g = Generator()   # both take Z; MSE training learns to ignore it
    models = {"G": g}
    opts = {"G": torch.optim.Adam(g.parameters(), 2e-3, betas=(0.0, 0.99))}   # Man et al.'s betas
    if kind == "gan":
        models.update(D=Critic(), G_ema=gan.ema_copy(g))
        opts["D"] = torch.optim.Adam(models["D"].parameters(), 2e-3, betas=(0.0, 0.99))

    def val_fn(m):   # stochastic validation: fixed seeds, apart from the training noise
        y = torch.zeros(256, 1)
        samples = []
        for s in range(3):
            with gan.seeded(s):
                samples.append(m["G_ema" if kind == "gan" else "G"](y))
        return {"std_y0": float(torch.cat(samples).std())}

    cfg = TrainConfig(str(tmp_path / kind), steps=steps, val_every=steps, channels_last=False, bf16=False,
                      prefetch=0, progress=False, seed=seed)
    res = train(cfg, models, opts, gan_step if kind == "gan" else mse_step, batches(128, seed), val_fn=val_fn)
    return res.models["G_ema" if kind == "gan" else "G"].eval(), res


def sample_vs_posterior(g, c, n=4000):
    rng = np.random.default_rng(1)
    x = prior(60 * n, rng)
    posterior = x[quantize(x) == c][:n]
    with gan.seeded(123), torch.no_grad():
        s = g(torch.full((n, 1), c)).numpy()[:, 0]
    return s, posterior


@pytest.fixture
def one_thread():
    """Tiny networks: one thread is 3x faster than two (no parallel-region overhead), and steadier."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_gan_learns_the_posterior_and_mse_its_mean(tmp_path, one_thread):
    g_gan, res = fit(tmp_path, "gan")
    g_mse, _ = fit(tmp_path, "mse")
    assert set(res.models) == {"G", "D", "G_ema"} and "val_std_y0" in res.log[-1]
    for c in CELLS:
        s, post = sample_vs_posterior(g_gan, c)
        assert np.mean(quantize(s) == c) >= 0.99                 # consistent: samples stay in Y's cell
        assert abs(s.mean() - post.mean()) < 0.1                 # the mean approaches the posterior mean
        assert s.std() > 0.75 * post.std()                       # spread like the posterior (sd ~0.52)
        ks = stats.ks_2samp(s, post).statistic
        assert ks < 0.3, (c, ks)   # measured 0.07-0.20 over seeds 0-2 (AVX2 EPYC); the mean alone scores 0.5
        m, _ = sample_vs_posterior(g_mse, c)
        assert abs(m.mean() - post.mean()) < 0.1 and m.std() < 0.05 * post.std()   # MSE: the mean, no spread
        assert stats.ks_2samp(m, post).statistic > 0.45          # a point mass between the modes: KS ~ 0.5
