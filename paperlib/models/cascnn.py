"""CAS-CNN (Cavigelli, Hager & Benini, IJCNN 2017): network, multi-scale loss, training recipe.

Network (Table I, Fig. 1). Blocks A..D have two 3x3 convolutions each (1->128->128,
128->128->128, 128->256->256, 256->256->256); 2x2 average pooling (stride 2)
goes down between blocks, so A works at full resolution and D at 1/8 of the
side (1/64 of the pixels). The main path climbs back with 4x4 stride-2 full
(transposed) convolutions D~, C~, B~ and a last 3x3 convolution A^. Before
each of C~, B~, A^ the up-sampled features are concatenated with the block
output natively at that resolution and with the nearest-neighbour up-sampled
(2x) low-resolution output of the layer below:

    D^ = conv(D)                    1/8 side   (the paper's "1/64-th of the resolution")
    x_C = [D~(D), C, up(D^)]        256 + 256 + 1 = 513 channels at 1/4
    C^ = conv(x_C)                  1/4 side   ("1/16-th")
    x_B = [C~(x_C), B, up(C^)]      128 + 128 + 1 = 257 channels at 1/2
    B^ = conv(x_B)                  1/2 side   ("1/4-th")
    x_A = [B~(x_B), A, up(B^)]      128 + 128 + 1 = 257 channels at 1/1
    A^ = conv(x_A)                  full-resolution output

Choices where the paper is silent or ambiguous (also in docs/conventions.md):

* Table I prints C(1) as 128 outputs / 256 inputs; B(2) gives 128 channels and
  the 513-channel concatenation needs 256 from C, so C(1) is 128 -> 256 (the
  parameter count, 295k, is the same either way).
* "All these layers are followed by a PReLU": we apply it after every layer
  of Table I, the four output layers D^, C^, B^, A^ included (it is the
  identity on the positive outputs; ``output_prelu=False`` drops it). One
  shared slope per layer, initialised to 0.25 (the Torch7/PyTorch default).
* Table I's "#param." counts weights only: with biases A(2) would round to 148k,
  not 147k. The printed total 5144k is the sum of the rounded rows (the weights
  sum to 5,144,987); with biases and PReLU slopes the model has 5,147,054.
* Init: weights and biases uniform in +-n_in^(-1/2) with n_in = fan-in
  = input channels x kernel area (Torch7's default, the framework the authors
  used; the paper says "number of input channels").
* No batch norm, no residual connection to the input (as in the paper).

Scaling: inputs and outputs are float tensors N x 1 x H x W holding
``uint8 / 255`` (the paper's pixel range [0, 1]). Outputs are not clamped;
``paperlib.restorer.Restorer`` clamps and rounds back to uint8. Any H, W: the input is padded
(replicate) at the bottom/right to a multiple of 8 and every output is cropped
back (the 1/s outputs to ceil(H/s) x ceil(W/s)); the JPEG 8x8 grid stays aligned.

Multi-scale (MS) loss: the MSE of each of the four outputs against the clean
image average-pooled by 8, 4, 2, 1 ("averaging across 64, 16 and 4 pixels"),
weighted equally (their mean). Then fine-tuning (FT) with the output loss only.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import checkpoint as ckpt

__all__ = ["CASCNN", "TABLE_I", "ms_loss", "output_loss", "load_cascnn",
           "Budget", "BUDGETS", "make_step_fn", "make_val_fn", "train_cascnn"]

# Table I: layer -> (#outputs, #inputs, kernel, stride-2 full convolution?, printed #param. in k)
TABLE_I = {
    "A(1)": (128, 1, 3, False, 1), "A(2)": (128, 128, 3, False, 147),
    "B(1)": (128, 128, 3, False, 147), "B(2)": (128, 128, 3, False, 147),
    "C(1)": (256, 128, 3, False, 295), "C(2)": (256, 256, 3, False, 590),
    "D(1)": (256, 256, 3, False, 590), "D(2)": (256, 256, 3, False, 590),
    "D~": (256, 256, 4, True, 1049), "D^": (1, 256, 3, False, 2),
    "C~": (128, 513, 4, True, 1051), "C^": (1, 513, 3, False, 5),
    "B~": (128, 257, 4, True, 526), "B^": (1, 257, 3, False, 2),
    "A^": (1, 257, 3, False, 2),
}
TABLE_I_TOTAL_K = 5144
# paper name -> attribute name in CASCNN
ATTR = {"A(1)": "A1", "A(2)": "A2", "B(1)": "B1", "B(2)": "B2", "C(1)": "C1", "C(2)": "C2",
        "D(1)": "D1", "D(2)": "D2", "D~": "Dtilde", "D^": "Dhat", "C~": "Ctilde", "C^": "Chat",
        "B~": "Btilde", "B^": "Bhat", "A^": "Ahat"}
SCALES = (8, 4, 2, 1)  # side-length factors of the outputs D^, C^, B^, A^


class Layer(nn.Module):
    """One row of Table I: a 3x3 convolution or a 4x4 stride-2 full convolution, then PReLU."""

    def __init__(self, c_in: int, c_out: int, full: bool = False, prelu: bool = True):
        super().__init__()
        if full:
            self.conv = nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1)
        else:
            self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.act = nn.PReLU(init=0.25) if prelu else nn.Identity()
        k = self.conv.kernel_size
        bound = (c_in * k[0] * k[1]) ** -0.5
        nn.init.uniform_(self.conv.weight, -bound, bound)
        nn.init.uniform_(self.conv.bias, -bound, bound)

    def forward(self, x):
        return self.act(self.conv(x))


def _up(x):
    return F.interpolate(x, scale_factor=2, mode="nearest")


class CASCNN(nn.Module):
    """CAS-CNN as in Table I. ``width`` scales the channels (128 / 256 in the paper; small for tests)."""

    channels, uses_tables, stochastic = 1, False, False   # what paperlib.restorer needs to know
    halo, grid = 48, 8   # receptive-field radius in pixels (measured: 46) and the pooling grid, for tiling

    def __init__(self, width: int = 128, output_prelu: bool = True):
        super().__init__()
        self.kwargs = {"width": width, "output_prelu": output_prelu}
        w1, w2 = width, 2 * width
        self.A1, self.A2 = Layer(1, w1), Layer(w1, w1)
        self.B1, self.B2 = Layer(w1, w1), Layer(w1, w1)
        self.C1, self.C2 = Layer(w1, w2), Layer(w2, w2)
        self.D1, self.D2 = Layer(w2, w2), Layer(w2, w2)
        self.Dtilde, self.Dhat = Layer(w2, w2, full=True), Layer(w2, 1, prelu=output_prelu)
        self.Ctilde, self.Chat = Layer(2 * w2 + 1, w1, full=True), Layer(2 * w2 + 1, 1, prelu=output_prelu)
        self.Btilde, self.Bhat = Layer(2 * w1 + 1, w1, full=True), Layer(2 * w1 + 1, 1, prelu=output_prelu)
        self.Ahat = Layer(2 * w1 + 1, 1, prelu=output_prelu)

    def forward(self, x: torch.Tensor, multiscale: bool = False):
        """Full-resolution output, or with ``multiscale=True`` the list [D^, C^, B^, A^] (sides /8, /4, /2, /1)."""
        h, w = x.shape[-2:]
        ph, pw = -h % 8, -w % 8
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        a = self.A2(self.A1(x))
        b = self.B2(self.B1(F.avg_pool2d(a, 2)))
        c = self.C2(self.C1(F.avg_pool2d(b, 2)))
        d = self.D2(self.D1(F.avg_pool2d(c, 2)))
        d_hat = self.Dhat(d)
        x_c = torch.cat([self.Dtilde(d), c, _up(d_hat)], 1)
        c_hat = self.Chat(x_c)
        x_b = torch.cat([self.Ctilde(x_c), b, _up(c_hat)], 1)
        b_hat = self.Bhat(x_b)
        x_a = torch.cat([self.Btilde(x_b), a, _up(b_hat)], 1)
        a_hat = self.Ahat(x_a)
        if not multiscale:
            return a_hat[..., :h, :w]
        return [o[..., :-(-h // s), :-(-w // s)] for o, s in zip((d_hat, c_hat, b_hat, a_hat), SCALES)]

    def table_params(self) -> dict:
        """Paper layer name -> number of weights (biases and PReLU slopes excluded, as in Table I)."""
        return {name: getattr(self, attr).conv.weight.numel() for name, attr in ATTR.items()}


def ms_targets(clean: torch.Tensor) -> list[torch.Tensor]:
    """The clean image average-pooled over 8x8, 4x4, 2x2 pixels and itself."""
    if clean.shape[-1] % 8 or clean.shape[-2] % 8:
        raise ValueError(f"multi-scale loss needs sides divisible by 8, got {tuple(clean.shape[-2:])}")
    return [F.avg_pool2d(clean, s) if s > 1 else clean for s in SCALES]


def ms_loss(outputs: Sequence[torch.Tensor], clean: torch.Tensor) -> torch.Tensor:
    """Multi-scale loss: the four MSEs weighted equally (their mean)."""
    return sum(F.mse_loss(o, t) for o, t in zip(outputs, ms_targets(clean))) / len(SCALES)


def output_loss(outputs, clean: torch.Tensor) -> torch.Tensor:
    """Output loss: MSE of the full-resolution output (a list of MS outputs or a tensor)."""
    return F.mse_loss(outputs[-1] if isinstance(outputs, (list, tuple)) else outputs, clean)


def load_cascnn(path, device="cpu") -> CASCNN:
    """A CASCNN (float32, eval mode) from an ``export_fp16`` file or a training checkpoint."""
    obj = ckpt.load(path, map_location=device)
    if obj.get("format") == ckpt.FP16_FORMAT:
        sd, meta = ckpt.load_fp16(path)
        kwargs = meta.get("kwargs", {})
    else:
        sd = obj["models"]["cascnn"]
        kwargs = _kwargs_from_state(sd)
    net = CASCNN(**kwargs)
    net.load_state_dict(sd)
    return net.to(device).eval()


def _kwargs_from_state(sd: dict) -> dict:
    return {"width": sd["A1.conv.weight"].shape[0], "output_prelu": "Ahat.act.weight" in sd}


# ---------------------------------------------------------------------------------------------
# Training recipe: MS loss, then output-loss fine-tuning (FT) for the last ``ft_fraction`` of steps.

@dataclass(frozen=True)
class Budget:
    name: str
    steps: int              # total optimizer steps (MS phase + FT phase)
    ft_fraction: float      # last fraction of the steps trained with the output loss
    crop: int               # square training crops (multiple of 8)
    batch: int              # global batch
    lr: float = 1e-4        # Adam; the paper's 1e-4 (1e-3 diverges, see docs/cpu-training.md)
    bf16: bool | str = "auto"  # bf16 autocast where the device computes it natively (paperlib.machine)
    channels_last: bool = True
    val_every: int = 0
    ckpt_every: int = 0
    n_val: int = 16         # validation crops (of size ``crop``)
    width: int = 128

    @property
    def ft_start(self) -> int:
        return self.steps - int(round(self.steps * self.ft_fraction))


BUDGETS = {
    # CI: a few steps on tiny crops, seconds.
    "smoke": Budget("smoke", steps=4, ft_fraction=0.25, crop=16, batch=2, val_every=2, ckpt_every=2, n_val=2),
    # What fits a 2-core CPU. Where bf16 is native (AVX512-BF16) autocast doubles the step rate with the
    # same loss per step as fp32 at this lr: 0.42 s/step, the committed cascnn-q20's 4000 steps took 46 min.
    # On an AVX2-only CPU "auto" trains in fp32 (bf16 would be emulated, ~10x slower): see
    # benchmarks/bench_train.py for the step rate of the CPU at hand.
    "cpu": Budget("cpu", steps=4000, ft_fraction=0.25, crop=96, batch=8,
                  val_every=250, ckpt_every=250, n_val=32),
    # The paper: 120x120 luma crops, batch 20, Adam 1e-4, MS loss "until convergence", then FT
    # "for several epochs". The step counts are ours: 200k MS steps (80 epochs of 50k crops) then
    # 50k FT steps (~7 epochs of 150k crops); the paper trained on fixed sets of crops, we draw fresh ones.
    "paper": Budget("paper", steps=250_000, ft_fraction=0.2, crop=120, batch=20,
                    val_every=5000, ckpt_every=5000, n_val=512),
}


# The committed checkpoints' data. The paper used 50k-150k 120x120 crops of ImageNet 2013 detection
# (not available here); LIVE1 and Classic5, which the notebook tests on, are never trained on.
TRAIN_SETS = ("bsds500:train", "bsds500:val", "imagenet-sample-1000")
VAL_SETS = ("bsds500:test",)


def make_step_fn(ft_start: int):
    """The CAS-CNN step: MS loss before ``ft_start``, output loss from it on."""

    def step_fn(models, optimizers, batch, step, ctx):
        jpg, clean = batch
        with ctx.autocast():
            outs = models["cascnn"](jpg, multiscale=True)
        outs = [o.float() for o in outs]
        out_mse = output_loss(outs, clean)
        loss = ms_loss(outs, clean) if step < ft_start else out_mse
        ctx.update(loss, "cascnn")
        return {"loss": loss.item(), "out_mse": out_mse.item(), "phase_ft": float(step >= ft_start)}

    return step_fn


def make_val_fn(val_set, channels_last: bool = True):
    """Validation: output MSE over all pixels of ``val_set`` (fp32) and its PSNR/IPSNR in dB."""
    jpeg_se = sum(float(((j - c) ** 2).sum()) for j, c in val_set)
    n_px = sum(c.numel() for _, c in val_set)

    def val_fn(models):
        net = models["cascnn"]
        dev = next(net.parameters()).device
        se = 0.0
        for j, c in val_set:
            j, c = j.to(dev), c.to(dev)
            if channels_last:
                j = j.contiguous(memory_format=torch.channels_last)
            se += float(((net(j).float() - c) ** 2).sum())
        mse = se / n_px
        psnr = 10 * math.log10(1 / mse) if mse > 0 else math.inf
        return {"mse": mse, "psnr": psnr, "ipsnr": psnr - 10 * math.log10(n_px / jpeg_se)}

    return val_fn


def train_cascnn(qf, train_images: Sequence[np.ndarray], out_dir, budget="cpu", *,
                 val_images: Sequence[np.ndarray] | None = None, sources: Sequence[str] = (),
                 seed: int = 0, stop_at_step: int | None = None, time_budget_s: float | None = None,
                 resume: bool = True, progress: bool = True, init_from=None, device: str = "cpu",
                 **overrides):
    """Train (or resume) CAS-CNN for ``qf`` under a budget; returns ``train.TrainResult``.

    qf: int, or (low, high) for a QF drawn per patch. train_images / val_images:
    HxW uint8 luma arrays. budget: a name in ``BUDGETS`` or a ``Budget``;
    ``overrides`` replace its fields (e.g. ``steps=500``). sources: names of the
    training sets, for the manifest. init_from: an fp16 export or checkpoint to
    start from (the paper starts other QFs from the QF20 network).
    Writes checkpoint.pt, manifest.json, log.csv, ``cascnn_ms_fp16.pt`` (the weights at
    the end of the MS phase) and, when finished,
    ``cascnn_fp16.pt`` (inference weights) into ``out_dir``.
    """
    from ..patches import PatchSampler, build_val_set
    from ..train import TrainConfig, check_resume, data_manifest, init_distributed, train

    b = BUDGETS[budget] if isinstance(budget, str) else budget
    b = replace(b, **overrides) if overrides else b
    rank, world = init_distributed()
    torch.manual_seed(seed)
    net = CASCNN(width=b.width)
    if init_from is not None:
        net.load_state_dict(load_cascnn(init_from).state_dict())
    opt = torch.optim.Adam(net.parameters(), lr=b.lr)
    sampler = PatchSampler(train_images, b.crop, b.batch, qf, seed=seed, rank=rank, world_size=world)
    val_fn = None
    if val_images is not None and len(val_images) and b.n_val:
        val_fn = make_val_fn(build_val_set(val_images, qf, crop=b.crop, n=b.n_val, seed=seed), b.channels_last)
    cfg = TrainConfig(out_dir=str(out_dir), steps=b.steps, channels_last=b.channels_last, bf16=b.bf16,
                      val_every=b.val_every, ckpt_every=b.ckpt_every, seed=seed, stop_at_step=stop_at_step,
                      time_budget_s=time_budget_s, resume=resume, progress=progress, device=device)
    manifest = {"recipe": "cascnn", "budget": b.name, "budget_config": asdict(b), "qf": qf,
                "model": {"arch": "CASCNN", "kwargs": net.kwargs,
                          "params": sum(p.numel() for p in net.parameters())},
                "data": data_manifest(sources, sampler, val_images),
                "init_from": str(init_from) if init_from is not None else None}
    check_resume(out_dir, resume, qf=qf, budget=b.name)
    run = lambda c: train(c, {"cascnn": net}, {"cascnn": opt}, make_step_fn(b.ft_start),  # noqa: E731
                          sampler.batch, val_fn=val_fn, manifest=manifest)
    ms_file = Path(out_dir) / "cascnn_ms_fp16.pt"
    if 0 < b.ft_start < b.steps and not ms_file.exists() and (stop_at_step is None or stop_at_step >= b.ft_start):
        # Stop at the end of the MS phase once, to keep its weights (Table II's "MS loss" row).
        t0 = time.monotonic()
        result = run(replace(cfg, stop_at_step=b.ft_start))
        if result.step == b.ft_start and rank == 0:
            ckpt.export_fp16(net.state_dict(), ms_file, {"arch": "CASCNN", "kwargs": net.kwargs, "qf": qf,
                                                         "budget": b.name, "steps": result.step, "phase": "ms"})
        if result.step < b.ft_start:  # the time budget ran out first
            return result
        if time_budget_s is not None:
            cfg = replace(cfg, time_budget_s=max(0.0, time_budget_s - (time.monotonic() - t0)))
    result = run(cfg)
    if result.finished and rank == 0:
        ckpt.export_fp16(net.state_dict(), Path(out_dir) / "cascnn_fp16.pt",
                         {"arch": "CASCNN", "kwargs": net.kwargs, "qf": qf, "budget": b.name,
                          "steps": result.step, "data": manifest["data"]["sources"],
                          "checkpoint_sha256": result.manifest.get("checkpoint_sha256")})
    return result


def _main(argv=None):
    """``python -m paperlib.models.cascnn --qf 20 --budget cpu --out DIR`` (also under torchrun).

    Training and validation data are dataset specs ``name[:split]`` resolved by
    ``paperlib.data`` (data root from ``--data-root`` or ``$PAPERLIB_DATA``).
    Calling it again with the same ``--out`` resumes the run.
    """
    import argparse

    from .. import data
    from ..train import add_run_arguments, parse_qf, qf_label

    ap = argparse.ArgumentParser(description=_main.__doc__)
    ap.add_argument("--qf", type=parse_qf, required=True, help="e.g. 20, or 1-60 for a QF drawn per patch")
    ap.add_argument("--budget", default="cpu", choices=sorted(BUDGETS))
    add_run_arguments(ap, TRAIN_SETS, VAL_SETS)
    ap.add_argument("--ft-fraction", type=float, default=None,
                    help="override the budget's share of output-loss (FT) steps; 1: FT only, e.g. to continue "
                         "a fine-tuned network given with --init-from")
    ap.add_argument("--publish", nargs="?", const="", default=None, metavar="NAME",
                    help="when finished, commit-ready copies to checkpoints/ as NAME and, when the run had an MS "
                         "phase, NAME-ms (default NAME: cascnn-q{QF})")
    a = ap.parse_args(argv)

    over = {"steps": a.steps} if a.steps else {}
    if a.ft_fraction is not None:
        over["ft_fraction"] = a.ft_fraction
    crop = BUDGETS[a.budget].crop
    train_images, small = data.gray_images(a.train, a.data_root, min_side=crop)
    if small:  # e.g. one imagenet-sample image is 56x75
        print(f"skipped {small} training image(s) smaller than the {crop}x{crop} crop")
    val_images, _ = data.gray_images(a.val, a.data_root)
    res = train_cascnn(a.qf, train_images, a.out, a.budget, val_images=val_images or None,
                       sources=list(a.train), seed=a.seed, time_budget_s=a.time_budget,
                       init_from=a.init_from, device=a.device, **over)
    if not res.manifest:  # not rank 0
        return
    print(f"step {res.step}/{res.manifest['steps_total']}, finished={res.finished}, "
          f"wall {res.wall_time_s:.0f}s (all chunks), out {res.out_dir}")
    if a.publish is not None and res.finished:
        name = a.publish or f"cascnn-q{qf_label(a.qf)}"
        print("published", ckpt.publish(a.out, name))
        if (Path(a.out) / "cascnn_ms_fp16.pt").exists():  # an FT-only run (--ft-fraction 1) has no MS phase to export
            print("published", ckpt.publish(a.out, f"{name}-ms", weights="cascnn_ms_fp16.pt"))


if __name__ == "__main__":
    from ..train import run_main
    run_main(_main)
