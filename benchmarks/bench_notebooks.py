"""The main job's cost: every notebook's default run, cold and warm, beside its compute bound.

    PAPERLIB_DATA=/path/to/datasets .venv/bin/python benchmarks/bench_notebooks.py [--notebooks cascnn svoboda]

Cold: the notebook with its default parameters and an empty results cache (a fresh
``$PAPERLIB_CACHE``); warm: the same again with the cache it filled (nothing changed). Outputs
go to a temporary folder, never to ``figures/``. During the cold run every network evaluation
appends its FLOPs to ``$PAPERLIB_FLOP_LOG`` (``restorer.FLOP_LOG``: counted with ``torch.utils.flop_counter``
at the call's own input shape); the compute bound is those FLOPs over
this machine's 3x3-convolution rate (128 channels, channels_last, fp32: the notebooks' inference
precision on every machine), measured in the same run: just before and just after each notebook's cold run, the
bound taken at the mean of the two (on a shared machine the rate drifts over a run; one sample decided the ratio).
Goal (issue 15): cold wall time <= 1.5 x the
bound, warm <= 2 min for all notebooks together. Also times the test suite once (``--tests``).
Writes ``figures/benchmarks/notebooks.{csv,md}`` with the CPU named. Hours on a 2-core CPU.
``--warm-only``: each notebook once, with the user's results cache as an earlier ``make figures`` left it
(``figures/benchmarks/notebooks_warm``); with ``--jobs N``, N notebooks side by side on cores / N threads each,
the way ``make figures`` runs them (pass ``--notebooks`` in its LONGEST_FIRST order), and the total is the wall
time of them all. ``--update``: the cold table keeps the rows of notebooks not measured this time (each row names
its commit and date), so notebooks can be measured in separate runs, e.g. two at once on two cores.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import torch

from paperlib import machine, report, speed
from paperlib.restorer import FLOP_LOG

ROOT = Path(__file__).resolve().parents[1]


def conv3x3_rate() -> float:
    """GFLOP/s of the bound's convolution now (the notebooks infer in fp32 on every machine, so the bound is set by
    the fp32 rate even where bf16 is native, where it would be about twice as fast)."""
    return speed.conv3x3_gflops(128, 256, 256, bf16=False, min_time_s=2.0)["gflops"]


def commit() -> str:
    """The commit measured, ``-dirty`` when the working tree differs from it."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return git("rev-parse", "--short", "HEAD") + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def run(nb: str, env: dict, out: Path, kind: str = "warm") -> tuple[float, str]:
    """Wall time of the notebook's default run, and its slowest cell (papermill's per-cell durations, kept in
    ``out/<nb>.<kind>.ipynb``)."""
    t0 = time.perf_counter()
    result = out / f"{nb}.{kind}.ipynb"
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
    ap.add_argument("--jobs", type=int, default=1,
                    help="--warm-only: notebooks run this many at a time, each on cores / jobs threads (make figures)")
    ap.add_argument("--update", action="store_true",
                    help="keep the rows of other notebooks already in figures/benchmarks/notebooks.csv")
    ap.add_argument("--outputs", default=None, help="keep the notebooks' outputs here (default: a temporary folder)")
    ap.add_argument("--cache", default=None,
                    help="cold: the results cache to fill ($PAPERLIB_CACHE; empty or new; default: a temporary folder), "
                         "e.g. to keep it for make figures")
    ap.add_argument("--drop", nargs="*", default=[], help="--update: rows to remove (e.g. measured by older code)")
    ap.add_argument("--note", default="", help="conditions to state in the caption (what else ran beside it)")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    if a.jobs > 1 and not a.warm_only:
        ap.error("--jobs needs --warm-only: the cold run compares each notebook alone with its compute bound")
    cpu = machine.describe("cpu")
    conv = {"gflops": conv3x3_rate(), "precision": "fp32"}   # the notebooks infer in fp32 (paperlib.restorer)
    rows = []
    stamp = {"commit": commit(), "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        out = Path(a.outputs) if a.outputs else tmp
        out.mkdir(parents=True, exist_ok=True)
        cache = Path(a.cache) if a.cache else tmp / "cache"
        if not a.warm_only and (cache / "results").exists() and any((cache / "results").iterdir()):
            sys.exit(f"--cache {cache}: its results cache is not empty; a cold run starts from an empty one")
        env = {**os.environ} if a.warm_only else {**os.environ, "PAPERLIB_CACHE": str(cache)}
        env.pop("PAPERLIB_NO_CACHE", None)
        if a.warm_only and a.jobs > 1:
            threads = max(1, (os.cpu_count() or 1) // a.jobs)
            lane_env = {**env, "OMP_NUM_THREADS": str(threads)}
            t0 = time.perf_counter()
            with ThreadPoolExecutor(a.jobs) as pool:
                done = list(pool.map(lambda nb: run(nb, lane_env, out), a.notebooks))
            wall = time.perf_counter() - t0
            rows = [{"notebook": nb, "warm_s": w, "warm_slowest_cell": c, "conv3x3_gflops": conv["gflops"], "cpu": cpu,
                     "threads": threads, **stamp} for nb, (w, c) in zip(a.notebooks, done)]
            save(rows, a, conv, cpu, wall=wall, threads=threads)
            return
        for nb in a.notebooks:
            row = {"notebook": nb, "conv3x3_gflops": conv["gflops"]}
            if not a.warm_only:
                log = tmp / f"{nb}.flops"
                start = conv["gflops"] if nb == a.notebooks[0] else conv3x3_rate()
                row["cold_s"], row["cold_slowest_cell"] = run(nb, {**env, FLOP_LOG: str(log)}, out, "cold")
                end = conv3x3_rate()
                flops = sum(float(line.split("\t")[1]) for line in log.read_text().splitlines()) if log.exists() else 0.0
                bound = flops / ((start + end) / 2 * 1e9)
                row.update(network_tflop=flops / 1e12, compute_bound_s=bound,
                           cold_over_bound=row["cold_s"] / bound if bound else float("nan"),
                           conv3x3_gflops=(start + end) / 2, conv3x3_gflops_start=start, conv3x3_gflops_end=end)
            row["warm_s"], row["warm_slowest_cell"] = run(nb, env, out)
            rows.append({**row, "cpu": cpu, "threads": torch.get_num_threads(), **stamp})
            print(rows[-1], flush=True)
            save(rows, a, conv, cpu)
        if not a.notebooks:   # --update --drop/--note with no notebook: write the table again, measuring nothing
            save(rows, a, conv, cpu)
        if a.tests:
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "pytest", "-q"], check=False, cwd=ROOT, env=env, capture_output=True)
            rows.append({"notebook": "test suite (python -m pytest)", "cold_s": time.perf_counter() - t0, "cpu": cpu,
                         "threads": torch.get_num_threads()})
            save(rows, a, conv, cpu)


