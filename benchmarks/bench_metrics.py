"""A JPEG row's cost: PSNR, SSIM and PSNR-B of one image against its reference, per protocol, with glibc's
default allocator and with ``machine.keep_freed_memory`` (which ``protocols.evaluate`` turns on).

    PAPERLIB_DATA=/path/to/datasets .venv/bin/python benchmarks/bench_metrics.py

The 29 LIVE1 images at QF 10 under each protocol, compressed once; ``Protocol.score`` timed over all of them,
best of 3 passes, in milliseconds per image. Each allocator setting runs in its own process (the setting cannot be
undone). No results cache: ``score`` is the computation itself. Writes ``figures/benchmarks/metrics.{csv,md}``
with the CPU named.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import pandas as pd

from paperlib import data, machine, protocols, report

ONE = """
import json, sys, time
from paperlib import data, machine, protocols
kept = machine.keep_freed_memory() if sys.argv[1] == "kept" else False
paths = data.image_paths("live1", download_missing=False)
out = {}
for name in protocols.PROTOCOLS:
    p = protocols.get(name)
    pairs = [(ref, p.compress(ref, 10)[0]) for ref in (p.reference(path) for path in paths)]
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for ref, dec in pairs:
            p.score(ref, dec)
        best = min(best, time.perf_counter() - t0)
    out[name] = {"ms_per_image": 1000 * best / len(pairs), "images": len(pairs), "kept": kept}
print(json.dumps(out))
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    data.image_paths("live1", download_missing=False)   # says what is missing before anything runs
    rows = []
    for setting in ("default", "kept"):
        proc = subprocess.run([sys.executable, "-c", ONE, setting], check=True, capture_output=True, text=True)
        for name, r in json.loads(proc.stdout).items():
            rows.append({"protocol": name, "allocator": "keep_freed_memory" if setting == "kept" else "glibc default",
                         "took_effect": r["kept"] if setting == "kept" else "", "ms_per_image": round(r["ms_per_image"], 1),
                         "images": r["images"], "cpu": machine.describe("cpu"),
                         "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())})
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    caption = ("PSNR + SSIM + PSNR-B of one LIVE1 image at QF 10 against its reference (`Protocol.score`), per "
               "protocol, best of 3 passes over the 29 images, each allocator setting in its own process, no results "
               f"cache (benchmarks/bench_metrics.py), on {machine.describe('cpu')}.")
    report.save_table(table, report.figures_dir("benchmarks", a.out), "metrics", caption, floatfmt=".1f")


if __name__ == "__main__":
    main()
