"""L4 and L8 (Svoboda, Hradis, Barina & Zemcik, WSCG 2016): networks, objectives, training recipe.

Networks (Eq. 1): plain convolutions with a ReLU after every layer but the last.

    L4 (Table 2): 11x11 -> 48, 3x3 -> 64, 3x3 -> 64, 5x5 -> 1                        receptive field 19x19
    L8 (Table 1): 11x11 -> 32, 3x3 -> 64, 3x3 -> 64, 3x3 -> 64 (+32), 1x1 -> 64,
                  5x5 -> 64 (+32), 1x1 -> 128, 5x5 -> 1                             receptive field 25x25

Skip connections of L8 ("concatenating activation of the first layer with
activations of the fourth and sixth layers"; Table 1 prints layers "4(+1)" and
"6(+1)" with "64(+32)" channels): by default (``skip="after"``) the 32
first-layer activations (after their ReLU) are concatenated to the *outputs*
of layers 4 and 6, so layers 5 and 7 see 96 channels. This reading gives
220,064 weights and 440,128 FLOPs per pixel, exactly the paper's "220 K"
parameters and "440 K" FLOPs. The other reading, concatenating into the
*inputs* of layers 4 and 6 (``skip="before"``), gives 283,552 weights and
567,104 FLOPs per pixel: the "≈567 k" of an early prototype (docs/conventions.md)
comes from it, and it matches neither printed number. ``counts(arch, skip)``
gives the analytic numbers. The Conclusions' "20 K" / "100 K" parameters match
no reading (paperlib/published/NOTES.md).

Exact counts (weights / + biases / FLOPs per pixel = 2 x multiply-adds, bias and ReLU not counted):

    L4              71,920 / 72,097 / 143,840   paper: "70 K" params, "140 K" FLOPs
    L8 (after)     220,064 / 220,545 / 440,128   paper: "220 K" params, "440 K" FLOPs
    L8 (before)    283,552 / 284,033 / 567,104

Padding. The paper uses valid convolutions: a 64x64 training patch gives a
46x46 output (L4), and the receptive field is lost at the image borders. Here
``forward(x)`` pads the *input* once, by mirroring (``pad_mode="reflect"``;
"replicate" when the image is too small to mirror), by half the receptive
field (9 px for L4, 12 for L8), and then runs the valid network, so the output
has the input's size and every pixel whose receptive field lies inside the
image is computed exactly as by the paper's valid network (no zero padding
inside the network, so interior features never see artificial zeros). The
first-layer activations are centre-cropped to the size of the layer they are
concatenated to. Training (``Budget.valid_loss=True``, the default) is the
paper's: the unpadded patch goes through the valid network (``pad=False``)
and the loss is taken on the central output pixels against the centre of the
clean patch.

Objectives (Section 3, Figs. 1-3): ``direct`` (output = network),
``residual`` (output = input + network, the network predicts the correction),
``sobel`` (residual output; loss = MSE + Eq. 3, the squared error of the
horizontal and vertical Sobel derivatives, weight 1: the paper "adds" the
term without a weight; ``Budget.sobel_weight`` changes it). Losses are means
over output pixels (footnote 2: "the loss was normalized by the number of output
pixels"; no Caffe-style 1/2 factor); the Sobel term sums its two derivative
channels per pixel and is averaged over the pixels of its valid 3x3
convolution. The paper calls the Sobel network "edge preserving"; its Fig. 3
labels the data term "Loss direct mapping", so a direct+Sobel reading is
possible; we follow the residual reading (the brief's).

Model scaling: inputs and outputs are N x 1 x H x W float tensors holding
``uint8 / 255``; outputs are not clamped (``paperlib.restorer.Restorer`` clamps and
rounds). The model carries its objective: a residual model's ``forward`` already adds
the input, so the restorer works for every objective.

Initialisation ("symmetric"): Xavier in all but the last layer (Caffe's
``xavier`` filler, which the authors' Caffe code used: uniform in
+-sqrt(3 / fan_in)), a Gaussian with std ``last_std`` = 1e-3 in the last layer
(the paper: "a Gaussian initialization with lower variation", value not given;
1e-3 is SRCNN's), biases 0; then every filter (one output channel: all its
input channels and taps) has its mean subtracted, so a constant input offset
does not shift any unit. Zero mean is only imposed at init, as in the paper.
Per-(output, input) 2-D zero mean would be stronger but would zero L8's 1x1 layers.

Training: Adam (the paper used SGD with lr 0.4 / 8 / 0.05 and weight decay
5e-7 / 5e-7 / 5e-4 for direct / residual / Sobel, tuned by grid search; those
values are tied to SGD and do not carry over), last layer at 0.1x the learning
rate (a second param group), step decay via ``TrainConfig.lr_milestones``.
Data (Section 4): BSDS500 train+test (400 images) for training, BSDS500 val
(100) for validation, LIVE1 for the tables; the per-network crops/batches are
the paper's (L4: 64 x 64x64, L8: 4 x 128x128).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .conv import conv2d
from .. import checkpoint as ckpt

__all__ = ["TABLE_1", "TABLE_2", "ARCHS", "OBJECTIVES", "SKIPS", "RECEPTIVE_FIELD", "PAPER_TEXT", "layer_channels",
           "counts", "SvobodaNet", "L4", "L8", "sobel", "sobel_loss", "objective_loss", "make_optimizer",
           "load_svoboda", "filter_mosaic", "first_layer_filters", "Budget", "BUDGETS", "get_budget", "make_step_fn",
           "make_val_fn", "train_svoboda", "TRAIN_SETS", "VAL_SETS", "TEST_SETS", "default_name"]

# (kernel, output channels, first-layer activations concatenated here?) per layer
TABLE_2 = ((11, 48, False), (3, 64, False), (3, 64, False), (5, 1, False))
TABLE_1 = ((11, 32, False), (3, 64, False), (3, 64, False), (3, 64, True),
           (1, 64, False), (5, 64, True), (1, 128, False), (5, 1, False))
ARCHS = {"L4": TABLE_2, "L8": TABLE_1}
RECEPTIVE_FIELD = {"L4": 19, "L8": 25}                      # as printed in Section 3
PAPER_TEXT = {"L4": {"params_k": 70, "flops_per_pixel_k": 140, "params_k_conclusions": 20},
              "L8": {"params_k": 220, "flops_per_pixel_k": 440, "params_k_conclusions": 100}}
OBJECTIVES = ("direct", "residual", "sobel")
SKIPS = ("after", "before")
PAD_MODES = ("reflect", "replicate")


def layer_channels(arch: str, skip: str = "after") -> list[tuple[int, int, int]]:
    """``[(in_channels, out_channels, kernel), ...]`` of ``arch`` with the skip concatenations resolved."""
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; one of {sorted(ARCHS)}")
    if skip not in SKIPS:
        raise ValueError(f"skip must be one of {SKIPS}, got {skip!r}")
    spec = ARCHS[arch]
    first, c, rows = spec[0][1], 1, []
    for k, c_out, cat in spec:
        rows.append((c + (first if cat and skip == "before" else 0), c_out, k))
        c = c_out + (first if cat and skip == "after" else 0)
    return rows


def counts(arch: str, skip: str = "after") -> dict:
    """Analytic size of ``arch``: weights, biases, params, FLOPs per output pixel (2 x MACs), receptive field."""
    rows = layer_channels(arch, skip)
    weights = sum(ci * co * k * k for ci, co, k in rows)
    biases = sum(co for _, co, _ in rows)
    return {"weights": weights, "biases": biases, "params": weights + biases, "flops_per_pixel": 2 * weights,
            "receptive_field": 1 + sum(k - 1 for _, _, k in rows)}


def _centre(x: torch.Tensor, size) -> torch.Tensor:
    """The central ``size`` (h, w) window of ``x`` (N x C x H x W)."""
    h, w = size
    top, left = (x.shape[-2] - h) // 2, (x.shape[-1] - w) // 2
    return x[..., top:top + h, left:left + w]


class SvobodaNet(nn.Module):
    """L4 / L8 with their objective. ``forward(x)`` keeps the size; ``forward(x, pad=False)`` is the valid network."""

    channels, uses_tables, stochastic = 1, False, False   # what paperlib.restorer needs to know
    grid = 1   # no down-sampling: tiles may start anywhere (``halo`` = ``margin``, the receptive-field radius)

    def __init__(self, arch: str = "L4", objective: str = "residual", skip: str = "after",
                 pad_mode: str = "reflect", last_std: float = 1e-3):
        super().__init__()
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        if pad_mode not in PAD_MODES:
            raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
        self.kwargs = {"arch": arch, "objective": objective, "skip": skip, "pad_mode": pad_mode,
                       "last_std": last_std}
        self.arch, self.objective, self.skip, self.pad_mode = arch, objective, skip, pad_mode
        self.concat = [cat for _, _, cat in ARCHS[arch]]
        self.convs = nn.ModuleList(nn.Conv2d(ci, co, k) for ci, co, k in layer_channels(arch, skip))
        self.margin = sum(k // 2 for _, _, k in layer_channels(arch, skip))  # 9 (L4), 12 (L8)
        self.reset_parameters(last_std)

    @property
    def halo(self) -> int:
        return self.margin

    @property
    def residual(self) -> bool:
        return self.objective in ("residual", "sobel")

    @property
    def last(self) -> nn.Conv2d:
        return self.convs[-1]

    @torch.no_grad()
    def reset_parameters(self, last_std: float = 1e-3) -> None:
        """Xavier (Caffe: U(+-sqrt(3/fan_in))), Gaussian(last_std) in the last layer; zero-mean filters, zero biases."""
        for conv in self.convs:
            if conv is self.last:
                nn.init.normal_(conv.weight, 0.0, last_std)
            else:
                fan_in = conv.weight[0].numel()
                bound = math.sqrt(3.0 / fan_in)
                nn.init.uniform_(conv.weight, -bound, bound)
            conv.weight -= conv.weight.mean(dim=(1, 2, 3), keepdim=True)
            nn.init.zeros_(conv.bias)

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        m = self.margin
        mode = self.pad_mode if self.pad_mode == "replicate" or min(x.shape[-2:]) > m else "replicate"
        return F.pad(x, (m, m, m, m), mode=mode)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        """The valid network (Eq. 1): output smaller by ``2 * margin`` than ``x``."""
        first = None
        for i, conv in enumerate(self.convs):
            if self.concat[i] and self.skip == "before":
                x = torch.cat([x, _centre(first, x.shape[-2:])], 1)
            x = conv2d(x, conv)   # the last (1-output) layer: models.conv's faster form at inference
            if conv is self.last:
                return x
            x = F.relu(x, inplace=True)   # in place: no fresh activation-sized buffer per layer (L4, L8: 1.2x faster)
            if i == 0:
                first = x
            if self.concat[i] and self.skip == "after":
                x = torch.cat([x, _centre(first, x.shape[-2:])], 1)
        return x

    def forward(self, x: torch.Tensor, pad: bool = True) -> torch.Tensor:
        r = self.body(self.pad(x) if pad else x)
        if not self.residual:
            return r
        return _centre(x, r.shape[-2:]) + r.to(x.dtype)   # residual added in the input's precision (bf16-safe)


def L4(objective: str = "residual", **kwargs) -> SvobodaNet:
    """Table 2's network."""
    return SvobodaNet("L4", objective, **kwargs)


