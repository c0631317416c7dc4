"""A user's large photo: time and peak memory of `python -m paperlib restore` on a 6000x4000 JPEG, per family.

    PAPERLIB_DATA=/path/to/datasets .venv/bin/python benchmarks/bench_large_photo.py [--width 6000 --height 4000]

The photo: BSDS500 test image 100007 (a real photo) resized to width x height (bicubic) with fine
noise added so it has detail at every scale, saved by Pillow at QF 30 (colour 4:2:0, and a gray
copy for the gray networks). Each restore runs in its own process (the CLI exactly as a user runs
it: tiles of 512 with each family's receptive-field halo); its peak resident memory is that
process's ``ru_maxrss``. Writes ``figures/benchmarks/large_photo.{csv,md}`` with the CPU named.
Goal (the trust issue): under 4 GB for every family. With ``--models A B``, only those rows are
measured again; the other rows of an existing table are kept (each row names its CPU).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from paperlib import data, machine, report, zoo

MODELS = {"cascnn-q20": "gray", "l4-residual-q20": "gray", "l8-residual-q20": "gray", "qgcn-color": "color",
          "edsr-color": "color", "qgcn-gray": "gray", "onetomany-gray-q5": "gray", "posterior-color": "color"}
WRAPPER = ("import resource, sys; from paperlib import cli; rc = cli.main(sys.argv[1:]); "
           "print('PEAK_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)")


def photo(width: int, height: int, folder: Path) -> dict:
    src = data.image_paths("bsds500", "test", download_missing=False)[0]
    with Image.open(src) as im:
        big = np.asarray(im.convert("RGB").resize((width, height), Image.BICUBIC), dtype=np.float32)
    big += np.random.default_rng(0).normal(0, 4, big.shape)
    rgb = Image.fromarray(np.clip(big, 0, 255).astype(np.uint8))
    files = {"color": folder / "photo.jpg", "gray": folder / "photo_gray.jpg"}
    rgb.save(files["color"], quality=30)
    rgb.convert("L").save(files["gray"], quality=30)
    return files


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--width", type=int, default=6000)
    ap.add_argument("--height", type=int, default=4000)
    ap.add_argument("--models", nargs="*", default=list(MODELS))
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    cpu = machine.describe("cpu")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        files = photo(a.width, a.height, Path(tmp))
        for name in a.models:
            if name not in zoo.names():
                rows.append({"model": name, "note": "not committed"})
                continue
            kind = MODELS.get(name, "color")
            dst = Path(tmp) / f"{name}.png"
            load = os.getloadavg()[0]   # other work on the machine while it ran (1-minute load average)
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", WRAPPER, "restore", str(files[kind]), str(dst),
                                   "--model", name, "--force"], check=False, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            peak = next((int(line.split()[1]) for line in proc.stdout.splitlines() if line.startswith("PEAK_KB")), None)
            rows.append({"model": name, "family": zoo.info(name)["arch"], "input": f"{kind} {a.width}x{a.height} QF30",
                         "wall_s": wall, "peak_rss_gb": peak / 2 ** 20 if peak else float("nan"),
                         "under_4gb": bool(peak and peak / 2 ** 20 < 4), "exit_status": proc.returncode,
                         "cpu": cpu, "threads": torch.get_num_threads(), "load_before": load,
                         "note": "" if proc.returncode == 0 else proc.stderr.strip().splitlines()[-1]})
            print(rows[-1], flush=True)
    out = report.figures_dir("benchmarks", a.out)
    table = pd.DataFrame(rows)
    old = out / "large_photo.csv"
    if old.is_file():
        kept = pd.read_csv(old)
        kept = kept[~kept["model"].isin(table["model"])]
        order = {name: i for i, name in enumerate(MODELS)}
        table = pd.concat([kept, table], ignore_index=True)
        table = table.sort_values("model", key=lambda s: s.map(lambda m: order.get(m, len(order))), kind="stable")
    report.save_table(table, out, "large_photo",
                      f"`python -m paperlib restore` on a {a.width}x{a.height} JPEG (QF 30; BSDS500 test 100007 "
                      f"resized, fine noise added), one process per model, peak RSS of that process, on {cpu} "
                      "(benchmarks/bench_large_photo.py). Goal: under 4 GB for every family.", floatfmt=".2f")


if __name__ == "__main__":
    main()
