"""The main job's cost: every notebook's default run, cold and warm, beside its compute bound.

    PAPERLIB_DATA=/path/to/datasets .venv/bin/python benchmarks/bench_notebooks.py [--notebooks cascnn svoboda]

Cold: the notebook with its default parameters and an empty results cache (a fresh
``$PAPERLIB_CACHE``); warm: the same again with the cache it filled (nothing changed). Outputs
go to a temporary folder, never to ``figures/``. During the cold run every network evaluation
appends its FLOPs to ``$PAPERLIB_FLOP_LOG`` (``restorer.FLOP_LOG``: FLOPs per pixel counted with
``torch.utils.flop_counter``, times the pixels evaluated); the compute bound is those FLOPs over
this machine's 3x3-convolution rate (128 channels, channels_last, fp32 or native bf16: the
inference precision), measured in the same run. Goal (issue 15): cold wall time <= 1.5 x the
bound, warm <= 2 min for all notebooks together. Also times the test suite once (``--tests``).
Writes ``figures/benchmarks/notebooks.{csv,md}`` with the CPU named. Hours on a 2-core CPU.
``--warm-only``: each notebook once, with the user's results cache as an earlier ``make figures`` left it
(``figures/benchmarks/notebooks_warm``).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from paperlib import machine, report, speed
from paperlib.restorer import FLOP_LOG

ROOT = Path(__file__).resolve().parents[1]


def run(nb: str, env: dict, out: Path) -> tuple[float, str]:
    """Wall time of the notebook's default run, and its slowest cell (papermill's per-cell durations)."""
    t0 = time.perf_counter()
    result = out / f"{nb}.out.ipynb"
    subprocess.run([str(ROOT / ".venv" / "bin" / "papermill"), "--cwd", str(ROOT / "notebooks"),
                    str(ROOT / "notebooks" / f"{nb}.ipynb"), str(result), "-p", "out_dir",
                    str(out / nb), "--no-progress-bar"], env=env, check=True, capture_output=True)
    wall = time.perf_counter() - t0
    cells = [(c.get("metadata", {}).get("papermill", {}).get("duration") or 0.0, i)
             for i, c in enumerate(json.loads(result.read_text())["cells"])]
    d, i = max(cells)
    return wall, f"cell {i}: {d:.1f} s"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--notebooks", nargs="*", default=sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb")))
    ap.add_argument("--tests", action="store_true", help="also time `python -m pytest` once")
    ap.add_argument("--warm-only", action="store_true",
                    help="no cold run: time each notebook once with the user's results cache as an earlier run "
                         "(`make figures`) left it")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    cpu = machine.describe("cpu")
    conv = speed.conv3x3_gflops(128, 256, 256, bf16=machine.bf16_native("cpu"), min_time_s=2.0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = {**os.environ} if a.warm_only else {**os.environ, "PAPERLIB_CACHE": str(tmp / "cache")}
        env.pop("PAPERLIB_NO_CACHE", None)
        for nb in a.notebooks:
            row = {"notebook": nb}
            if not a.warm_only:
                log = tmp / f"{nb}.flops"
                row["cold_s"], row["cold_slowest_cell"] = run(nb, {**env, FLOP_LOG: str(log)}, tmp)
                flops = sum(float(line.split("\t")[1]) for line in log.read_text().splitlines()) if log.exists() else 0.0
                bound = flops / (conv["gflops"] * 1e9)
                row.update(network_tflop=flops / 1e12, compute_bound_s=bound,
                           cold_over_bound=row["cold_s"] / bound if bound else float("nan"))
            row["warm_s"], row["warm_slowest_cell"] = run(nb, env, tmp)
            rows.append({**row, "conv3x3_gflops": conv["gflops"], "cpu": cpu, "threads": torch.get_num_threads()})
            print(rows[-1], flush=True)
            save(rows, a, conv, cpu)
        if a.tests:
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "pytest", "-q"], check=False, cwd=ROOT, env=env, capture_output=True)
            rows.append({"notebook": "test suite (python -m pytest)", "cold_s": time.perf_counter() - t0, "cpu": cpu,
                         "threads": torch.get_num_threads()})
            save(rows, a, conv, cpu)


def save(rows: list[dict], a, conv: dict, cpu: str):
    """Write the table so far (after every notebook: a run cut short keeps what it measured)."""
    nbs = [r for r in rows if not r["notebook"].startswith("test suite")]
    total = {"notebook": "all notebooks", "warm_s": sum(r["warm_s"] for r in nbs),
             "conv3x3_gflops": conv["gflops"], "cpu": cpu, "threads": torch.get_num_threads()}
    if not a.warm_only:
        total.update(cold_s=sum(r["cold_s"] for r in nbs), network_tflop=sum(r["network_tflop"] for r in nbs),
                     compute_bound_s=sum(r["compute_bound_s"] for r in nbs))
        total["cold_over_bound"] = total["cold_s"] / total["compute_bound_s"] if total["compute_bound_s"] else float("nan")
    rows = nbs + [total] + [r for r in rows if r not in nbs]
    out = report.figures_dir("benchmarks", a.out)
    cols = ["notebook", "cold_s", "warm_s", "network_tflop", "compute_bound_s", "cold_over_bound", "cold_slowest_cell",
            "warm_slowest_cell", "conv3x3_gflops", "cpu", "threads"]
    df = pd.DataFrame(rows).reindex(columns=cols)
    if a.warm_only:
        df = df.drop(columns=["cold_s", "network_tflop", "compute_bound_s", "cold_over_bound", "cold_slowest_cell"])
    report.save_table(df, out, "notebooks_warm" if a.warm_only else "notebooks",
                      f"Default runs of the notebooks on {cpu}, torch {torch.__version__}, {torch.get_num_threads()} "
                      "threads: " + ("warm only (the results cache as an earlier run left it, nothing changed)"
                                     if a.warm_only else "cold (empty results cache) and warm (nothing changed), and the "
                                     "compute bound = FLOPs of every network evaluation / this machine's 3x3-conv rate "
                                     f"({conv['gflops']:.0f} GFLOP/s, {conv['precision']})")
                      + "; the slowest cell of each run (papermill's durations) (benchmarks/bench_notebooks.py). "
                      "Goals: cold <= 1.5 x bound; warm <= 120 s in all.", floatfmt=".1f")


if __name__ == "__main__":
    main()
