"""QGCN (Li, Wang, Xie & Ma, IEEE TIP 2020): one network for every quality factor.

Input (Section III-B, Fig. 2). The decoded image is concatenated with its
quantization maps: the file's 8x8 quantization tables (luma, and chroma for a
colour image) tiled over the image, aligned with the coding blocks (block
(i, j) of the map holds the table). Colour: 3 + 2 = 5 channels; gray: 1 + 1 = 2.
Tables come from the JPEG file itself (``jpeg.read_jpeg``) or, for images we
code ourselves, from ``jpeg.ijg_tables`` at the QF (the same tables: tests check
it). ``paperlib.restorer.Restorer`` gives them to the network. Map values are the table entries / 255 (the paper does not say how it
scales them; 255 is the largest baseline entry). Images whose size is not a
multiple of 8 are edge-padded at the right and bottom (footnote 1) and the
output is cropped back.

Networks (Section III-C, Fig. 3, Table I), ``width`` = 64 channels, 3x3 kernels:

* restoration branch: a stride-2 convolution down to half resolution, residual
  group 1 (``n_res`` blocks conv-ReLU-conv scaled by 0.1, no batch norm, then a
  convolution, with a skip over the group), [global features concatenated:
  128 channels, brought back to 64 by a 3x3 convolution: our choice, the paper
  does not say how the second group takes 128 channels], residual group 2 (same
  form), sub-pixel up-sampling (a convolution to 4 x 64 channels and a pixel
  shuffle), a last convolution to the image's channels;
* global branch (Table I): the input resized to 112x112 (bilinear, antialiased),
  four pairs of convolutions (4x4 stride 2, then 3x3; 32, 64, 128, 256
  channels, ReLU after each), fc 256*7*7 -> 1024 -> 64 (ReLU between); the
  64-vector is repeated over the half-resolution grid and concatenated after
  group 1;
* ``QGCN`` = both branches with the quantization maps; ``QCN`` = the restoration
  branch with the maps; ``EDSR`` = the restoration branch without maps (the
  paper's baseline: EDSR with a down-sampling layer in front).

The network predicts a correction added to the decoded image (a global
residual; the paper does not say, EDSR-style artifact removal does it).
Initialisation: Gaussian, std 0.01, biases zero (Section IV-A). ReLU elsewhere.

Training (Sections III-D, IV-A): L1 loss, Adam 1e-4 divided by 10 every 20
epochs, "easy-hard transfer": 64x64 patches first, then 256x256 patches with
the weights carried over (batch 256 and 32 in the paper); a QF drawn uniformly
from 1..60 for every patch, coded with Pillow (PIL) as in the paper. The paper
trained on DIV2K (800 images), which is not available here: BSDS500 train+val
and ``imagenet-sample-1000`` instead (``TRAIN_SETS``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import checkpoint as ckpt

__all__ = ["VARIANTS", "GLOBAL_TABLE_I", "quant_map", "QGCNNet", "QGCN", "QCN", "EDSR", "load_qgcn", "Budget", "BUDGETS", "get_budget", "make_step_fn", "make_val_fn",
           "train_qgcn", "TRAIN_SETS", "VAL_SETS", "default_name"]

VARIANTS = {"qgcn": (True, True), "qcn": (True, False), "edsr": (False, False)}  # (maps, global branch)
# Table I: (out channels, kernel, stride, padding) of the global branch's convolutions, then fc sizes.
GLOBAL_TABLE_I = ((32, 4, 2, 1), (32, 3, 1, 1), (64, 4, 2, 1), (64, 3, 1, 1),
                  (128, 4, 2, 1), (128, 3, 1, 1), (256, 4, 2, 1), (256, 3, 1, 1))
GLOBAL_FC = (1024, 64)
GLOBAL_SIZE = 112
TABLE_SCALE = 255.0


def quant_map(tables: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """N x T x H x W maps: N x T x 8 x 8 tables tiled from the top-left corner, scaled by 1/255."""
    if tables.ndim != 4 or tuple(tables.shape[-2:]) != (8, 8):
        raise ValueError(f"tables must be N x T x 8 x 8, got {tuple(tables.shape)}")
    reps = (-(-height // 8), -(-width // 8))
    return (tables.float() / TABLE_SCALE).repeat(1, 1, *reps)[..., :height, :width]


def _conv(ci: int, co: int, k: int = 3, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(ci, co, k, stride, k // 2)


class ResBlock(nn.Module):
    """conv-ReLU-conv, scaled by ``scale`` (0.1), plus the input (no batch norm)."""

    def __init__(self, width: int, scale: float = 0.1):
        super().__init__()
        self.conv1, self.conv2, self.scale = _conv(width, width), _conv(width, width), scale

    def forward(self, x):
        return x + self.scale * self.conv2(F.relu(self.conv1(x)))


class ResGroup(nn.Module):
    """``n_res`` residual blocks and a convolution, with a skip over the whole group."""

    def __init__(self, width: int, n_res: int, in_channels: int | None = None):
        super().__init__()
        self.entry = _conv(in_channels, width) if in_channels and in_channels != width else None
        self.body = nn.Sequential(*[ResBlock(width) for _ in range(n_res)], _conv(width, width))

    def forward(self, x):
        if self.entry is not None:
            x = self.entry(x)
        return x + self.body(x)


class GlobalBranch(nn.Module):
    """Table I: the input at 112x112 -> 64 global features."""

    def __init__(self, in_channels: int):
        super().__init__()
        layers, c = [], in_channels
        for co, k, s, p in GLOBAL_TABLE_I:
            layers += [nn.Conv2d(c, co, k, s, p), nn.ReLU(inplace=True)]
            c = co
        self.convs = nn.Sequential(*layers)
        side = GLOBAL_SIZE // 16
        self.fc1, self.fc2 = nn.Linear(c * side * side, GLOBAL_FC[0]), nn.Linear(*GLOBAL_FC)

    def forward(self, x):
        x = F.interpolate(x, size=(GLOBAL_SIZE, GLOBAL_SIZE), mode="bilinear", align_corners=False, antialias=True)
        x = self.convs(x).flatten(1)
        return self.fc2(F.relu(self.fc1(x)))


class QGCNNet(nn.Module):
    """QGCN / QCN / EDSR for ``channels`` = 3 (colour) or 1 (gray). ``forward(y, tables)``, y in [0, 1]."""

    def __init__(self, variant: str = "qgcn", channels: int = 3, n_res: int = 32, width: int = 64,
                 init_std: float = 0.01):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {sorted(VARIANTS)}, got {variant!r}")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 (gray) or 3 (colour), got {channels}")
        if n_res < 1:
            raise ValueError(f"n_res must be >= 1, got {n_res}")
        self.kwargs = {"variant": variant, "channels": channels, "n_res": n_res, "width": width,
                       "init_std": init_std}
        self.variant, self.channels = variant, channels
        self.uses_maps, self.uses_global = VARIANTS[variant]
        self.uses_tables, self.stochastic = self.uses_maps, False   # what paperlib.restorer needs to know
        # tiling (paperlib.restorer): the restoration branch's receptive-field radius in pixels (3x3 convolutions
        # at half resolution: 2 n_res + 1 per group, the entry/up convolutions, head and tail), and the grid of
        # the quantization maps; the global branch sees the whole image once (``global_context``)
        self.halo, self.grid = 8 * n_res + 12, 8
        self.n_tables = (2 if channels == 3 else 1) if self.uses_maps else 0
        c_in = channels + self.n_tables
        self.head = _conv(c_in, width, 3, stride=2)
        self.group1 = ResGroup(width, n_res)
        self.global_branch = GlobalBranch(c_in) if self.uses_global else None
        self.group2 = ResGroup(width, n_res, in_channels=width + GLOBAL_FC[1] if self.uses_global else width)
        self.up = nn.Sequential(_conv(width, 4 * width), nn.PixelShuffle(2))
        self.tail = _conv(width, channels)
        self.reset_parameters(init_std)

    @torch.no_grad()
    def reset_parameters(self, std: float = 0.01) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(m.weight, 0.0, std)
                nn.init.zeros_(m.bias)

    def _input(self, y: torch.Tensor, tables: torch.Tensor | None):
        """The padded image and the network input (image + quantization maps)."""
        n, c, h, w = y.shape
        if c != self.channels:
            raise ValueError(f"{self.variant} takes {self.channels}-channel images, got {c}")
        ph, pw = (-h) % 8, (-w) % 8
        yp = F.pad(y, (0, pw, 0, ph), mode="replicate") if ph or pw else y
        x = yp
        if self.uses_maps:
            if tables is None or tables.shape[1] != self.n_tables:
                raise ValueError(f"{self.variant} needs N x {self.n_tables} x 8 x 8 quantization tables")
            x = torch.cat([yp, quant_map(tables.to(yp.device), *yp.shape[-2:]).to(yp.dtype)], 1)
        return yp, x

    def global_context(self, y: torch.Tensor, tables: torch.Tensor | None = None):
        """The global branch's 64 features of whole images (None without a global branch)."""
        return self.global_branch(self._input(y, tables)[1]) if self.global_branch is not None else None

    def forward(self, y: torch.Tensor, tables: torch.Tensor | None = None, context=None) -> torch.Tensor:
        """``context``: the global features of the whole image when ``y`` is a tile of it (``global_context``)."""
        h, w = y.shape[-2:]
        yp, x = self._input(y, tables)
        f = self.group1(self.head(x))
        if self.global_branch is not None:
            g = self.global_branch(x) if context is None else context
            f = torch.cat([f, g[:, :, None, None].expand(-1, -1, *f.shape[-2:]).to(f.dtype)], 1)
        r = self.tail(self.up(self.group2(f)))
        return (yp + r.to(yp.dtype))[..., :h, :w]


