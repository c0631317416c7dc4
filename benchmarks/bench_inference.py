"""Inference throughput of every model family on this machine, beside its 3x3-convolution rate.

    .venv/bin/python benchmarks/bench_inference.py [--size 512] [--min-time 1.5]

For each family (the committed network named below, or a freshly initialised one of the same
shape when it is not committed: weights do not change the speed), the forward pass on a
``size`` x ``size`` image, batch 1, in fp32 NCHW, fp32 channels_last and, only where the device
computes bf16 natively, bf16 autocast channels_last (elsewhere the row says "not native on this
CPU"). Beside it: FLOPs per pixel (``speed.flops_per_pixel``), the GFLOP/s that makes, this
machine's rate on a 128-channel 3x3 convolution in the same precision and layout, and their ratio.
Writes ``figures/benchmarks/inference.{csv,md}`` with the CPU named.
"""
from __future__ import annotations

import argparse

import pandas as pd
import torch

from paperlib import machine, report, speed, zoo
from paperlib.models import cascnn, onetomany, posterior, qgcn, svoboda

FAMILIES = {   # label -> (committed network, a builder of the same shape, input channels)
    "CAS-CNN": ("cascnn-q20", lambda: cascnn.CASCNN(), 1),
    "L4": ("l4-residual-q20", lambda: svoboda.L4(), 1),
    "L8": ("l8-residual-q20", lambda: svoboda.L8(), 1),
    "EDSR (colour, n_res 8)": ("edsr-color", lambda: qgcn.EDSR(3, n_res=8), 3),
    "QGCN (colour, n_res 8)": ("qgcn-color", lambda: qgcn.QGCN(3, n_res=8), 3),
    "One-to-Many F(Y;Z) (gray)": ("onetomany-gray-q5", lambda: onetomany.ProposalNet(1), 1),
    "Posterior G(Z,Y) (colour, cpu budget)": ("posterior-color", lambda: posterior.PosteriorNet(3), 3),
}


class _Call(torch.nn.Module):
    """The family's forward with its extra inputs (tables, noise) fixed, so speed.* can time it."""

    def __init__(self, net, size):
        super().__init__()
        self.net = net
        self.tables = torch.full((1, 2 if net.channels == 3 else 1, 8, 8), 20.0) if net.uses_tables else None
        self.z = net.noise(torch.zeros(1, net.channels, size, size)) if net.stochastic else None

    def forward(self, x):
        args = [x] + ([self.tables] if self.tables is not None else [])
        return self.net(*args, **({"z": self.z} if self.z is not None else {}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--min-time", type=float, default=1.5)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    cpu = machine.describe("cpu")
    rows = []
    modes = [("fp32", "NCHW", False, False), ("fp32", "channels_last", True, False),
             ("bf16 autocast", "channels_last", True, True)]
    for label, (name, build, c) in FAMILIES.items():
        committed = name in zoo.names() and zoo.info(name).get("file")
        net = zoo.load(name) if committed else build().eval()
        call = _Call(net, a.size).eval()
        fpp = speed.flops_per_pixel(call, 64, 64, in_channels=c) if not net.stochastic else None
        if fpp is None:   # the noise input has the image's size: count on a 64x64 call of its own
            fpp = speed.flops_per_pixel(_Call(net, 64).eval(), 64, 64, in_channels=c)
        for precision, layout, cl, bf16 in modes:
            row = {"family": label, "network": name if committed else f"{name} (not committed: fresh weights)",
                   "precision": precision, "layout": layout, "image": f"{a.size}x{a.size}", "cpu": cpu,
                   "mflop_per_pixel": fpp / 1e6}
            if bf16 and not machine.bf16_native("cpu"):
                rows.append({**row, "note": machine.NOT_NATIVE})
                continue
            r = speed.forward_throughput(call, a.size, a.size, in_channels=c, channels_last=cl, bf16=bf16,
                                         min_time_s=a.min_time)
            conv = speed.conv3x3_gflops(128, 256, 256, channels_last=cl, bf16=bf16, min_time_s=a.min_time)
            gflops = r["mpixel_per_s"] * fpp / 1e3
            rows.append({**row, "mpixel_per_s": r["mpixel_per_s"], "gflops": gflops,
                         "conv3x3_gflops": conv["gflops"], "share_of_conv3x3": gflops / conv["gflops"],
                         "threads": r["threads"], "load_avg_1min": r["load_avg_1min"], "note": ""})
            print(f"{label:28s} {precision:13s} {layout:13s} {r['mpixel_per_s']:.3f} Mpixel/s "
                  f"({gflops / conv['gflops']:.0%} of the 3x3-conv rate)", flush=True)
    out = report.figures_dir("benchmarks", a.out)
    report.save_table(pd.DataFrame(rows), out, "inference",
                      f"Forward throughput per model family on {cpu}, torch {torch.__version__}, "
                      f"{torch.get_num_threads()} threads, batch 1, {a.size}x{a.size} (benchmarks/bench_inference.py). "
                      "share_of_conv3x3 = the network's GFLOP/s over this machine's rate on a 128-channel 3x3 "
                      "convolution (256x256, same precision and layout), measured in the same run.")


if __name__ == "__main__":
    main()
