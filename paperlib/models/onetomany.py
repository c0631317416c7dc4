"""One-to-Many (Guo & Chao, CVPR 2017): the proposal component F(Y; Z), the critic D, the measurement losses.

Proposal component (Sec. 3.2, Fig. 3). A Y branch and a Z branch, each a stride-2 4x4
convolution down to half resolution followed by 5 residual units; their outputs
concatenated; an aggregation sub-network of 10 residual units; a stride-2 4x4 transposed
convolution back to full size followed by "shift-and-average" (Sec. 3.2.2); a last 3x3
convolution to the image's channels. 64 filters everywhere but the last layer. Residual
units are He et al. 2016b's pre-activation variant (BN-ReLU-conv-BN-ReLU-conv, plus the
identity). Z ~ N(0, 1) per pixel, one channel at the image's size, drawn per call.

Choices where the paper is silent (stated here and in the notebook):

* the 128 concatenated channels are brought to 64 by a 3x3 convolution before the
  aggregation units (identity shortcuts need equal widths; Fig. 3 draws a convolution there);
* the aggregation units end with BN-ReLU (a pre-activation stack is closed that way,
  He et al. 2016b), then come the up-sampling and the last convolution;
* the network predicts a correction added to Y (a global residual), as this project's
  other restorers do; the paper does not say. Without it a short CPU budget spends its
  steps learning the identity (CAS-CNN's curve shows how long that takes). He et al.'s
  uniform initialiser everywhere (the paper's), except the last convolution, which starts
  at zero so that F starts as the identity;
* odd sizes: the input is padded (replicate) to even sides and the output cropped back,
  so F works at any H x W; the 8x8 JPEG grid stays aligned (padding at bottom/right);
* shift-and-average shifts with edge replication (the first row/column averages with
  itself), so a constant image stays constant everywhere, borders included.

"Baseline" (Sec. 4.1): the same network without the Z branch, trained with per-pixel L2.

Critic D (Table 1 and its footnote): 4 units of a stride-1 and a stride-2 4x4 convolution
(64, 128, 256, 512 filters), batch norm + LeakyReLU(0.2) after every convolution but the
last, then logistic regression on the last unit's 512-channel maps (a linear layer to one
logit; ``gan.critic_loss`` / ``gan.generator_loss`` apply the logistic function). The
linear layer fixes the patch size D sees (``patch``, a multiple of 16). Stride-1 4x4
convolutions keep the size (zero padding 1 at the top/left, 2 at the bottom/right), stride-2 ones pad 1.

Measurement losses (Sec. 3.3, Eq. 7): L = L_percept + lambda_1 L_natural + lambda_2 L_jpeg.
``perceptual_loss``: Eq. 1, the mean squared difference of VGG features (``paperlib.features``;
the paper's "16-layer VGGNet ... relu5_4" does not exist, see the notebook). L_natural
= -log D(X^) = ``gan.generator_loss``. L_jpeg = ``losses.jpeg_loss`` (Eq. 6) on the [0, 1]
scale the networks work in (the 8-bit-level loss / 255^2), zero for patches off the 8x8 grid.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..features import load_features  # VGG-19 relu5_4, or the labelled stand-in

__all__ = ["ResUnit", "shift_and_average", "ProposalNet", "Critic", "perceptual_loss", "WIDTH", "Budget",
           "BUDGETS", "KINDS", "Losses", "TRAIN_SETS", "VAL_SETS", "PERCEPTUAL_LAYER", "get_budget",
           "diversity_term", "load_features", "make_step_fn", "make_val_fn", "default_name", "train_onetomany",
           "load_onetomany"]

WIDTH = 64


def he_uniform_(module: nn.Module) -> None:
    """He et al.'s uniform initialiser (the paper's) on every convolution and linear layer; biases zero."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class ResUnit(nn.Module):
    """He et al. 2016b: x + conv(ReLU(BN(conv(ReLU(BN(x)))))), 3x3 convolutions."""

    def __init__(self, width: int = WIDTH):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(width), nn.Conv2d(width, width, 3, padding=1)
        self.bn2, self.conv2 = nn.BatchNorm2d(width), nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x):
        return x + self.conv2(F.relu(self.bn2(self.conv1(F.relu(self.bn1(x))))))