def QGCN(channels: int = 3, n_res: int = 32, **kw) -> QGCNNet:
    """Restoration + global branch, with quantization maps."""
    return QGCNNet("qgcn", channels, n_res, **kw)


def QCN(channels: int = 3, n_res: int = 32, **kw) -> QGCNNet:
    """Restoration branch with quantization maps."""
    return QGCNNet("qcn", channels, n_res, **kw)


def EDSR(channels: int = 3, n_res: int = 32, **kw) -> QGCNNet:
    """The paper's baseline: the restoration branch without quantization maps."""
    return QGCNNet("edsr", channels, n_res, **kw)


def load_qgcn(path, device="cpu") -> QGCNNet:
    """A QGCN/QCN/EDSR (float32, eval mode) from an ``export_fp16`` file or a training checkpoint + manifest."""
    return ckpt.load_model(path, "qgcn", QGCNNet, device)


# ---------------------------------------------------------------------------------------------
# Training recipe

@dataclass(frozen=True)
class Budget:
    name: str
    steps: int                  # total optimizer steps (easy + hard phase)
    hard_start: int             # first step of the 256x256 ("hard") phase; == steps: no hard phase
    crop: int = 64              # easy-phase crops
    batch: int = 16             # easy-phase batch
    hard_crop: int = 256
    hard_batch: int = 4
    n_res: int = 32
    lr: float = 1e-4
    lr_milestones: tuple = ()   # x lr_gamma at each
    lr_gamma: float = 0.1
    bf16: bool | str = "auto"   # bf16 autocast where the device computes it natively (paperlib.machine)
    channels_last: bool = True
    val_every: int = 0
    ckpt_every: int = 0
    n_val: int = 16             # validation crops of ``crop``, QFs 10..50


