"""CAS-CNN training and inference throughput on this machine.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_train.py [--steps 4] [--batch 8] [--crop 96]

Training: full Adam steps (forward at all four scales, MS loss, backward, update)
on batch x crop^2 patches, for fp32 NCHW, fp32 channels_last and channels_last
with bf16 autocast. Then a few steps of the real loop (``train.train``, prefetch
thread on) to show the share of step time spent waiting for data. Inference:
one 512x768 image, no grad. Timings are medians; other processes on the
machine slow them down (2 cores here), so run it on a quiet machine.
"""
from __future__ import annotations

import argparse
import glob
import statistics
import tempfile
import time

import numpy as np
import torch

from paperlib import images
from paperlib.models.cascnn import CASCNN, make_step_fn, ms_loss
from paperlib.patches import PatchSampler
from paperlib.train import TrainConfig, train

MODES = {"fp32": (False, False), "channels_last": (True, False), "channels_last+bf16": (True, True)}


def _images():
    files = sorted(glob.glob("/work/shared/datasets/bsds500/train/*.jpg"))[:8]
    if files:
        return [images.read_gray(f) for f in files], "bsds500/train[:8]"
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
    a = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; CAS-CNN, batch {a.batch} x {a.crop}^2, "
          f"median of {a.steps} steps")
    px = a.batch * a.crop * a.crop
    print(f"\n{'training':<20} {'s/step':>8} {'patches/s':>10} {'kpixel/s':>9}")
    for name, (cl, bf16) in MODES.items():
        s = bench_train_step(a.batch, a.crop, a.steps, cl, bf16)
        print(f"{name:<20} {s:8.3f} {a.batch / s:10.2f} {px / s / 1e3:9.1f}")
    imgs, src = _images()
    print(f"\nreal loop (train.train, prefetch thread, {src}, QF20):")
    for bf16 in (False, True):
        pps, wait, make_s = bench_loop(imgs, a.batch, a.crop, a.steps, bf16)
        print(f"  channels_last{'+bf16' if bf16 else '     '}  {pps:6.2f} patches/s, data wait {100 * wait:.2f}% of "
              f"step time (making a batch alone: {1e3 * make_s:.1f} ms)")
    print(f"\n{'inference 512x768':<20} {'s/image':>8} {'Mpixel/s':>9}")
    for name, (cl, bf16) in MODES.items():
        s = bench_inference(cl, bf16)
        print(f"{name:<20} {s:8.3f} {512 * 768 / s / 1e6:9.3f}")


if __name__ == "__main__":
    main()