def L8(objective: str = "residual", **kwargs) -> SvobodaNet:
    """Table 1's network with the skip concatenations."""
    return SvobodaNet("L8", objective, **kwargs)


# ---------------------------------------------------------------------------------------------
# Objectives

_SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))


def sobel(x: torch.Tensor) -> torch.Tensor:
    """Horizontal and vertical Sobel derivatives (N x 2 x (H-2) x (W-2), valid, unnormalised kernels)."""
    gx = torch.tensor(_SOBEL_X, dtype=x.dtype, device=x.device)
    return F.conv2d(x, torch.stack([gx, gx.t()])[:, None])


def sobel_loss(out: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Eq. 3 per output pixel: mean over pixels of ||G * out - G * clean||^2 summed over the two derivatives."""
    return sobel(out - clean).pow(2).sum(1).mean()   # G is linear: G*F - G*x = G*(F - x)


def objective_loss(out: torch.Tensor, clean: torch.Tensor, objective: str, sobel_weight: float = 1.0):
    """``(loss, mse)`` of a network output; the Sobel term is added for ``objective == "sobel"``."""
    mse = F.mse_loss(out, clean)
    if objective == "sobel":
        return mse + sobel_weight * sobel_loss(out, clean), mse
    return mse, mse


def make_optimizer(net: SvobodaNet, lr: float, last_lr_mult: float = 0.1, weight_decay: float = 0.0):
    """Adam with two groups: every layer but the last at ``lr``, the last layer at ``lr * last_lr_mult``."""
    last = list(net.last.parameters())
    ids = {id(p) for p in last}
    rest = [p for p in net.parameters() if id(p) not in ids]
    return torch.optim.Adam([{"params": rest, "lr": lr, "name": "layers"},
                             {"params": last, "lr": lr * last_lr_mult, "name": "last"}],
                            weight_decay=weight_decay)


def load_svoboda(path, device="cpu", objective: str | None = None) -> SvobodaNet:
    """An L4/L8 (float32, eval mode) from an ``export_fp16`` file or a training checkpoint.

    A training checkpoint takes its kwargs from the ``manifest.json`` beside it;
    without one, arch and skip are read off the weights and ``objective`` must be given.
    """
    sd, kwargs = ckpt.load_weights(path, "svoboda")
    kwargs = dict(kwargs or {})
    if not kwargs:  # a bare checkpoint: read arch and skip off the weights
        n = len({k.split(".")[1] for k in sd if k.startswith("convs.")})
        arch = {4: "L4", 8: "L8"}[n]
        skip = "before" if arch == "L8" and sd["convs.3.weight"].shape[1] != 64 else "after"
        if objective is None:
            raise ValueError(f"{path}: no manifest.json beside it; pass objective=")
        kwargs = {"arch": arch, "skip": skip}
    if objective is not None:
        kwargs["objective"] = objective
    net = SvobodaNet(**kwargs)
    net.load_state_dict(sd)
    return net.to(device).eval()


def filter_mosaic(weights, cols: int = 8) -> np.ndarray:
    """A 2-D mosaic in [0, 1] of ``weights`` (C x k x k, or C x 1 x k x k), ``cols`` filters per row.

    Each filter is scaled by its own largest |weight| with 0 at mid-gray (0.5),
    a 1-pixel white border between filters; unused cells of the last row stay white.
    """
    w = np.asarray(weights, dtype=np.float32)
    if w.ndim == 4:
        w = w[:, 0]
    if w.ndim != 3:
        raise ValueError(f"expected C x k x k filters, got shape {w.shape}")
    n, kh, kw = w.shape
    rows = -(-n // cols)
    out = np.ones((rows * (kh + 1) + 1, cols * (kw + 1) + 1), np.float32)
    for i, f in enumerate(w):
        r, c = divmod(i, cols)
        s = np.abs(f).max()
        out[1 + r * (kh + 1):(r + 1) * (kh + 1), 1 + c * (kw + 1):(c + 1) * (kw + 1)] = 0.5 + 0.5 * f / (s if s else 1)
    return out


def first_layer_filters(model: SvobodaNet, grid: bool = False, cols: int = 8) -> np.ndarray:
    """The first layer's filters (Fig. 7): C x 11 x 11 float array, or with ``grid`` one 2-D mosaic in [0, 1].

    The mosaic is ``filter_mosaic``'s: each filter scaled by its own largest |weight|
    with 0 at mid-gray (0.5), a 1-pixel white border between filters.
    """
    w = model.convs[0].weight.detach().float().cpu().numpy()[:, 0]
    return filter_mosaic(w, cols) if grid else w


# ---------------------------------------------------------------------------------------------
# Training recipe

@dataclass(frozen=True)
class Budget:
    name: str
    steps: int                         # total optimizer steps
    crop: int                          # square training crops
    batch: int                         # global batch
    lr: float = 1e-3                   # Adam, every layer but the last
    lr_milestones: tuple = ()          # step decay of every group's lr by lr_gamma
    lr_gamma: float = 0.5
    last_lr_mult: float = 0.1          # the paper: last layer's lr ten times smaller
    weight_decay: float = 0.0
    sobel_weight: float = 1.0          # weight of Eq. 3 for the "sobel" objective
    valid_loss: bool = True            # the paper: valid network, loss on the central output pixels
    bf16: bool | str = "auto"          # bf16 autocast where the device computes it natively (paperlib.machine)
    channels_last: bool = True
    val_every: int = 0
    ckpt_every: int = 0
    n_val: int = 16                    # validation crops (of size ``crop``), whole-output MSE with padding


def _every(n: int, steps: int) -> tuple:
    return tuple(range(n, steps, n))


BUDGETS = {
    # CI: a few steps on tiny crops, seconds (crop 32 > L8's 25-pixel receptive field).
    "smoke": {a: Budget("smoke", steps=4, crop=32, batch=2, lr_milestones=(2,), val_every=2, ckpt_every=2, n_val=2)
              for a in ARCHS},
    # This 2-core CPU, about 8 min per network. L4: docs/cpu-training.md's prototype (Adam 1e-3, x0.7 every 500
    # steps, batch 32 x 64^2: +1.09 dB on LIVE1 QF10 in 8 min, 1661 steps of a same-size network); the
    # valid network costs ~0.5-0.65x per step (measured ratio), hence 2500 steps. L8 with the paper's
    # 4 x 128^2 costs ~1.7x an L4 step (measured), hence 1500 steps, decayed 5 times like L4.
    # fp32 on every device: the committed networks were trained so (these small networks gain little from bf16).
    "cpu": {"L4": Budget("cpu", steps=2500, crop=64, batch=32, lr_milestones=_every(500, 2500), lr_gamma=0.7,
                         bf16=False, val_every=250, ckpt_every=250, n_val=64),
            "L8": Budget("cpu", steps=1500, crop=128, batch=4, lr_milestones=_every(300, 1500), lr_gamma=0.7,
                         bf16=False, val_every=250, ckpt_every=250, n_val=16)},
    # The paper: 250k iterations, lr halved every 50k, L4 on 64 x 64^2 and L8 on 4 x 128^2 patches.
    "paper": {"L4": Budget("paper", steps=250_000, crop=64, batch=64, lr_milestones=_every(50_000, 250_000),
                           lr_gamma=0.5, val_every=5000, ckpt_every=5000, n_val=256),
              "L8": Budget("paper", steps=250_000, crop=128, batch=4, lr_milestones=_every(50_000, 250_000),
                           lr_gamma=0.5, val_every=5000, ckpt_every=5000, n_val=64)},
}

TRAIN_SETS = ("bsds500:train", "bsds500:test")   # 400 images, Section 4
VAL_SETS = ("bsds500:val",)                      # 100 images (Table 4)
TEST_SETS = ("live1",)                           # Tables 3 and 5


def get_budget(budget, arch: str) -> Budget:
    """A ``Budget``: the named budget's entry for ``arch``, or ``budget`` itself."""
    if isinstance(budget, Budget):
        return budget
    if budget not in BUDGETS:
        raise ValueError(f"unknown budget {budget!r}; one of {sorted(BUDGETS)}")
    return BUDGETS[budget][arch]


def make_step_fn(objective: str, valid_loss: bool = True, sobel_weight: float = 1.0):
    """The step: forward (valid network on the unpadded patch, or padded), objective loss, Adam update."""

    def step_fn(models, optimizers, batch, step, ctx):
        jpg, clean = batch
        with ctx.autocast():
            out = models["svoboda"](jpg, pad=not valid_loss)
        out = out.float()
        loss, mse = objective_loss(out, _centre(clean, out.shape[-2:]), objective, sobel_weight)
        ctx.update(loss, "svoboda")
        return {"loss": loss.item(), "mse": mse.item()}

    return step_fn


def make_val_fn(val_set, channels_last: bool = True):
    """cascnn's validation (MSE, PSNR, IPSNR of the padded, full-size output over all pixels) on L4/L8."""
    from .cascnn import make_val_fn as generic
    fn = generic(val_set, channels_last)
    return lambda models: fn({"cascnn": models["svoboda"]})


def default_name(arch: str, objective: str, qf) -> str:
    """Zoo name, e.g. ``l4-residual-q10`` or ``l4-residual-q10-60``."""
    from ..train import qf_label
    return f"{arch.lower()}-{objective}-q{qf_label(qf)}"


def train_svoboda(arch: str, objective: str, qf, train_images: Sequence[np.ndarray], out_dir, budget="cpu", *,
                  val_images: Sequence[np.ndarray] | None = None, sources: Sequence[str] = (), seed: int = 0,
                  stop_at_step: int | None = None, time_budget_s: float | None = None, resume: bool = True,
                  progress: bool = True, init_from=None, model_kwargs: dict | None = None, device: str = "cpu",
                  filter_steps: Sequence[int] = (), selection: str | None = None, **overrides):
    """Train (or resume) L4/L8 with ``objective`` for ``qf`` under a budget; returns ``train.TrainResult``.

    qf: int, or (low, high) for a QF drawn per patch (the paper's all-QF L4Q10-Q60: (10, 60)).
    budget: a name in ``BUDGETS`` or a ``Budget``; ``overrides`` replace its fields.
    model_kwargs: extra ``SvobodaNet`` arguments (``skip``, ``pad_mode``, ``last_std``).
    init_from: an fp16 export or checkpoint to start from. Writes checkpoint.pt,
    manifest.json, log.csv and, when finished, ``<arch>_fp16.pt`` into ``out_dir``.
    filter_steps: steps at which the first layer's filters are kept (Fig. 7), in
    ``filters.npz`` (``step_0`` is the initialisation; the last step is always kept):
    the run is trained in chunks that stop there, which changes nothing (resume is bit-exact).
    selection: how ``train_images`` were chosen from ``sources``, for the manifest.
    """
    from ..patches import PatchSampler, build_val_set
    from ..train import TrainConfig, check_resume, data_manifest, init_distributed, train

    b = get_budget(budget, arch)
    b = replace(b, **overrides) if overrides else b
    rank, world = init_distributed()
    torch.manual_seed(seed)
    net = SvobodaNet(arch, objective, **(model_kwargs or {}))
    if init_from is not None:
        net.load_state_dict(load_svoboda(init_from, objective=objective).state_dict())
    opt = make_optimizer(net, b.lr, b.last_lr_mult, b.weight_decay)
    sampler = PatchSampler(train_images, b.crop, b.batch, qf, seed=seed, rank=rank, world_size=world)
    val_fn = None
    if val_images is not None and len(val_images) and b.n_val:
        val_fn = make_val_fn(build_val_set(val_images, qf, crop=b.crop, n=b.n_val, seed=seed), b.channels_last)
    cfg = TrainConfig(out_dir=str(out_dir), steps=b.steps, lr_milestones=tuple(b.lr_milestones),
                      lr_gamma=b.lr_gamma, channels_last=b.channels_last, bf16=b.bf16, val_every=b.val_every,
                      ckpt_every=b.ckpt_every, seed=seed, stop_at_step=stop_at_step, time_budget_s=time_budget_s,
                      resume=resume, progress=progress, device=device)
    manifest = {"recipe": "svoboda", "arch": arch, "objective": objective, "budget": b.name,
                "budget_config": asdict(b), "qf": qf,
                "model": {"arch": arch, "kwargs": net.kwargs, "params": sum(p.numel() for p in net.parameters()),
                          "flops_per_pixel": counts(arch, net.skip)["flops_per_pixel"]},
                "data": {**data_manifest(sources, sampler, val_images), "selection": selection},
                "init_from": str(init_from) if init_from is not None else None}
    check_resume(out_dir, resume, arch=arch, objective=objective, qf=qf, budget=b.name)
    step_fn = make_step_fn(objective, b.valid_loss, b.sobel_weight)
    keep = sorted({int(s) for s in filter_steps if 0 < int(s) < b.steps} | ({b.steps} if filter_steps else set()))
    if keep and rank == 0 and not (Path(out_dir) / "checkpoint.pt").exists():
        _keep_filters(out_dir, 0, net)
    chunk_ends = [s for s in keep if stop_at_step is None or s < stop_at_step] + [stop_at_step]
    for end in chunk_ends:
        result = train(replace(cfg, stop_at_step=end), {"svoboda": net}, {"svoboda": opt}, step_fn, sampler.batch,
                       val_fn=val_fn, manifest=manifest)
        if keep and rank == 0 and result.step in keep:
            _keep_filters(out_dir, result.step, net)
        if end is not None and result.step < end:  # out of time: the next call resumes
            break
    if result.finished and rank == 0:
        ckpt.export_fp16(net.state_dict(), Path(out_dir) / f"{arch}_fp16.pt",
                         {"arch": arch, "kwargs": net.kwargs, "objective": objective, "qf": qf, "budget": b.name,
                          "steps": result.step, "data": manifest["data"]["sources"],
                          "checkpoint_sha256": result.manifest.get("checkpoint_sha256")})
    return result


FILTERS = "filters.npz"


def _keep_filters(out_dir, step: int, net: SvobodaNet) -> None:
    """Add the first layer's filters at ``step`` to ``out_dir/filters.npz`` (atomically)."""
    import io

    from .. import atomic
    path = Path(out_dir) / FILTERS
    kept = dict(np.load(path)) if path.exists() else {}
    kept[f"step_{step}"] = first_layer_filters(net)
    buf = io.BytesIO()
    np.savez(buf, **kept)
    atomic.write_bytes(path, buf.getvalue())


def _main(argv=None):
    """``python -m paperlib.models.svoboda --arch L4 --objective residual --qf 10 --budget cpu --out DIR``.

    ``--qf 10-60`` trains the all-QF network. Data are dataset specs
    ``name[:split]`` (data root from ``--data-root`` or ``$PAPERLIB_DATA``).
    Calling it again with the same ``--out`` resumes the run. Also under torchrun.
    """
    import argparse

    from ..train import add_run_arguments, parse_qf

    ap = argparse.ArgumentParser(description=_main.__doc__)
    ap.add_argument("--arch", required=True, choices=sorted(ARCHS))
    ap.add_argument("--objective", default="residual", choices=OBJECTIVES)
    ap.add_argument("--qf", type=parse_qf, required=True, help="e.g. 10, or 10-60 for a range")
    ap.add_argument("--budget", default="cpu", choices=sorted(BUDGETS))
    ap.add_argument("--skip", default="after", choices=SKIPS, help="L8's concatenation (see the module doc)")
    add_run_arguments(ap, TRAIN_SETS, VAL_SETS)
    ap.add_argument("--publish", nargs="?", const="", default=None, metavar="NAME",
                    help="when finished, commit-ready copies to checkpoints/ as NAME "
                         "(default l4-residual-q10 style)")
    ap.add_argument("--n-images", type=int, default=None,
                    help="train on the first N training images only (Fig. 8's data-size runs)")
    ap.add_argument("--filter-steps", type=int, nargs="*", default=(),
                    help="keep the first layer's filters at these steps (Fig. 7), in filters.npz")
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)

    from .. import data

    crop = get_budget(a.budget, a.arch).crop
    train_images, small = data.gray_images(a.train, a.data_root, min_side=crop)
    if small:
        print(f"skipped {small} training image(s) smaller than the {crop}x{crop} crop")
    selection = None
    if a.n_images is not None:
        if not 0 < a.n_images <= len(train_images):
            ap.error(f"--n-images must be in 1..{len(train_images)} (the training images found)")
        selection = f"the first {a.n_images} of the {len(train_images)} training images, in the sources' order"
        train_images = train_images[:a.n_images]
    val_images, _ = data.gray_images(a.val, a.data_root, min_side=crop)
    over = {"steps": a.steps} if a.steps else {}
    res = train_svoboda(a.arch, a.objective, a.qf, train_images, a.out, a.budget, val_images=val_images or None,
                        sources=list(a.train), seed=a.seed, time_budget_s=a.time_budget, init_from=a.init_from,
                        progress=not a.no_progress, model_kwargs={"skip": a.skip}, device=a.device,
                        filter_steps=a.filter_steps, selection=selection, **over)
    if not res.manifest:  # not rank 0
        return res
    print(f"step {res.step}/{res.manifest['steps_total']}, finished={res.finished}, "
          f"wall {res.wall_time_s:.0f}s (all chunks), out {res.out_dir}")
    if a.publish is not None and res.finished:
        name = a.publish or default_name(a.arch, a.objective, a.qf)
        print("published", ckpt.publish(a.out, name, weights=f"{a.arch}_fp16.pt"))
    return res


if __name__ == "__main__":
    from ..train import run_main
    run_main(_main)