BUDGETS = {
    # CI: a few steps on tiny crops, seconds.
    "smoke": Budget("smoke", steps=4, hard_start=2, crop=16, batch=2, hard_crop=32, hard_batch=1, n_res=1,
                    val_every=2, ckpt_every=2, n_val=2),
    # About 22 min per n_res=8 network on a 2-core CPU with native bf16 (measured: 0.31 s per 16 x 64^2 step,
    # 0.93 s per 4 x 256^2 step, bf16 autocast; fp32 on an AVX2-only CPU, see benchmarks/bench_train.py);
    # lr 2e-4 (the paper's 1e-4 is for ~10^5 steps), x0.3 twice near the end.
    "cpu": Budget("cpu", steps=3000, hard_start=2400, crop=64, batch=16, hard_crop=256, hard_batch=4, n_res=8,
                  lr=2e-4, lr_milestones=(2000, 2800), lr_gamma=0.3, val_every=250, ckpt_every=250,
                  n_val=40),
    # The paper: n_res 32, batch 256 of 64x64 then 32 of 256x256, Adam 1e-4 / 10 every 20 epochs. Its epochs are
    # of ~340k 256x256 DIV2K sub-images: 20 epochs of 64x64 patches at batch 256 ~ 26k steps (our reading).
    "paper": Budget("paper", steps=80_000, hard_start=52_000, crop=64, batch=256, hard_crop=256, hard_batch=32,
                    n_res=32, lr=1e-4, lr_milestones=(26_000, 66_000), lr_gamma=0.1, val_every=2000,
                    ckpt_every=2000, n_val=256),
}

