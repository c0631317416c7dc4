"""JPEG posterior sampling (Man, Ohayon, Adrai & Elad, CVPRW 2023): the generator G(Z, Y), the critic D, the recipe.

Where each fact comes from: **[P]** the paper (the text in ``shared/papers``; its Appendix A with the
architectures and training details is not in that text), **[I]** the project's issue 12, which quotes the
authors' public configuration, **[C]** the authors' public repository ``man-sean/faithful-jpeg-decoding``
(a fork of BasicSR; read for facts through the search tool, no code taken), **[O]** our choice where none of
these says.

Generator G(Z, Y) (``PosteriorNet``): ESRGAN's RRDBNet at scale 1 with noise injection [I]:

* the input (padded at the bottom/right to a multiple of 16 [C], by edge replication [O], so the 8x8 and 16x16
  JPEG grids stay where they are) is pixel-unshuffled by 4 (16 x C channels at a quarter of the resolution)
  [C: ``scale: 1`` in ``rrdbnet_arch.py``], a 3x3 convolution to ``features`` channels (64 [I]);
* ``n_blocks`` (23 [I]) residual-in-residual dense blocks (RRDB): 3 residual dense blocks each, output
  ``x + 0.2 * block(x)`` at both levels; a dense block has 5 3x3 convolutions, the k-th taking the block input
  and the k-1 previous outputs (growth ``features // 2`` = 32 channels [C: ``num_grow_ch`` 32], the 5th back to
  ``features``), LeakyReLU(0.2) after the first four [C];
* noise injection [C: ``noise_injection: true``, ``noise_injection_upsample: true``, type "cat"]: before each of
  the 5 convolutions of every dense block, and before each of the two up-sampling convolutions, one channel
  of N(0, 1) noise times a learned scalar (initialised to 1) is concatenated to the convolution's input;
* a 3x3 convolution closing the trunk, added to the first convolution's output; two steps of nearest
  up-sampling by 2, each followed by a 3x3 convolution and LeakyReLU(0.2); a 3x3 convolution + LeakyReLU and a
  last 3x3 convolution to the image's channels [C].

Z. The authors draw each injected noise map inside the forward pass. Here Z is one tensor drawn up front,
``noise(y)``: N x ``noise_channels`` x H x W of N(0, 1) at the image's own resolution, so that
``paperlib.restorer`` can seed it and cut it into tiles. The quarter-resolution maps (15 per RRDB) are the
pixel-unshuffle (by 4) of its first ``ceil(15 n_blocks / 16)`` channels, the half-resolution map the
pixel-unshuffle (by 2) of the next channel (its first sub-grid), the full-resolution map the last channel:
pixel-unshuffling i.i.d. N(0, 1) gives i.i.d. N(0, 1), so every injected map has the authors' distribution.
Noise is zero in the padding.

Our departures from the authors' network [O], stated wherever results are shown: a global residual (the output is
Y plus the network's correction; the authors' RRDBNet outputs the image directly) and a zero-initialised last
convolution, so that G starts as the identity on Y (with a CPU budget of a few thousand steps, learning the
identity from scratch would use most of them, as this project's CAS-CNN curve shows). Initialisation otherwise as
ESRGAN/BasicSR [C]: Kaiming-normal weights times 0.1 and zero biases in the dense blocks, PyTorch's defaults
elsewhere.

Ours-MSE (``PosteriorNet(noise=False)``): the same network without noise injection [C: the regression config sets
``noise_injection: false``], trained with MSE alone [P Sec. 5; the public DIV2K regression config uses L1 with
Adam 2e-4, betas (0.9, 0.99), EMA 0.999: we keep the paper's MSE and that optimiser].

Critic D (``Critic``): the ResNet discriminator of Mescheder et al. 2018 [P, I], as in the authors' configuration
(``ResNetGANStabilityDiscriminator``, ``size`` 128, ``nfilter`` 48 [I]) [C]: a 3x3 convolution to nf channels, six
stages of two residual blocks (nf -> nf -> 2nf | 2nf -> 4nf | 4nf -> 8nf | 8nf -> 16nf | 16nf | 16nf), 3x3
average pooling with stride 2 and padding 1 between stages (five: 128 -> 4), LeakyReLU(0.2) and a linear layer
from 16nf x (size/32)^2 to one logit. A residual block is ``shortcut(x) + 0.1 * conv(lrelu(conv(lrelu(x))))``,
3x3 convolutions with min(fin, fout) hidden channels, a 1x1 convolution without bias as the shortcut where the
width changes. Unconditional: D sees images only, not Y [C].

Losses (Eq. 8-10), each with a weight in ``Losses`` that switches it off at 0 (Table 1's rows):

* V, the non-saturating GAN loss on logits (``gan.generator_loss`` / ``gan.critic_loss``), weight 1e-3 for G [I]
  ("wgan_softplus" [C]); R1 on real images, ``gamma / 2 * E||grad D||^2``, gamma = 1 [I, C];
* C, Eq. 4 (``losses.consistency_loss``: the differentiable JPEG at each patch's own tables, Pillow's codec, 4:2:0,
  the codec the patches were coded with), weight 1 [I], on the [0, 1] scale (the 8-bit-level loss / 255^2) [O]
  (the public ``JPEGFaithfulnessLoss`` defaults to L1 on [0, 1]: we follow Eq. 4's square);
* FM, Eq. 5 (``losses.first_moment_loss``) from ``fm_samples`` draws of Z for each of the first ``fm_inputs``
  inputs of the batch (8 x 8 [I]), drawn in the same forward pass as the batch [C: ``expand_penalty_batch``],
  weight 1 [I], every step [O] (the public DIV2K config computes it every 8th step with 16 draws);
* P, Eq. 6 (VGG-19 ``relu5_4``, the mean squared difference of features; ``features.load_features``: the real
  weights when they are on the machine, else the labelled stand-in), weight 1 [O: not in the public
  configuration we found];
* SM, Eq. 7 (``losses.second_moment_loss``) on the same K draws, with X̄(Y) from a trained Ours-MSE network
  (``mmse``), weight 10 or 10^3 (Table 1 [P]).

One step [C: ``esrgan_model.py``]: G's update (Eq. 10, D frozen) on the batch and the FM draws, then D's (Eq. 9)
on the real batch and the generated one; then the EMA of G's weights (decay 0.999 [I]; ``cpu``: 0.99 [O], since
after its 700 steps 0.999 would still hold 0.999^700 = 50 % of the initial weights; ``smoke``: 0.5), which is the
network that is validated, exported and evaluated. Adam 1e-4, betas (0, 0.99) for G and D [I]. Patches: ``batch`` crops
of ``crop`` x ``crop`` (32 of 128 x 128 [I]) with a QF drawn per patch from [5, 50] [I], Pillow 4:2:0 (every crop
coded on its own, its grid at its corner: ``patches.PatchSampler``). Not done here [O]: horizontal flips (the
public config flips) and the cosine decay of the learning rate to 1e-7 (the public configs anneal it over the run;
the loop's schedule is step decay, and the ``paper`` budget keeps the rate constant); the paper's adjustment of
lambda_C during training (Appendix A.2, not in the text) is not reproduced: lambda_C is constant.

Budgets: ``paper`` = the configuration above, 500,000 steps [C: the DIV2K configs run 0.5 M iterations; the
ImageNet test config loads ``net_g_490000.pth``]: G 16,844,638 parameters and 2,260,440 FLOPs per pixel (the
noise-free G is ESRGAN's RRDBNet with a 48-channel input convolution), D 51,695,185 parameters. ``cpu`` scales G
down to 32 features and 2 RRDBs (growth 16): 417,507 parameters and 92,376 FLOPs per pixel (2.5 % and 4.1 % of the
paper's); D to 8 base filters on 64 x 64 crops (1,437,689 parameters); the batch to 8 and the moments to 2 inputs
x 4 draws; 700 steps (Ours-MSE 10,000), about an hour each on a shared 2-core CPU (``BUDGETS``' comment has the
measured step times). ``tests/test_posterior.py`` checks these counts against the layer arithmetic. ``smoke``:
seconds, a pipeline check.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["DenseBlock", "RRDB", "PosteriorNet", "ResBlock", "Critic", "Budget", "BUDGETS", "KINDS", "Losses",
           "TRAIN_SETS", "VAL_SETS", "QF_RANGE", "PERCEPTUAL_LAYER", "get_budget", "make_step_fn", "make_val_fn",
           "default_name", "train_posterior", "load_posterior", "project", "PROJECTION_MARGIN", "PROJECTION_ITERATIONS"]

GRID = 16                 # the input is padded to a multiple of 16: pixel-unshuffle by 4 and the 4:2:0 MCU
INJECTIONS_PER_RRDB = 15  # 3 dense blocks x 5 convolutions
PERCEPTUAL_LAYER = "relu5_4"
QF_RANGE = (5, 50)
PROJECTION_MARGIN = 0.25      # Ours-P: Eq. 11 clamps to +-(0.5 - margin) steps (see ``project``)
PROJECTION_ITERATIONS = 20
PROJECTION_SETTLED = 1e-12    # an image whose real-valued pass moves no value further than this (levels) has settled
PROJECTION_BATCH = 16         # images of a stack projected together: 64 at once run 1.3x slower (float64 temporaries
                              # of 25 MB each for 128x128 RGB crops); the same pixels either way


def _lrelu(x):
    return F.leaky_relu(x, 0.2)


def _lrelu_conv(x):
    """``_lrelu`` of a convolution's fresh output, in place where no gradient is recorded (evaluation): the same
    values without a second full-size tensor (the generator's full-resolution maps are 16 MB at batch 8)."""
    return F.leaky_relu(x, 0.2, inplace=not torch.is_grad_enabled())


class DenseBlock(nn.Module):
    """ESRGAN's residual dense block: 5 densely connected 3x3 convolutions, ``x + 0.2 * out``; noise per conv."""

    def __init__(self, features: int, growth: int, noise: bool):
        super().__init__()
        extra = 1 if noise else 0
        self.convs = nn.ModuleList(nn.Conv2d(features + k * growth + extra, growth if k < 4 else features, 3,
                                             padding=1) for k in range(5))
        self.gain = nn.Parameter(torch.ones(5)) if noise else None   # one learned scale per injected map
        for conv in self.convs:   # BasicSR's default_init_weights(scale=0.1): Kaiming normal (fan_in) x 0.1, bias 0
            nn.init.normal_(conv.weight, 0.0, 0.1 * math.sqrt(2.0 / (conv.in_channels * 9)))
            nn.init.zeros_(conv.bias)

    def forward(self, x, z=None):
        feats = [x]
        for k, conv in enumerate(self.convs):
            noise = [] if self.gain is None else [self.gain[k] * z[:, k:k + 1]]
            out = conv(torch.cat(feats + noise, 1))   # one copy of the features and the noise map together
            if k < 4:
                feats.append(_lrelu_conv(out))
        return x + 0.2 * out


class RRDB(nn.Module):
    """Residual in residual dense block: 3 dense blocks, ``x + 0.2 * blocks(x)``; z: N x 15 x h x w."""

    def __init__(self, features: int, growth: int, noise: bool):
        super().__init__()
        self.blocks = nn.ModuleList(DenseBlock(features, growth, noise) for _ in range(3))

    def forward(self, x, z=None):
        out = x
        for i, block in enumerate(self.blocks):
            out = block(out, None if z is None else z[:, 5 * i:5 * i + 5])
        return x + 0.2 * out


class PosteriorNet(nn.Module):
    """G(Z, Y) (``noise=True``) or Ours-MSE's X̄(Y) (``noise=False``); ``forward(y[, z])``, y in [0, 1]."""

    uses_tables = False   # what paperlib.restorer needs to know (with channels, stochastic, halo, grid)

    def __init__(self, channels: int = 3, features: int = 64, n_blocks: int = 23, growth: int | None = None,
                 noise: bool = True):
        super().__init__()
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 (gray) or 3 (RGB), got {channels}")
        if n_blocks < 1 or features < 2:
            raise ValueError(f"need n_blocks >= 1 and features >= 2, got {n_blocks}, {features}")
        growth = features // 2 if growth is None else int(growth)
        self.kwargs = {"channels": channels, "features": features, "n_blocks": n_blocks, "growth": growth,
                       "noise": bool(noise)}
        self.channels, self.stochastic = channels, bool(noise)
        self.n_quarter = INJECTIONS_PER_RRDB * n_blocks
        self.noise_channels = math.ceil(self.n_quarter / 16) + 2 if noise else 0
        # tiling (paperlib.restorer): 15 n + 2 convolutions at quarter resolution (first, 5 per dense block on the
        # longest path, the trunk's last), so 4 (15 n + 2) pixels, plus the up-sampling path and the 4x4 cells: see
        # the bound in tests/test_posterior.py (checked against autograd)
        self.halo = 4 * (INJECTIONS_PER_RRDB * n_blocks + 2) + 8
        self.grid = GRID
        extra = 1 if noise else 0
        self.first = nn.Conv2d(16 * channels, features, 3, padding=1)
        self.trunk = nn.ModuleList(RRDB(features, growth, noise) for _ in range(n_blocks))
        self.trunk_last = nn.Conv2d(features, features, 3, padding=1)
        self.up1 = nn.Conv2d(features + extra, features, 3, padding=1)
        self.up2 = nn.Conv2d(features + extra, features, 3, padding=1)
        self.up_gain = nn.Parameter(torch.ones(2)) if noise else None
        self.hr = nn.Conv2d(features, features, 3, padding=1)
        self.last = nn.Conv2d(features, channels, 3, padding=1)
        nn.init.zeros_(self.last.weight)   # [O] G starts as the identity on Y (see the module doc)
        nn.init.zeros_(self.last.bias)

    def noise(self, y: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Z ~ N(0, 1), N x ``noise_channels`` x H x W (drawn on the CPU from ``generator``, then moved)."""
        if not self.stochastic:
            raise ValueError("Ours-MSE (noise=False) takes no Z")
        n, _, h, w = y.shape
        return torch.randn(n, self.noise_channels, h, w, generator=generator).to(y.device, y.dtype)

    def _noise_maps(self, z, shape, pad):
        n, _, h, w = shape
        if z.shape != (n, self.noise_channels, h, w):
            raise ValueError(f"z must be {n} x {self.noise_channels} x {h} x {w}, got {tuple(z.shape)}")
        z = F.pad(z, pad)   # zeros in the padding
        a = self.noise_channels - 2
        quarter = F.pixel_unshuffle(z[:, :a], 4)[:, :self.n_quarter]
        half = F.pixel_unshuffle(z[:, a:a + 1], 2)[:, :1]
        return quarter, half, z[:, a + 1:a + 2]

    def forward(self, y: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        _, c, h, w = y.shape
        if c != self.channels:
            raise ValueError(f"this network takes {self.channels}-channel images, got {c}")
        pad = (0, (-w) % GRID, 0, (-h) % GRID)
        yp = F.pad(y, pad, mode="replicate") if any(pad) else y
        zq = zh = zf = None
        if self.stochastic:
            if z is None:
                z = self.noise(y)   # torch's global RNG (the training loop reseeds it every step)
            zq, zh, zf = self._noise_maps(z.to(yp.dtype), y.shape, pad)
        elif z is not None:
            raise ValueError("Ours-MSE (noise=False) takes no Z")
        f = self.first(F.pixel_unshuffle(yp, 4))
        if zq is not None and f.is_contiguous(memory_format=torch.channels_last):
            # the noise in the features' layout: concatenating channels_last features with NCHW noise gives NCHW,
            # which every convolution after it copies back (the cpu generator 1.5x slower). One-channel maps are
            # contiguous in both layouts, so they are re-strided explicitly.
            zq, zh, zf = (torch.empty_like(m, memory_format=torch.channels_last).copy_(m) for m in (zq, zh, zf))
        t = f
        for i, block in enumerate(self.trunk):
            t = block(t, None if zq is None else zq[:, INJECTIONS_PER_RRDB * i:INJECTIONS_PER_RRDB * (i + 1)])
        u = f + self.trunk_last(t)
        for conv, k, zmap in ((self.up1, 0, zh), (self.up2, 1, zf)):
            u = F.interpolate(u, scale_factor=2, mode="nearest")
            if zmap is not None:
                u = torch.cat([u, self.up_gain[k] * zmap], 1)
            u = _lrelu_conv(conv(u))
        out = self.last(_lrelu_conv(self.hr(u)))
        return (yp + out.to(yp.dtype))[..., :h, :w]


class ResBlock(nn.Module):
    """Mescheder et al.'s residual block: ``shortcut(x) + 0.1 * conv1(lrelu(conv0(lrelu(x))))``."""

    def __init__(self, fin: int, fout: int):
        super().__init__()
        hidden = min(fin, fout)
        self.conv0 = nn.Conv2d(fin, hidden, 3, padding=1)
        self.conv1 = nn.Conv2d(hidden, fout, 3, padding=1)
        self.shortcut = nn.Conv2d(fin, fout, 1, bias=False) if fin != fout else None

    def forward(self, x):
        s = x if self.shortcut is None else self.shortcut(x)
        return s + 0.1 * self.conv1(_lrelu(self.conv0(_lrelu(x))))


CRITIC_STAGES = ((1, 1, 2), (2, 2, 4), (4, 4, 8), (8, 8, 16), (16, 16, 16), (16, 16, 16))   # widths / nf per stage


class Critic(nn.Module):
    """D on ``size`` x ``size`` images in [0, 1] (size a multiple of 32); one logit per image."""

    def __init__(self, channels: int = 3, size: int = 128, features: int = 48):
        super().__init__()
        if size % 32:
            raise ValueError(f"the critic's size must be a multiple of 32 (five halvings), got {size}")
        self.kwargs = {"channels": channels, "size": size, "features": features}
        nf = features
        self.first = nn.Conv2d(channels, nf, 3, padding=1)
        self.stages = nn.ModuleList(nn.Sequential(ResBlock(a * nf, b * nf), ResBlock(b * nf, c * nf))
                                    for a, b, c in CRITIC_STAGES)
        self.fc = nn.Linear(16 * nf * (size // 32) ** 2, 1)

    def forward(self, x):
        out = self.first(x)
        for i, stage in enumerate(self.stages):
            if i:
                out = F.avg_pool2d(out, 3, stride=2, padding=1)
            out = stage(out)
        return self.fc(_lrelu(out.flatten(1)))


# ---------------------------------------------------------------------------------------------
# The recipe

@dataclass(frozen=True)
class Budget:
    name: str
    steps: int                   # the posterior sampler's
    mse_steps: int               # Ours-MSE's (a step costs a fraction of a GAN step)
    crop: int = 128              # square training patches, a multiple of 32 (the critic's input)
    batch: int = 32
    features: int = 64           # generator width (growth = features // 2)
    n_blocks: int = 23           # RRDBs
    critic_features: int = 48    # D's nf
    fm_inputs: int = 8           # Eq. 5/7: the first fm_inputs inputs of the batch ...
    fm_samples: int = 8          # ... each with fm_samples draws of Z
    lr: float = 1e-4
    betas: tuple = (0.0, 0.99)
    mse_lr: float = 2e-4         # Ours-MSE: the public regression config's Adam
    mse_betas: tuple = (0.9, 0.99)
    ema: float = 0.999
    bf16: bool | str = "auto"    # bf16 autocast where the device computes it natively (paperlib.machine)
    channels_last: bool = True
    val_every: int = 0
    ckpt_every: int = 0
    n_val: int = 16              # validation crops (of ``crop``), VAL_SETS


BUDGETS = {
    # CI: a few steps of a tiny generator on tiny crops, seconds.
    "smoke": Budget("smoke", steps=4, mse_steps=4, crop=32, batch=2, features=8, n_blocks=1, critic_features=4, fm_inputs=1,
                    fm_samples=2, ema=0.5, val_every=2, ckpt_every=2, n_val=2),
    # A 2-core CPU, about an hour per network. Measured on a 2-core AMD EPYC (AVX2) shared with other runs, fp32, one
    # thread, real data: a posterior step with every term of "Ours" 2.0-2.7 s at 1-min load ~3 (4.2-5.7 s at load
    # 5-6), an Ours-MSE step 0.16-0.33 s at load ~3 (~0.3 s at 5-6): 700 steps 25-60 min, 10,000 MSE steps 40-60 min.
    # Two threads took 8-26 s per posterior step at load 5-6 (OpenMP barriers waiting on descheduled threads), so on
    # a shared CPU run it with OMP_NUM_THREADS=1. Each run's manifest records its own machine and rate (``chunks``).
    "cpu": Budget("cpu", steps=700, mse_steps=10_000, crop=64, batch=8, features=32, n_blocks=2, critic_features=8,
                  fm_inputs=2, fm_samples=4, ema=0.99, val_every=100, ckpt_every=50, n_val=16),
    # The authors' configuration (see the module doc).
    "paper": Budget("paper", steps=500_000, mse_steps=500_000, val_every=5000, ckpt_every=5000, n_val=256),
}

KINDS = ("posterior", "mse")
TRAIN_SETS = ("bsds500:train", "bsds500:val", "imagenet-sample-1000")   # the paper: DIV2K + Flickr2K (not here)
VAL_SETS = ("set14",)                                                      # BSDS500 test is the test set


@dataclass(frozen=True)
class Losses:
    """Eq. 8's weights; 0 switches a term off (Table 1's rows). The defaults are "Ours" (Table 1)."""
    gan: float = 1e-3            # V for G
    r1: float = 1.0              # gamma of R1 (D's penalty is gamma / 2 * R1)
    consistency: float = 1.0     # lambda_C (Eq. 4)
    first_moment: float = 1.0    # lambda_FM (Eq. 5)
    perceptual: float = 1.0      # lambda_P (Eq. 6)
    second_moment: float = 1e3   # lambda_SM (Eq. 7)
    percept_layer: str = PERCEPTUAL_LAYER


def get_budget(budget) -> Budget:
    from ..train import pick_budget
    return pick_budget(budget, BUDGETS)


def _set_requires_grad(model, flag: bool) -> None:
    for p in getattr(model, "module", model).parameters():
        p.requires_grad_(flag)


def make_step_fn(kind: str, b: Budget, losses: Losses = Losses(), features=None, mmse=None):
    """Ours-MSE: per-pixel MSE. Posterior: G's update (Eq. 10) with D frozen, then D's (Eq. 9), then the EMA."""
    from .. import gan
    from ..losses import consistency_loss, first_moment_loss, second_moment_loss

    def mse(models, optimizers, batch, step, ctx):
        jpg, clean, _ = batch
        with ctx.autocast():
            out = models["G"](jpg)
        loss = F.mse_loss(out.float(), clean)
        ctx.update(loss, "G")
        gan.ema_update(models["G_ema"], models["G"], b.ema)
        return {"mse": loss.item()}

    def posterior(models, optimizers, batch, step, ctx):
        jpg, clean, tables = batch
        g, d = models["G"], models.get("D")
        n, m, k = jpg.shape[0], min(b.fm_inputs, jpg.shape[0]), b.fm_samples
        moments = losses.first_moment or losses.second_moment
        inputs = torch.cat([jpg, jpg[:m].repeat_interleave(k, 0)]) if moments else jpg
        if d is not None:
            _set_requires_grad(d, False)
        with ctx.autocast():
            out = g(inputs)
        out = out.float()
        fake = out[:n]
        logs, loss = {}, torch.zeros((), device=jpg.device)
        if d is not None:
            with ctx.autocast():
                v = gan.generator_loss(d(fake))
            loss, logs["gan"] = loss + losses.gan * v, v.item()
        if losses.consistency:
            c = consistency_loss(fake * 255.0, jpg * 255.0, tables=tables) / 255.0 ** 2
            loss, logs["consistency"] = loss + losses.consistency * c, c.item()
        if moments:
            samples = out[n:].view(m, k, *out.shape[1:])
            if losses.first_moment:
                fm = first_moment_loss(samples, clean[:m])
                loss, logs["first_moment"] = loss + losses.first_moment * fm, fm.item()
            if losses.second_moment:
                with torch.no_grad():
                    xbar = mmse(jpg[:m]).float()
                sm = second_moment_loss(samples, clean[:m], xbar)
                loss, logs["second_moment"] = loss + losses.second_moment * sm, sm.item()
        if losses.perceptual:
            with torch.no_grad():
                target = features(clean)[losses.percept_layer]
            p = F.mse_loss(features(fake)[losses.percept_layer].float(), target.float())
            loss, logs["perceptual"] = loss + losses.perceptual * p, p.item()
        ctx.update(loss, "G")
        logs["g"] = loss.item()
        if d is not None:   # D on the real batch and the generated one, in one forward pass; R1 on the real half
            _set_requires_grad(d, True)
            real = clean.detach().requires_grad_(losses.r1 > 0)
            with ctx.autocast():
                logits = d(torch.cat([real, fake.detach()])).float()
            loss_d = gan.critic_loss(logits[:n], logits[n:])
            logs["d"] = loss_d.item()
            if losses.r1:
                r1 = gan.r1_penalty(logits[:n], real)
                loss_d = loss_d + losses.r1 / 2 * r1
                logs["r1"] = r1.item()
            ctx.update(loss_d, "D")
        gan.ema_update(models["G_ema"], g, b.ema)
        return logs

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if kind == "posterior" and losses.second_moment and mmse is None:
        raise ValueError("the second-moment penalty (Eq. 7) needs the MMSE estimator X̄(Y): give mmse= (Ours-MSE)")
    if kind == "posterior" and losses.perceptual and features is None:
        raise ValueError("the perceptual loss (Eq. 6) needs a feature network: give features=")
    return mse if kind == "mse" else posterior


def make_val_fn(val_set, kind: str, seeds=(0, 1)):
    """Validation of the EMA generator on fixed crops: PSNR of a sample (seed 0), JPEG consistency RMSE through the
    differentiable codec (gray levels), and for the posterior sampler the mean |sample(seed 0) - sample(seed 1)|."""
    from .. import gan
    from ..losses import consistency_loss
    n_px = sum(c.numel() for _, c, _ in val_set)

    def val_fn(models):
        g = models["G_ema"]
        dev = next(g.parameters()).device
        se, cons, diff = 0.0, 0.0, 0.0
        for j, c, t in val_set:
            j, c, t = j.to(dev), c.to(dev), t.to(dev)
            outs = []
            for s in (seeds if kind == "posterior" else seeds[:1]):
                with gan.seeded(s):
                    outs.append(g(j).float().clamp(0, 1))
            se += float(((outs[0] - c) ** 2).sum())
            cons += float(consistency_loss(outs[0] * 255.0, j * 255.0, tables=t)) * c.numel()
            if len(outs) > 1:
                diff += float((outs[0] - outs[1]).abs().sum()) * 255.0
        mse = se / n_px
        out = {"psnr": 10 * math.log10(1 / mse) if mse > 0 else math.inf, "consistency_rmse": math.sqrt(cons / n_px)}
        if kind == "posterior":
            out["z_effect"] = diff / n_px
        return out

    return val_fn


def default_name(kind: str = "posterior", qf=QF_RANGE, suffix: str = "") -> str:
    """``posterior-color`` (Ours), ``posterior-color-mse`` (Ours-MSE), ``posterior-color-q5`` (+ a suffix)."""
    q = tuple(qf) if isinstance(qf, (tuple, list)) else int(qf)
    name = "posterior-color" + ("-mse" if kind == "mse" else "")
    if q != QF_RANGE:
        name += f"-q{q[0]}-{q[1]}" if isinstance(q, tuple) else f"-q{q}"
    return name + suffix


def _load_mmse(mmse, device):
    """The Ours-MSE network for Eq. 7: a network, a zoo name or an export/checkpoint path; ``(model, label)``."""
    from .. import checkpoint as ckpt
    from .. import zoo
    if mmse is None or isinstance(mmse, nn.Module):
        return mmse, None if mmse is None else "given in memory"
    if str(mmse) in zoo.names():
        net = zoo.load(str(mmse), device=device)
        return net.requires_grad_(False), f"{mmse} (zoo, sha256 {zoo.info(str(mmse))['sha256'][:12]})"
    net = load_posterior(mmse, device)
    return net.requires_grad_(False), f"{Path(mmse).name} (sha256 {ckpt.sha256(mmse)[:12]})"


def train_posterior(kind: str, train_images, out_dir, budget="cpu", *, qf=QF_RANGE, losses: Losses = Losses(),
                    mmse=None, val_images=None, sources=(), seed: int = 0, stop_at_step: int | None = None,
                    time_budget_s: float | None = None, resume: bool = True, progress: bool = True,
                    device: str = "cpu", features=None, **overrides):
    """Train (or resume) the posterior sampler (``kind="posterior"``) or Ours-MSE (``"mse"``); returns ``TrainResult``.

    train_images: HxWx3 uint8 RGB arrays. qf: (low, high) drawn per patch (default [5, 50]) or one QF.
    ``losses``: Eq. 8's weights (Table 1's rows switch terms off). ``mmse``: X̄(Y) for the second moment (an
    Ours-MSE network, zoo name or weights path). ``features``: the perceptual network (default
    ``features.load_features``). ``overrides`` replace budget fields. Writes checkpoint.pt, manifest.json,
    log.csv and, when finished, ``posterior_fp16.pt`` (the EMA generator).
    """
    import numpy as np

    from .. import checkpoint as ckpt
    from .. import gan
    from ..features import load_features
    from ..patches import PatchSampler, build_val_set
    from ..train import TrainConfig, check_resume, data_manifest, init_distributed, train

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    b = replace(get_budget(budget), **overrides) if overrides else get_budget(budget)
    if b.crop % 32:
        raise ValueError(f"crop must be a multiple of 32 (the critic halves it five times), got {b.crop}")
    rank, world = init_distributed(device)
    color = np.asarray(train_images[0]).ndim == 3
    channels = 3 if color else 1
    torch.manual_seed(seed)
    g = PosteriorNet(channels, b.features, b.n_blocks, noise=kind == "posterior")
    models = {"G": g, "G_ema": gan.ema_copy(g)}
    lr, betas = (b.lr, b.betas) if kind == "posterior" else (b.mse_lr, b.mse_betas)
    optimizers = {"G": torch.optim.Adam(g.parameters(), lr=lr, betas=tuple(betas))}
    label, mmse_label = None, None
    if kind == "posterior":
        if losses.gan:
            models["D"] = Critic(channels, b.crop, b.critic_features)
            optimizers["D"] = torch.optim.Adam(models["D"].parameters(), lr=b.lr, betas=tuple(b.betas))
        if losses.perceptual:
            features = features if features is not None else load_features(losses.percept_layer, device)
            label = features.weights_label
        if losses.second_moment:
            if mmse is None:
                raise ValueError("the second-moment penalty (Eq. 7) needs the MMSE estimator X̄(Y): "
                                 "train Ours-MSE first and give mmse= (--mmse)")
            mmse, mmse_label = _load_mmse(mmse, device)
            mmse = mmse.to(device).eval()
    sampler = PatchSampler(train_images, b.crop, b.batch, qf, seed=seed, rank=rank, world_size=world,
                           with_tables=True)
    val_fn = None
    if val_images is not None and len(val_images) and b.n_val:
        val_fn = make_val_fn(build_val_set(val_images, qf, crop=b.crop, n=b.n_val, seed=seed, with_tables=True),
                             kind)
    cfg = TrainConfig(out_dir=str(out_dir), steps=b.steps if kind == "posterior" else b.mse_steps, channels_last=b.channels_last, bf16=b.bf16,
                      val_every=b.val_every, ckpt_every=b.ckpt_every, seed=seed, stop_at_step=stop_at_step,
                      time_budget_s=time_budget_s, resume=resume, progress=progress, device=device,
                      ddp_find_unused=True)
    loss_record = asdict(losses) if kind == "posterior" else {"mse": 1.0}
    manifest = {"recipe": "posterior", "kind": kind, "color": color, "budget": b.name, "budget_config": asdict(b),
                "qf": qf, "losses": loss_record, "perceptual_features": label, "mmse": mmse_label,
                "model": {"arch": "Posterior", "kwargs": g.kwargs, "params": sum(p.numel() for p in g.parameters()),
                          "critic_params": sum(p.numel() for p in models["D"].parameters()) if "D" in models else 0},
                "data": data_manifest(sources, sampler, val_images)}
    check_resume(out_dir, resume, kind=kind, color=color, qf=qf, budget=b.name, losses=loss_record)
    result = train(cfg, models, optimizers, make_step_fn(kind, b, losses, features, mmse), sampler.batch,
                   val_fn=val_fn, manifest=manifest)
    if result.finished and rank == 0:
        ckpt.export_fp16(models["G_ema"].state_dict(), Path(out_dir) / "posterior_fp16.pt",
                         {"arch": "Posterior", "kwargs": g.kwargs, "qf": qf, "budget": b.name, "steps": result.step,
                          "data": list(sources), "kind": kind, "losses": loss_record, "perceptual_features": label,
                          "mmse": mmse_label, "weights": f"EMA of the generator (decay {b.ema:g})",
                          "checkpoint_sha256": result.manifest.get("checkpoint_sha256")})
    return result


def project(images, coefs, margin: float = PROJECTION_MARGIN, iterations: int = PROJECTION_ITERATIONS,
            codec: str = "pillow"):
    """Ours-P (Sec. 4.3): restorations moved onto the quantization cell of their JPEG input, as 8-bit images.

    ``images``: uint8 H x W (gray) or H x W x 3, or a K-stack of them (samples of one input); ``coefs``: the input
    JPEG's ``diffjpeg.JPEGCoefficients`` (``diffjpeg.read_coefficients`` of the file, or ``diffjpeg.encode``).
    Eq. 11 (``diffjpeg.project``) alone leaves coefficients on the cell's boundary, and the 8-bit image is then
    re-quantized to the other side about half the time; values it pushes beyond 0..255 are clipped, which moves
    coefficients out again. So [O]: Eq. 11 with a ``margin`` (clamp to +-(0.5 - margin) steps), alternated
    ``iterations`` times with clipping to 0..255 (projections onto two convex sets that both hold the original
    image), then 3 times with rounding to integers; returned rounded half up and clipped, same shape, uint8.
    An image leaves the alternation once a pass moves none of its values by more than ``PROJECTION_SETTLED`` levels
    (a fixed point: further passes only add float64 rounding, ~1e-14, to values that are then rounded to integers),
    and leaves the rounded passes once one changes nothing (the next would change nothing either). Most restorations
    settle within 2-10 passes; where clipping keeps moving coefficients out of the cell all passes run.
    Measured on 16 BSDS500 test crops (128 x 128, Pillow 4:2:0, QF 5/10/30/50; blurred, noisy and unchanged JPEG
    decodes as stand-in restorations): re-encoded with the input's tables they decode within 0.26 gray levels RMSE
    of the input (mean over images <= 0.04); with the margin but only the 3 rounded passes, up to 0.70; Eq. 11 once
    without a margin, up to 17. The notebook repeats the check on every Ours-P output it writes.
    """
    import numpy as np

    from .. import diffjpeg
    a = np.asarray(images)
    color = len(coefs.blocks) == 3
    if a.dtype != np.uint8 or a.ndim not in ((3, 4) if color else (2, 3)) or (color and a.shape[-1] != 3):
        raise ValueError(f"expected uint8 {'H x W x 3' if color else 'H x W'} image(s) (or a K-stack) for this "
                         f"{'colour' if color else 'gray'} JPEG, got {a.dtype} {a.shape}")
    stack = a.ndim == (4 if color else 3)
    a = a if stack else a[None]
    out = []
    for i in range(0, len(a), PROJECTION_BATCH):
        x = torch.from_numpy(a[i:i + PROJECTION_BATCH].astype(np.float64))
        x = (x.permute(0, 3, 1, 2) if color else x[:, None]).contiguous()
        for passes, rounded, settled in ((iterations, False, PROJECTION_SETTLED), (3, True, 0.0)):
            moving = torch.arange(len(x))
            for _ in range(passes):
                if not len(moving):
                    break
                before = x[moving]
                y = diffjpeg.project(before, coefs, codec, margin=margin)
                y = (torch.floor(y + 0.5) if rounded else y).clamp(0.0, 255.0)
                step = (y - before).abs().amax(dim=(1, 2, 3))
                x[moving] = y
                moving = moving[step > settled]
        out.append((x.permute(0, 2, 3, 1) if color else x[:, 0]).numpy().astype(np.uint8))
    out = np.concatenate(out)
    return out if stack else out[0]


def load_posterior(path, device="cpu") -> PosteriorNet:
    """A PosteriorNet (float32, eval mode) from an ``export_fp16`` file or a training checkpoint (its EMA generator)."""
    from .. import checkpoint as ckpt
    return ckpt.load_model(path, "G_ema", PosteriorNet, device)


def _main(argv=None):
    """``python -m paperlib.models.posterior --kind posterior --budget cpu --out DIR [--mmse NAME] [--publish NAME]``.

    Table 1's rows switch terms off with their weights (``--perceptual 0`` ...); calling it again with the same
    ``--out`` resumes the run.
    """
    import argparse

    from .. import checkpoint as ckpt
    from .. import data
    from ..train import add_run_arguments, parse_qf

    ap = argparse.ArgumentParser(description=_main.__doc__)
    ap.add_argument("--kind", required=True, choices=KINDS, help="posterior (G with Z) or mse (Ours-MSE)")
    ap.add_argument("--qf", type=parse_qf, default=QF_RANGE, help="e.g. 5-50 (default, drawn per patch) or 5")
    ap.add_argument("--budget", default="cpu", choices=sorted(BUDGETS))
    for name, help_ in (("gan", "V's weight for G (0: no critic)"), ("r1", "R1's gamma"),
                        ("consistency", "lambda_C (Eq. 4)"), ("first-moment", "lambda_FM (Eq. 5)"),
                        ("perceptual", "lambda_P (Eq. 6)"), ("second-moment", "lambda_SM (Eq. 7; needs --mmse)")):
        ap.add_argument(f"--{name}", type=float, default=getattr(Losses, name.replace("-", "_")), help=help_)
    ap.add_argument("--mmse", default=None, help="Ours-MSE for Eq. 7: a zoo name or a weights file")
    add_run_arguments(ap, TRAIN_SETS, VAL_SETS)
    ap.add_argument("--publish", nargs="?", const="", default=None, metavar="NAME",
                    help="when finished, copy to checkpoints/ as NAME (default posterior-color style)")
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)
    if a.init_from:
        ap.error("--init-from is not supported by this recipe")

    b = get_budget(a.budget)

    def load(specs):
        return data.rgb_images(specs, a.data_root, min_side=b.crop)

    train_images, small = load(a.train)
    if small:
        print(f"skipped {small} training image(s) smaller than the {b.crop}x{b.crop} crop")
    val_images, _ = load(a.val) if a.val else ([], 0)
    losses = Losses(gan=a.gan, r1=a.r1, consistency=a.consistency, first_moment=a.first_moment,
                    perceptual=a.perceptual, second_moment=a.second_moment)
    over = {"steps": a.steps, "mse_steps": a.steps} if a.steps else {}
    res = train_posterior(a.kind, train_images, a.out, a.budget, qf=a.qf, losses=losses, mmse=a.mmse,
                          val_images=val_images or None, sources=list(a.train), seed=a.seed,
                          time_budget_s=a.time_budget, progress=not a.no_progress, device=a.device, **over)
    if not res.manifest:
        return res
    print(f"step {res.step}/{res.manifest['steps_total']}, finished={res.finished}, "
          f"wall {res.wall_time_s:.0f}s (all chunks), out {res.out_dir}")
    if a.publish is not None and res.finished:
        name = a.publish or default_name(a.kind, a.qf)
        print("published", ckpt.publish(a.out, name, weights="posterior_fp16.pt"))
    return res


if __name__ == "__main__":
    from ..train import run_main
    run_main(_main)
