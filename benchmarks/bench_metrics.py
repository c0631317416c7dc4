"""Time one LIVE1 pass (29 images) at one QF with all three metrics, per protocol. Target: gray < 2 s.

    PAPERLIB_DATA=/path/to/datasets .venv/bin/python benchmarks/bench_metrics.py
"""
import time

from paperlib import data, protocols

paths = data.image_paths("live1")
for name in protocols.PROTOCOLS:
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        protocols.evaluate(paths, [10], name, progress=False)
        times.append(time.perf_counter() - t0)
    best = min(times)
    print(f"{name:18s} LIVE1 QF10, PSNR+SSIM+PSNR-B: {best:.2f} s (best of 3)")