TRAIN_SETS = ("bsds500:train", "bsds500:val", "imagenet-sample-1000")   # DIV2K is not available here
VAL_SETS = ("set14",)  # validation crops during training; never LIVE1 or BSDS500 test (the notebook's tables)
VAL_QFS = (10, 20, 30, 40, 50)


def get_budget(budget) -> Budget:
    from ..train import pick_budget
    return pick_budget(budget, BUDGETS)


def make_step_fn():
    """L1 loss over every output pixel (Eq. 6), Adam update."""

    def step_fn(models, optimizers, batch, step, ctx):
        jpg, clean, tables = batch
        with ctx.autocast():
            out = models["qgcn"](jpg, tables)
        loss = F.l1_loss(out.float(), clean)
        ctx.update(loss, "qgcn")
        return {"loss": loss.item(), "crop": float(jpg.shape[-1])}

    return step_fn


def make_val_fn(val_sets: dict, channels_last: bool = True):
    """Validation on fixed crops, one set per QF (``{qf: build_val_set(..., with_tables=True)}``).

    Logs L1, MSE, PSNR and IPSNR (dB) over all crops, and ``ipsnr_q{qf}`` per QF (Fig. 8 reads these).
    """
    import math

    def ipsnr(se, jse):
        return 10 * math.log10(jse / se) if se > 0 else math.inf

    jpeg_se = {q: sum(float(((j - c) ** 2).sum()) for j, c, _ in vs) for q, vs in val_sets.items()}
    n_px = sum(c.numel() for vs in val_sets.values() for _, c, _ in vs)

    def val_fn(models):
        net = models["qgcn"]
        dev = next(net.parameters()).device
        se, ae, out = {}, 0.0, {}
        for q, vs in val_sets.items():
            se[q] = 0.0
            for j, c, t in vs:
                j, c = j.to(dev), c.to(dev)
                if channels_last:
                    j = j.contiguous(memory_format=torch.channels_last)
                d = net(j, t.to(dev)).float() - c
                se[q], ae = se[q] + float((d ** 2).sum()), ae + float(d.abs().sum())
            out[f"ipsnr_q{q}"] = ipsnr(se[q], jpeg_se[q])
        mse = sum(se.values()) / n_px
        psnr = 10 * math.log10(1 / mse) if mse > 0 else math.inf
        return {"l1": ae / n_px, "mse": mse, "psnr": psnr, "ipsnr": ipsnr(sum(se.values()), sum(jpeg_se.values())),
                **out}

    return val_fn


