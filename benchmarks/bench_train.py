"""CAS-CNN training and inference throughput on this machine, per precision and memory layout.

    .venv/bin/python benchmarks/bench_train.py [--steps 4] [--batch 8] [--crop 96]

Training: full Adam steps (forward at all four scales, MS loss, backward, update)
on batch x crop^2 patches (the ``cpu`` budget's 8 x 96^2), for fp32 NCHW, fp32
channels_last and, only where this CPU computes bf16 natively (``paperlib.machine``),
channels_last with bf16 autocast; elsewhere that row reads "not native on this CPU"
(emulated bf16 is tens of times slower). The row ``cpu budget (bf16=auto)`` is what
a ``cpu``-budget run does here. Then a few steps of the real loop (``train.train``,
prefetch thread on) to show the share of step time spent waiting for data.
Inference: one 512x768 image, no grad. Timings are medians; other processes on the
machine slow them down (2 cores here), so run it on a quiet machine. The rows, with the
CPU model and the instruction set torch dispatches to, go to
``figures/benchmarks/train_cascnn.{csv,md}``.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
import pandas as pd
import torch

from paperlib import data, images, machine, report
from paperlib.models.cascnn import BUDGETS, CASCNN, make_step_fn, ms_loss
from paperlib.patches import PatchSampler
from paperlib.train import TrainConfig, train

AUTO = machine.resolve_bf16(BUDGETS["cpu"].bf16, "cpu")
MODES = {"fp32 NCHW": (False, False), "fp32 channels_last": (True, False), "bf16 channels_last": (True, True),
         "cpu budget (bf16=auto)": (True, AUTO)}


def _images():
    try:
        files = data.image_paths("bsds500", "train", download_missing=False)[:8]
        return [images.read_gray(f) for f in files], "bsds500/train[:8]"
    except (data.DataNotFound, FileNotFoundError):
        rng = np.random.default_rng(0)
        return [rng.integers(0, 256, (321, 481), dtype=np.uint8) for _ in range(4)], "synthetic noise"


def _ctx(bf16):
    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else torch.autocast("cpu", enabled=False)


def bench_train_step(batch, crop, steps, channels_last, bf16, warmup=2):
    torch.manual_seed(0)
    net = CASCNN()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    x = torch.rand(batch, 1, crop, crop).contiguous(memory_format=fmt)
    y = torch.rand(batch, 1, crop, crop)
    times = []
    for i in range(warmup + steps):
        t = time.perf_counter()
        with _ctx(bf16):
            outs = net(x, multiscale=True)
        loss = ms_loss([o.float() for o in outs], y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return statistics.median(times)


@torch.no_grad()
def bench_inference(channels_last, bf16, reps=3, shape=(512, 768)):
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = CASCNN().eval().to(memory_format=fmt)
    x = torch.rand(1, 1, *shape).contiguous(memory_format=fmt)
    times = []
    for i in range(reps + 1):
        t = time.perf_counter()
        with _ctx(bf16):
            net(x)
        if i:
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_loop(imgs, batch, crop, steps, bf16):
    """The real loop with the prefetch thread: mean patches/s and data-wait share."""
    torch.manual_seed(0)
    net = CASCNN()
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    sampler = PatchSampler(imgs, crop, batch, 20, seed=0)
    t = time.perf_counter()
    for s in range(steps):
        sampler.batch(s)
    make_s = (time.perf_counter() - t) / steps
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(tmp, steps=steps + 1, bf16=bf16, progress=False)
        res = train(cfg, {"cascnn": net}, {"cascnn": opt}, make_step_fn(10 ** 9), sampler.batch)
    log = res.log[1:]  # drop the first (warm-up) step
    return (statistics.mean(r["patches_per_s"] for r in log), statistics.mean(r["data_wait"] for r in log),
            make_s)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--crop", type=int, default=96)
    ap.add_argument("--out", default=None, help="folder for the table (default figures/benchmarks)")
    a = ap.parse_args()
    cpu = machine.describe("cpu")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {cpu}, bf16 native: "
          f"{machine.bf16_native('cpu')}; CAS-CNN, batch {a.batch} x {a.crop}^2, median of {a.steps} steps")
    px = a.batch * a.crop * a.crop
    rows = []

    def row(what, mode, precision, **kw):
        rows.append({"what": what, "mode": mode, "precision": precision, "cpu": cpu,
                     "threads": torch.get_num_threads(), **kw})
        print(f"{what:<10} {mode:<24} " + "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                                    for k, v in kw.items()))

    for name, (cl, bf16) in MODES.items():
        if bf16 and not machine.bf16_native("cpu"):
            row("training", name, "bf16 autocast", note=machine.NOT_NATIVE)
            continue
        s = bench_train_step(a.batch, a.crop, a.steps, cl, bf16)
        row("training", name, machine.precision_label(bf16), s_per_step=s, patches_per_s=a.batch / s,
            kpixel_per_s=px / s / 1e3)
    imgs, src = _images()
    pps, wait, make_s = bench_loop(imgs, a.batch, a.crop, a.steps, "auto")
    row("real loop", f"train.train, bf16=auto, {src}, QF20", machine.precision_label(AUTO), patches_per_s=pps,
        data_wait_share=wait, make_batch_s=make_s)
    for name, (cl, bf16) in MODES.items():
        if bf16 and not machine.bf16_native("cpu"):
            row("inference", name, "bf16 autocast", note=machine.NOT_NATIVE)
            continue
        s = bench_inference(cl, bf16)
        row("inference", name, machine.precision_label(bf16), s_per_image=s, mpixel_per_s=512 * 768 / s / 1e6)
    out = report.figures_dir("benchmarks", a.out)
    report.save_table(pd.DataFrame(rows), out, "train_cascnn",
                      f"CAS-CNN training steps (batch {a.batch} x {a.crop}^2, median of {a.steps}) and 512x768 "
                      f"inference on {cpu}, torch {torch.__version__}, {torch.get_num_threads()} threads "
                      "(benchmarks/bench_train.py).")


if __name__ == "__main__":
    main()