def save(rows: list[dict], a, conv: dict, cpu: str, wall: float | None = None, threads: int | None = None):
    """Write the table so far (after every notebook: a run cut short keeps what it measured). ``wall``: the total
    when the notebooks ran side by side (``--jobs``), else their sum."""
    nbs = [r for r in rows if not r["notebook"].startswith("test suite")]
    earlier = report.figures_dir("benchmarks", a.out) / "notebooks.csv"
    if a.update and not a.warm_only and earlier.exists():
        new = {r["notebook"] for r in nbs}
        kept = [r for r in pd.read_csv(earlier).to_dict("records")
                if r["notebook"] not in new | set(a.drop) and not r["notebook"].startswith(("all ", "test suite"))]
        nbs = kept + nbs
        rows = kept + rows
    threads = threads or torch.get_num_threads()
    total = {"notebook": f"all {len(nbs)} notebooks above" + (f", {a.jobs} side by side" if a.jobs > 1 else ""),
             "warm_s": wall if wall is not None else sum(r["warm_s"] for r in nbs),
             "conv3x3_gflops": None, "cpu": cpu, "threads": threads}
    if not a.warm_only:
        total.update(cold_s=sum(r["cold_s"] for r in nbs), network_tflop=sum(r["network_tflop"] for r in nbs),
                     compute_bound_s=sum(r["compute_bound_s"] for r in nbs))
        total["cold_over_bound"] = total["cold_s"] / total["compute_bound_s"] if total["compute_bound_s"] else float("nan")
    rows = nbs + [total] + [r for r in rows if r not in nbs]
    out = report.figures_dir("benchmarks", a.out)
    cols = ["notebook", "cold_s", "warm_s", "network_tflop", "compute_bound_s", "cold_over_bound", "cold_slowest_cell",
            "warm_slowest_cell", "conv3x3_gflops", "conv3x3_gflops_start", "conv3x3_gflops_end", "cpu", "threads",
            "commit", "measured_at"]
    df = pd.DataFrame(rows).reindex(columns=cols)
    if a.warm_only:
        df = df.drop(columns=["cold_s", "network_tflop", "compute_bound_s", "cold_over_bound", "cold_slowest_cell",
                              "conv3x3_gflops_start", "conv3x3_gflops_end"])
    report.save_table(df, out, "notebooks_warm" if a.warm_only else "notebooks",
                      f"Default runs of the notebooks on {cpu}, torch {torch.__version__}, {threads} "
                      "thread(s) each" + (f", {a.jobs} notebooks side by side (as make figures runs them)"
                                          if a.jobs > 1 else ", one after another" if a.warm_only
                                          else ", each notebook alone in its benchmark process") + ": " + ("warm only (the results cache as an earlier run left it, nothing changed)"
                                     if a.warm_only else "cold (empty results cache) and warm (nothing changed), and the "
                                     "compute bound = FLOPs of every network evaluation / this machine's 3x3-conv rate "
                                     f"(128 channels, 256x256, channels_last, {conv['precision']}): conv3x3_gflops, the mean "
                                     "of the rate measured just before and just after the row's cold run (_start, _end; "
                                     "a row without them was measured once, at the start of its run)")
                      + "; the slowest cell of each run (papermill's durations) (benchmarks/bench_notebooks.py). "
                      + (f"{a.note.rstrip('.')}. " if a.note else "") + "Goals: cold <= 1.5 x bound; warm <= 120 s in all.",
                      floatfmt=".1f")


if __name__ == "__main__":
    main()