def default_name(variant: str, color: bool, qf=(1, 60), n_res: int | None = None, suffix: str = "") -> str:
    """Zoo name: ``qgcn-color``, ``edsr-gray``, ``edsr-color-q10``, ``edsr-color-q10-50``, ``qgcn-color-r16``."""
    name = f"{variant}-{'color' if color else 'gray'}"
    q = tuple(qf) if isinstance(qf, (tuple, list)) else int(qf)
    if q != (1, 60):
        name += f"-q{q[0]}-{q[1]}" if isinstance(q, tuple) else f"-q{q}"
    if n_res is not None:
        name += f"-r{n_res}"
    return name + suffix


def train_qgcn(variant: str, train_images: Sequence[np.ndarray], out_dir, budget="cpu", *, qf=(1, 60),
               val_images: Sequence[np.ndarray] | None = None, sources: Sequence[str] = (), seed: int = 0,
               stop_at_step: int | None = None, time_budget_s: float | None = None, resume: bool = True,
               progress: bool = True, init_from=None, device: str = "cpu", **overrides):
    """Train (or resume) QGCN / QCN / EDSR; returns ``train.TrainResult``.

    train_images: HxWx3 RGB (colour network) or HxW gray uint8 arrays. qf: (low, high), a QF drawn per
    patch (default the paper's 1..60), or one QF (single-QF EDSR of Fig. 6). budget: a name in ``BUDGETS``
    or a ``Budget``; ``overrides`` replace its fields (``n_res=16``, ``hard_start=...``). Writes
    checkpoint.pt, manifest.json, log.csv and, when finished, ``qgcn_fp16.pt`` into ``out_dir``.
    """
    from ..patches import PatchSampler, build_val_set
    from ..train import TrainConfig, check_resume, data_manifest, init_distributed, train

    b = replace(get_budget(budget), **overrides) if overrides else get_budget(budget)
    if not 0 < b.hard_start <= b.steps:
        raise ValueError(f"hard_start must be in 1..steps, got {b.hard_start} of {b.steps}")
    rank, world = init_distributed(device)
    color = np.asarray(train_images[0]).ndim == 3
    torch.manual_seed(seed)
    net = QGCNNet(variant, 3 if color else 1, b.n_res)
    if init_from is not None:
        net.load_state_dict(load_qgcn(init_from).state_dict())
    opt = torch.optim.Adam(net.parameters(), lr=b.lr)
    easy = PatchSampler(train_images, b.crop, b.batch, qf, seed=seed, rank=rank, world_size=world,
                        with_tables=True)
    hard = None
    if b.hard_start < b.steps:
        big = [im for im in train_images if min(np.shape(im)[:2]) >= b.hard_crop]
        hard = PatchSampler(big, b.hard_crop, b.hard_batch, qf, seed=seed + 1, rank=rank, world_size=world,
                            with_tables=True)

    def batch_fn(step):
        return (easy if step < b.hard_start else hard).batch(step)

    val_fn = None
    if val_images is not None and len(val_images) and b.n_val:
        qfs = [qf] if isinstance(qf, int) else [q for q in VAL_QFS if qf[0] <= q <= qf[1]] or [qf[0]]
        n = max(1, b.n_val // len(qfs))
        val_fn = make_val_fn({q: build_val_set(val_images, q, crop=b.crop, n=n, seed=seed, with_tables=True)
                              for q in qfs}, b.channels_last)
    cfg = TrainConfig(out_dir=str(out_dir), steps=b.steps, lr_milestones=tuple(b.lr_milestones),
                      lr_gamma=b.lr_gamma, channels_last=b.channels_last, bf16=b.bf16, val_every=b.val_every,
                      ckpt_every=b.ckpt_every, seed=seed, stop_at_step=stop_at_step, time_budget_s=time_budget_s,
                      resume=resume, progress=progress, device=device)
    data = data_manifest(sources, easy, val_images)
    data["hard_sampler"] = hard.describe() if hard else None
    manifest = {"recipe": "qgcn", "variant": variant, "color": color, "budget": b.name, "budget_config": asdict(b),
                "qf": qf, "model": {"arch": "QGCN", "kwargs": net.kwargs,
                                    "params": sum(p.numel() for p in net.parameters())},
                "data": data, "init_from": str(init_from) if init_from is not None else None}
    check_resume(out_dir, resume, variant=variant, color=color, qf=qf, budget=b.name)
    result = train(cfg, {"qgcn": net}, {"qgcn": opt}, make_step_fn(), batch_fn, val_fn=val_fn, manifest=manifest)
    if result.finished and rank == 0:
        ckpt.export_fp16(net.state_dict(), Path(out_dir) / "qgcn_fp16.pt",
                         {"arch": "QGCN", "kwargs": net.kwargs, "qf": qf, "budget": b.name, "steps": result.step,
                          "data": sources, "checkpoint_sha256": result.manifest.get("checkpoint_sha256")})
    return result


def _main(argv=None):
    """``python -m paperlib.models.qgcn --variant qgcn --color --budget cpu --out DIR [--publish]``.

    ``--qf 1-60`` (default) draws a QF per patch; ``--qf 10`` trains a single-QF network.
    Calling it again with the same ``--out`` resumes the run.
    """
    import argparse

    from ..train import add_run_arguments, parse_qf

    ap = argparse.ArgumentParser(description=_main.__doc__)
    ap.add_argument("--variant", required=True, choices=sorted(VARIANTS))
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--color", action="store_true", help="RGB network (colour protocol)")
    mode.add_argument("--gray", action="store_true", help="luma network (gray protocol)")
    ap.add_argument("--qf", type=parse_qf, default=(1, 60), help="e.g. 1-60 (default) or 10")
    ap.add_argument("--budget", default="cpu", choices=sorted(BUDGETS))
    ap.add_argument("--n-res", type=int, default=None, help="residual blocks per group (default: the budget's)")
    ap.add_argument("--hard-start", type=int, default=None,
                    help="first step on 256x256 patches (default: the budget's; = steps: 64x64 only)")
    add_run_arguments(ap, TRAIN_SETS, VAL_SETS)
    ap.add_argument("--publish", nargs="?", const="", default=None, metavar="NAME",
                    help="when finished, copy to checkpoints/ as NAME (default qgcn-color style)")
    ap.add_argument("--log-only", action="store_true",
                    help="publish the training log and manifest without the weights (runs too large to commit)")
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)

    from .. import data

    b = get_budget(a.budget)
    over = {k: v for k, v in (("steps", a.steps), ("n_res", a.n_res), ("hard_start", a.hard_start)) if v}
    if a.steps and "hard_start" not in over:
        over["hard_start"] = min(b.hard_start, a.steps)

    def load(specs):
        return (data.gray_images if a.gray else data.rgb_images)(specs, a.data_root, min_side=b.crop)

    train_images, small = load(a.train)
    if small:
        print(f"skipped {small} training image(s) smaller than the {b.crop}x{b.crop} crop")
    val_images, _ = load(a.val) if a.val else ([], 0)
    res = train_qgcn(a.variant, train_images, a.out, a.budget, qf=a.qf, val_images=val_images or None,
                     sources=list(a.train), seed=a.seed, time_budget_s=a.time_budget, init_from=a.init_from,
                     progress=not a.no_progress, device=a.device, **over)
    if not res.manifest:
        return res
    print(f"step {res.step}/{res.manifest['steps_total']}, finished={res.finished}, "
          f"wall {res.wall_time_s:.0f}s (all chunks), out {res.out_dir}")
    if a.publish is not None and res.finished:
        name = a.publish or default_name(a.variant, bool(a.color), a.qf)
        print("published", ckpt.publish(a.out, name, weights=None if a.log_only else "qgcn_fp16.pt"))
    return res


if __name__ == "__main__":
    from ..train import run_main
    run_main(_main)
