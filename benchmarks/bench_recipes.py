"""Training speed of every recipe's `cpu` budget on this machine: patches/s and the share of each step spent
waiting for data.

    PAPERLIB_DATA=/path/to/datasets .venv/bin/python benchmarks/bench_recipes.py [--steps 5]

Each recipe trains for ``--steps`` steps of its own `cpu` budget (batch, crop, width, precision ``bf16="auto"``)
in the real loop (``train.train``, prefetch thread on), from scratch, on the first 50 BSDS500 train images (the
data's size does not change a step), without validation; QGCN's two phases (64x64 crops, then 256x256 from
``hard_start``) are timed separately. The GAN recipes start their critic at step 1 so that
the steps timed are the ones that dominate their runs; their perceptual terms use whichever VGG resolves (the
labelled random-weight stand-in has the same architecture, so the same cost). The first step (warm-up) is dropped; patches/s and the
data-wait share are the means of the others, as the training log records them. Writes
``figures/benchmarks/train_recipes.{csv,md}`` with the CPU named. Other processes slow the steps down (2 cores
here): the caption gives the load average.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import replace

import pandas as pd
import torch

from paperlib import data, machine, report
from paperlib.models import cascnn, onetomany, posterior, qgcn, svoboda


def recipes(gray, rgb):
    """name -> (function that trains ``steps`` steps into a folder, its budget)."""
    kw = {"progress": False, "val_images": None}
    return {
        "CAS-CNN, QF 20": (lambda out, n: cascnn.train_cascnn(20, gray, out, "cpu", steps=n, **kw), cascnn.BUDGETS["cpu"]),
        "L4 residual, QF 20": (lambda out, n: svoboda.train_svoboda("L4", "residual", 20, gray, out, "cpu", steps=n, **kw),
                               svoboda.get_budget("cpu", "L4")),
        "L8 residual, QF 20": (lambda out, n: svoboda.train_svoboda("L8", "residual", 20, gray, out, "cpu", steps=n, **kw),
                               svoboda.get_budget("cpu", "L8")),
        "QGCN colour, 64x64 phase": (
            lambda out, n: qgcn.train_qgcn("qgcn", rgb, out, "cpu", steps=n, hard_start=n, **kw), qgcn.BUDGETS["cpu"]),
        "QGCN colour, 256x256 phase": (
            lambda out, n: qgcn.train_qgcn("qgcn", rgb, out, "cpu", steps=n, hard_start=1, **kw),
            replace(qgcn.BUDGETS["cpu"], batch=qgcn.BUDGETS["cpu"].hard_batch, crop=qgcn.BUDGETS["cpu"].hard_crop)),
        "One-to-Many Baseline, gray QF 5": (
            lambda out, n: onetomany.train_onetomany("baseline", 5, gray, out, "cpu", steps=n, **kw),
            onetomany.BUDGETS["cpu"]),
        "One-to-Many, gray QF 5 (with D)": (
            lambda out, n: onetomany.train_onetomany("onetomany", 5, gray, out, "cpu", steps=n, critic_start=1, **kw),
            onetomany.BUDGETS["cpu"]),
        "Posterior: Ours-MSE": (lambda out, n: posterior.train_posterior("mse", rgb, out, "cpu", steps=n, mse_steps=n, **kw),
                                posterior.BUDGETS["cpu"]),
        "Posterior: Ours (with D)": (lambda out, n: _ours(rgb, out, n, kw), posterior.BUDGETS["cpu"]),
    }


def _ours(rgb, out, n, kw):
    """Ours needs an Ours-MSE for its second-moment term: one trained for a single step stands in (its weights
    do not change the cost of a step)."""
    from pathlib import Path
    posterior.train_posterior("mse", rgb, Path(out) / "mse", "cpu", steps=1, mse_steps=1, **kw)
    return posterior.train_posterior("posterior", rgb, Path(out) / "ours", "cpu", steps=n,
                                     mmse=Path(out) / "mse" / "posterior_fp16.pt", **kw)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--only", nargs="*", default=None, help="recipe names to run (default: all)")
    ap.add_argument("--out", default=None, help="folder for the table (default figures/benchmarks)")
    a = ap.parse_args()
    cpu = machine.describe("cpu")
    gray, _ = data.gray_images(["bsds500:train"], limit=50)
    rgb, _ = data.rgb_images(["bsds500:train"], limit=50)
    rows = []
    for name, (run, b) in recipes(gray, rgb).items():
        if a.only and name not in a.only:
            continue
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            res = run(tmp, a.steps + 1)
        log = res.log[1:]
        pps = statistics.mean(r["patches_per_s"] for r in log)
        rows.append({"recipe": name, "batch": b.batch, "crop": b.crop, "precision": res.manifest.get("precision"),
                     "steps_timed": len(log), "patches_per_s": pps, "s_per_step": b.batch / pps,
                     "data_wait_share": statistics.mean(r["data_wait"] for r in log),
                     "wall_s": time.perf_counter() - t0, "threads": torch.get_num_threads(), "cpu": cpu})
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in rows[-1].items()})
    out = report.figures_dir("benchmarks", a.out)
    report.save_table(pd.DataFrame(rows), out, "train_recipes",
                      f"Training steps of each recipe's `cpu` budget in the real loop (mean of {a.steps} steps after "
                      f"one warm-up step; batch x crop^2 patches per step) on {cpu}, torch {torch.__version__}, "
                      f"{torch.get_num_threads()} threads; 1-min load average at the end "
                      f"{os.getloadavg()[0]:.1f} (benchmarks/bench_recipes.py).")


if __name__ == "__main__":
    main()