def shift_and_average(x: torch.Tensor) -> torch.Tensor:
    """Sec. 3.2.2: the mean of ``x`` and its copies shifted right, down, and right+down by one pixel."""
    p = F.pad(x, (1, 0, 1, 0), mode="replicate")   # one row on top, one column on the left, copied
    return (p[..., 1:, 1:] + p[..., 1:, :-1] + p[..., :-1, 1:] + p[..., :-1, :-1]) / 4


def _branch(c_in: int, width: int, units: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, width, 4, stride=2, padding=1), *[ResUnit(width) for _ in range(units)])


class ProposalNet(nn.Module):
    """F(Y; Z) (``noise=True``) or the Baseline F(Y) (``noise=False``). ``forward(y[, z])``, y in [0, 1]."""

    uses_tables = False   # what paperlib.restorer needs to know (with channels and stochastic)

    def __init__(self, channels: int = 1, noise: bool = True, shift_average: bool = True, width: int = WIDTH,
                 branch_units: int = 5, aggregation_units: int = 10):
        super().__init__()
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 (gray) or 3 (RGB), got {channels}")
        self.kwargs = {"channels": channels, "noise": noise, "shift_average": shift_average, "width": width,
                       "branch_units": branch_units, "aggregation_units": aggregation_units}
        self.channels, self.stochastic, self.shift_average = channels, bool(noise), shift_average
        # tiling (paperlib.restorer): receptive-field radius in pixels (3x3 convolutions at half resolution, the
        # 4x4 down/up-sampling, shift-and-average and the last convolution) and the grid tiles start on
        self.halo = 2 * (2 * branch_units + 2 * aggregation_units + (1 if noise else 0)) + 8
        self.grid = 8
        self.y_branch = _branch(channels, width, branch_units)
        self.z_branch = _branch(1, width, branch_units) if noise else None
        self.merge = nn.Conv2d(2 * width, width, 3, padding=1) if noise else None
        self.aggregation = nn.Sequential(*[ResUnit(width) for _ in range(aggregation_units)],
                                         nn.BatchNorm2d(width), nn.ReLU())
        self.up = nn.ConvTranspose2d(width, width, 4, stride=2, padding=1)
        self.last = nn.Conv2d(width, channels, 3, padding=1)
        he_uniform_(self)
        nn.init.zeros_(self.last.weight)   # the correction starts at 0: F starts as the identity on Y

    def noise(self, y: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Z ~ N(0, 1): one channel at ``y``'s size (drawn on the CPU from ``generator``, then moved)."""
        n, _, h, w = y.shape
        return torch.randn(n, 1, h, w, generator=generator).to(y.device, y.dtype)

    def forward(self, y: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        n, c, h, w = y.shape
        if c != self.channels:
            raise ValueError(f"this network takes {self.channels}-channel images, got {c}")
        ph, pw = h % 2, w % 2
        yp = F.pad(y, (0, pw, 0, ph), mode="replicate") if ph or pw else y
        f = self.y_branch(yp)
        if self.stochastic:
            if z is None:
                z = self.noise(y)   # torch's global RNG (the training loop reseeds it every step)
            if z.shape[-2:] != (h, w):
                raise ValueError(f"z must be N x 1 x {h} x {w}, got {tuple(z.shape)}")
            zp = F.pad(z, (0, pw, 0, ph), mode="replicate") if ph or pw else z
            f = self.merge(torch.cat([f, self.z_branch(zp.to(yp.dtype))], 1))
        u = self.up(self.aggregation(f))
        if self.shift_average:
            u = shift_and_average(u)
        return (yp + self.last(F.relu(u)).to(yp.dtype))[..., :h, :w]


class Critic(nn.Module):
    """D of Table 1 on ``patch`` x ``patch`` inputs in [0, 1]; returns one logit per image."""

    def __init__(self, channels: int = 1, patch: int = 48, widths=(64, 128, 256, 512)):
        super().__init__()
        if patch % 16:
            raise ValueError(f"the critic's patch must be a multiple of 16 (four stride-2 layers), got {patch}")
        self.kwargs = {"channels": channels, "patch": patch, "widths": tuple(widths)}
        layers, c = [], channels
        for k, w in enumerate(widths):
            layers += [nn.ZeroPad2d((1, 2, 1, 2)), nn.Conv2d(c, w, 4), nn.BatchNorm2d(w), nn.LeakyReLU(0.2),
                       nn.Conv2d(w, w, 4, stride=2, padding=1)]
            if k < len(widths) - 1:   # "every convolutional layer except the last"
                layers += [nn.BatchNorm2d(w), nn.LeakyReLU(0.2)]
            c = w
        self.convs = nn.Sequential(*layers)
        self.classifier = nn.Linear(c * (patch // 16) ** 2, 1)   # logistic regression (sigmoid in the loss)
        he_uniform_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.convs(x).flatten(1))


def perceptual_loss(features, restored: torch.Tensor, clean: torch.Tensor, layer: str) -> torch.Tensor:
    """Eq. 1: ``||phi(X^) - phi(X)||^2 / H_phi`` (the mean over feature values) at ``layer`` of ``features``."""
    with torch.no_grad():
        target = features(clean)[layer]
    return F.mse_loss(features(restored)[layer].float(), target.float())


# ---------------------------------------------------------------------------------------------
# Training recipe (Sec. 3.4 and 4): Adam 1e-4, beta1 0.5, batch 16, He-uniform init, 3 epochs;
# D is neither trained nor used in the first epoch; then alternate D (Eq. 3) and F (Eq. 7) updates.

@dataclass(frozen=True)
class Budget:
    name: str
    steps: int
    critic_start: int            # first step that trains and uses D (the paper: after the first epoch)
    crop: int = 48               # square training patches (Fig. 3 draws 48 -> 24); a multiple of 16 for D
    batch: int = 16
    lr: float = 1e-4
    beta1: float = 0.5
    bf16: bool | str = "auto"    # bf16 autocast where the device computes it natively (paperlib.machine)
    channels_last: bool = True
    val_every: int = 0
    ckpt_every: int = 0
    n_val: int = 16              # validation crops (of ``crop``), BSDS500 val


BUDGETS = {
    # CI: a few steps on tiny crops, seconds.
    "smoke": Budget("smoke", steps=4, critic_start=2, crop=16, batch=2, val_every=2, ckpt_every=2, n_val=2),
    # A 2-core CPU: about a tenth of an ImageNet epoch of patches per network (see the notebook's networks table).
    "cpu": Budget("cpu", steps=3000, critic_start=1000, val_every=250, ckpt_every=250, n_val=32),
    # The paper: 3 epochs of ImageNet (1.28 M images, one patch each per epoch) at batch 16.
    "paper": Budget("paper", steps=240_000, critic_start=80_000, val_every=5000, ckpt_every=5000, n_val=256),
}

KINDS = ("baseline", "onetomany")
TRAIN_SETS = ("bsds500:train", "imagenet-sample-1000")   # the paper: ImageNet (not available here)
VAL_SETS = ("bsds500:val",)                              # as the paper; BSDS500 test and Set14 are test sets
PERCEPTUAL_LAYER = "relu5_4"                              # of VGG-19 (the notebook says why)


@dataclass(frozen=True)
class Losses:
    """Eq. 7's weights and the switches of Fig. 8's ablations (and one addition beyond the paper)."""
    natural: float = 0.1         # lambda_1
    jpeg: float = 0.1            # lambda_2 (for 8x8-aligned patches; 0 otherwise)
    percept_layer: str = PERCEPTUAL_LAYER
    diversity: float = 0.0       # NOT in the paper: Yang et al. 2019's diversity-sensitive term (see ``diversity_term``)
    diversity_tau: float = 1.0   # its clip (in units of the output/noise distance ratio)


def get_budget(budget) -> Budget:
    from ..train import pick_budget
    return pick_budget(budget, BUDGETS)


def diversity_term(g, jpg: torch.Tensor, tau: float) -> torch.Tensor:
    """Yang et al. (ICLR 2019), diversity-sensitive cGAN: -min(E|F(Y;Z1) - F(Y;Z2)| / E|Z1 - Z2|, tau).

    Minimising it pushes two samples of one input apart, in proportion to how far apart their
    noises are, up to ``tau``; it counters the generator's tendency to ignore Z.
    """
    z1, z2 = g.noise(jpg), g.noise(jpg)
    ratio = (g(jpg, z1) - g(jpg, z2)).abs().mean() / (z1 - z2).abs().mean()
    return -torch.clamp(ratio, max=tau)


def make_step_fn(kind: str, b: Budget, losses: Losses = Losses(), features=None):
    """Baseline: per-pixel L2. One-to-Many: D then F updates (Eq. 3, Eq. 7), D from ``b.critic_start`` on."""
    from .. import gan
    from ..losses import jpeg_loss

    def baseline(models, optimizers, batch, step, ctx):
        jpg, clean, _ = batch
        with ctx.autocast():
            out = models["G"](jpg)
        loss = F.mse_loss(out.float(), clean)
        ctx.update(loss, "G")
        return {"loss": loss.item()}

    def onetomany(models, optimizers, batch, step, ctx):
        jpg, clean, tables = batch
        g, d = models["G"], models["D"]
        use_d = step >= b.critic_start and losses.natural > 0
        logs = {}
        if use_d:   # 1. fix F, optimise D with Eq. 3 (binary cross-entropy)
            with torch.no_grad(), ctx.autocast():
                fake = g(jpg)
            with ctx.autocast():
                loss_d = gan.critic_loss(d(clean), d(fake.float()))
            ctx.update(loss_d, "D")
            logs["d"] = loss_d.item()
        with ctx.autocast():   # 2. fix D, optimise F with Eq. 7
            out = g(jpg)
        out = out.float()
        percept = perceptual_loss(features, out, clean, losses.percept_layer)
        loss = percept
        logs["percept"] = percept.item()
        if use_d:
            with ctx.autocast():
                natural = gan.generator_loss(d(out))
            loss = loss + losses.natural * natural
            logs["natural"] = natural.item()
        if losses.jpeg:   # patches are cut before compression: their grid is the JPEG's (lambda_2 applies)
            l_jpeg = jpeg_loss(out * 255.0, jpg * 255.0, tables) / 255.0 ** 2
            loss = loss + losses.jpeg * l_jpeg
            logs["jpeg"] = l_jpeg.item()
        if losses.diversity:
            div = diversity_term(g, jpg, losses.diversity_tau)
            loss = loss + losses.diversity * div
            logs["diversity"] = -div.item()
        ctx.update(loss, "G")
        logs["loss"] = loss.item()
        return logs

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return baseline if kind == "baseline" else onetomany


def make_val_fn(val_set, kind: str, seeds=(0, 1)):
    """Validation on fixed crops: PSNR/IPSNR of a sample (seed 0) and, for One-to-Many, how much Z matters:
    the mean absolute difference between the samples of two seeds, in gray levels."""
    import math

    from .. import gan
    jpeg_se = sum(float(((j - c) ** 2).sum()) for j, c, _ in val_set)
    n_px = sum(c.numel() for _, c, _ in val_set)

    def val_fn(models):
        g = models["G"]
        dev = next(g.parameters()).device
        se, diff = 0.0, 0.0
        for j, c, _ in val_set:
            j, c = j.to(dev), c.to(dev)
            outs = []
            for s in (seeds if kind == "onetomany" else seeds[:1]):
                with gan.seeded(s):
                    outs.append(g(j).float().clamp(0, 1))
            se += float(((outs[0] - c) ** 2).sum())
            if len(outs) > 1:
                diff += float((outs[0] - outs[1]).abs().sum()) * 255.0
        mse = se / n_px
        out = {"mse": mse, "psnr": 10 * math.log10(1 / mse) if mse > 0 else math.inf,
               "ipsnr": 10 * math.log10(jpeg_se / se) if se > 0 else math.inf}
        if kind == "onetomany":
            out["z_effect"] = diff / n_px
        return out

    return val_fn


def default_name(kind: str, color: bool, qf: int, suffix: str = "") -> str:
    """``onetomany-baseline-gray-q10``, ``onetomany-gray-q5``, ``onetomany-color-q5`` (+ an ablation suffix)."""
    return f"onetomany{'-baseline' if kind == 'baseline' else ''}-{'color' if color else 'gray'}-q{qf}{suffix}"


def train_onetomany(kind: str, qf: int, train_images, out_dir, budget="cpu", *, losses: Losses = Losses(),
                    shift_average: bool = True, val_images=None, sources=(), seed: int = 0,
                    stop_at_step: int | None = None, time_budget_s: float | None = None, resume: bool = True,
                    progress: bool = True, device: str = "cpu", features=None, **overrides):
    """Train (or resume) the Baseline or One-to-Many at one QF; returns ``train.TrainResult``.

    train_images: HxW gray or HxWx3 RGB uint8 arrays. ``losses``: Eq. 7's weights and switches
    (Fig. 8's ablations: ``Losses(natural=0, jpeg=0)`` is L_percept alone). ``features``: the
    L_percept network (default ``load_features``: real VGG-19 weights, else the labelled stand-in).
    Writes checkpoint.pt, manifest.json, log.csv and, when finished, ``onetomany_fp16.pt``.
    """
    import numpy as np

    from .. import checkpoint as ckpt
    from ..patches import PatchSampler, build_val_set
    from ..train import TrainConfig, check_resume, data_manifest, init_distributed, train

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    b = replace(get_budget(budget), **overrides) if overrides else get_budget(budget)
    rank, world = init_distributed(device)
    color = np.asarray(train_images[0]).ndim == 3
    torch.manual_seed(seed)
    g = ProposalNet(3 if color else 1, noise=kind == "onetomany", shift_average=shift_average)
    models = {"G": g}
    optimizers = {"G": torch.optim.Adam(g.parameters(), lr=b.lr, betas=(b.beta1, 0.999))}
    label = None
    if kind == "onetomany":
        models["D"] = Critic(3 if color else 1, patch=b.crop)
        optimizers["D"] = torch.optim.Adam(models["D"].parameters(), lr=b.lr, betas=(b.beta1, 0.999))
        features = features if features is not None else load_features(losses.percept_layer, device)
        label = features.weights_label
    sampler = PatchSampler(train_images, b.crop, b.batch, qf, seed=seed, rank=rank, world_size=world,
                           with_tables=True)
    val_fn = None
    if val_images is not None and len(val_images) and b.n_val:
        val_fn = make_val_fn(build_val_set(val_images, qf, crop=b.crop, n=b.n_val, seed=seed, with_tables=True),
                             kind)
    cfg = TrainConfig(out_dir=str(out_dir), steps=b.steps, channels_last=b.channels_last, bf16=b.bf16,
                      val_every=b.val_every, ckpt_every=b.ckpt_every, seed=seed, stop_at_step=stop_at_step,
                      time_budget_s=time_budget_s, resume=resume, progress=progress, device=device,
                      ddp_find_unused=True)
    manifest = {"recipe": "onetomany", "kind": kind, "color": color, "budget": b.name, "budget_config": asdict(b),
                "qf": qf, "losses": asdict(losses) if kind == "onetomany" else {"l2": 1.0},
                "shift_average": shift_average, "perceptual_features": label,
                "model": {"arch": "OneToMany", "kwargs": g.kwargs, "params": sum(p.numel() for p in g.parameters()),
                          "critic_params": sum(p.numel() for p in models["D"].parameters()) if "D" in models else 0},
                "data": data_manifest(sources, sampler, val_images)}
    check_resume(out_dir, resume, kind=kind, color=color, qf=qf, budget=b.name,
                 losses=manifest["losses"], shift_average=shift_average)
    result = train(cfg, models, optimizers, make_step_fn(kind, b, losses, features), sampler.batch,
                   val_fn=val_fn, manifest=manifest)
    if result.finished and rank == 0:
        ckpt.export_fp16(g.state_dict(), Path(out_dir) / "onetomany_fp16.pt",
                         {"arch": "OneToMany", "kwargs": g.kwargs, "qf": qf, "budget": b.name, "steps": result.step,
                          "data": list(sources), "perceptual_features": label, "kind": kind,
                          "losses": manifest["losses"], "shift_average": shift_average,
                          "checkpoint_sha256": result.manifest.get("checkpoint_sha256")})
    return result


def load_onetomany(path, device="cpu") -> ProposalNet:
    """A ProposalNet (float32, eval mode) from an ``export_fp16`` file or a training checkpoint + manifest."""
    from .. import checkpoint as ckpt
    return ckpt.load_model(path, "G", ProposalNet, device)


def _main(argv=None):
    """``python -m paperlib.models.onetomany --kind onetomany --gray --qf 5 --budget cpu --out DIR [--publish]``.

    Calling it again with the same ``--out`` resumes the run.
    """
    import argparse

    from .. import checkpoint as ckpt
    from .. import data
    from ..train import add_run_arguments

    ap = argparse.ArgumentParser(description=_main.__doc__)
    ap.add_argument("--kind", required=True, choices=KINDS)
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--color", action="store_true", help="RGB network")
    mode.add_argument("--gray", action="store_true", help="luma network (gray protocol)")
    ap.add_argument("--qf", type=int, required=True)
    ap.add_argument("--budget", default="cpu", choices=sorted(BUDGETS))
    ap.add_argument("--no-shift-average", action="store_true", help="Fig. 8a: plain deconvolution")
    ap.add_argument("--natural", type=float, default=Losses.natural, help="lambda_1 (0: no D, Fig. 8b)")
    ap.add_argument("--jpeg", type=float, default=Losses.jpeg, help="lambda_2 (0: no L_jpeg, Figs. 8b-c)")
    ap.add_argument("--diversity", type=float, default=0.0, help="diversity-sensitive term (not in the paper)")
    add_run_arguments(ap, TRAIN_SETS, VAL_SETS)
    ap.add_argument("--publish", nargs="?", const="", default=None, metavar="NAME",
                    help="when finished, copy to checkpoints/ as NAME (default: onetomany-gray-q5 style)")
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)

    b = get_budget(a.budget)
    over = {"steps": a.steps, "critic_start": min(b.critic_start, a.steps)} if a.steps else {}

    def load(specs):
        return (data.gray_images if a.gray else data.rgb_images)(specs, a.data_root, min_side=b.crop)

    train_images, small = load(a.train)
    if small:
        print(f"skipped {small} training image(s) smaller than the {b.crop}x{b.crop} crop")
    val_images, _ = load(a.val) if a.val else ([], 0)
    losses = Losses(natural=a.natural, jpeg=a.jpeg, diversity=a.diversity)
    res = train_onetomany(a.kind, a.qf, train_images, a.out, a.budget, losses=losses,
                          shift_average=not a.no_shift_average, val_images=val_images or None,
                          sources=list(a.train), seed=a.seed, time_budget_s=a.time_budget,
                          progress=not a.no_progress, device=a.device, **over)
    if not res.manifest:
        return res
    print(f"step {res.step}/{res.manifest['steps_total']}, finished={res.finished}, "
          f"wall {res.wall_time_s:.0f}s (all chunks), out {res.out_dir}")
    if a.publish is not None and res.finished:
        name = a.publish or default_name(a.kind, bool(a.color), a.qf)
        print("published", ckpt.publish(a.out, name, weights="onetomany_fp16.pt"))
    return res


if __name__ == "__main__":
    from ..train import run_main
    run_main(_main)
