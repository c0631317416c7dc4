"""CAS-CNN's tables for ``notebooks/cascnn.ipynb``: network names, Table II and Fig. 6 beside the printed numbers.

Nothing here trains, defines or runs a model. The notebook loads networks with
``paperlib.zoo`` (committed checkpoints) or trains one with
``paperlib.models.cascnn.train_cascnn``, scores them with ``paperlib.evaluation``
(``gray`` protocol), and these functions put our numbers beside the transcribed ones and
write the notebook's "Reading (computed)" sentences from this run's tables.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from . import published, reproduce
from .evaluation import paired_bootstrap

__all__ = ["TABLE_II_QFS", "MS_QFS", "METRICS", "OURS", "CONTINUED", "CONTINUED_MS", "LONGER", "BASELINE",
           "PUBLISHED_ONLY", "network_name", "shown_method", "table2", "ints_or_blank", "match_classic5", "fig6_table",
           "paired_gains", "table2_reading", "images_improved", "fig3_reading", "sweep_reading", "fig6_reading",
           "GTX1080_FP32_PEAK_TFLOPS", "throughput_reading"]

TABLE_II_QFS = (10, 20, 40, 60, 80)
MS_QFS = (10, 20, 40)             # Table II prints an "ours, MS loss" row only at these QFs
METRICS = ("psnr", "psnrb", "ssim")  # Table II's column order
# our row label -> (network suffix, the paper's method label in published/cascnn.csv)
OURS = {"ours, MS loss": ("-ms", "CAS-CNN (MS loss)"), "ours, w/ loss FT": ("", "CAS-CNN (w/ loss FT)")}
# Committed networks trained beyond the `cpu` budget (issue 13; docs/cpu-training.md), each an extra row of
# Table II at its QF beside the cpu-budget rows: (QF, network, our row label, the paper's method label).
# `cascnn-q20-cont` is `cascnn-q20` trained on with the output loss; the other QFs' "continued" networks are
# derived from it with the same recipe and steps as the cpu-budget ones are derived from `cascnn-q20` (an MS row
# where the paper prints one, as for the cpu-budget networks).
CONTINUED, CONTINUED_MS = "ours, w/ loss FT, cpu budget continued", "ours, MS loss, cpu budget continued"
LONGER = (
    (10, "cascnn-q10-cont-ms", CONTINUED_MS, "CAS-CNN (MS loss)"),
    (10, "cascnn-q10-cont", CONTINUED, "CAS-CNN (w/ loss FT)"),
    (20, "cascnn-q20-cont", CONTINUED, "CAS-CNN (w/ loss FT)"),
    (40, "cascnn-q40-cont-ms", CONTINUED_MS, "CAS-CNN (MS loss)"),
    (40, "cascnn-q40-cont", CONTINUED, "CAS-CNN (w/ loss FT)"),
    (60, "cascnn-q60-cont", CONTINUED, "CAS-CNN (w/ loss FT)"),
    (80, "cascnn-q80-cont", CONTINUED, "CAS-CNN (w/ loss FT)"),
    (20, "cascnn-q20-gpu-ms", "ours, MS loss, paper recipe on a GPU", "CAS-CNN (MS loss)"),
    (20, "cascnn-q20-gpu", "ours, w/ loss FT, paper recipe on a GPU", "CAS-CNN (w/ loss FT)"),
)
OURS.update({label: ("", paper) for _, _, label, paper in LONGER})
PUBLISHED_ONLY = ("SA-DCT", "AR-CNN", "L4", "L8")
TRANSCRIBED = reproduce.TRANSCRIBED


def network_name(qf: int, ms: bool = False) -> str:
    """Committed-network name: ``cascnn-q20`` (final, after FT) or ``cascnn-q20-ms`` (end of the MS phase)."""
    return f"cascnn-q{int(qf)}{'-ms' if ms else ''}"


def shown_method(nets: Sequence[dict], qfs=TABLE_II_QFS) -> str:
    """The row label whose networks Figs. 3-6 and the throughput show: the longest-trained family on this CPU
    (``CONTINUED``) when it has a loaded network at every one of ``qfs``, else the cpu-budget networks
    (``"ours, w/ loss FT"``). ``nets``: the notebook's rows (keys ``qf``, ``method``, ``model``)."""
    have = {(int(n["qf"]), n["method"]) for n in nets if n.get("model") is not None}
    return CONTINUED if all((int(q), CONTINUED) in have for q in qfs) else list(OURS)[1]


ints_or_blank = reproduce.ints_or_blank


def table2(jpeg_summary: pd.DataFrame, ours: Sequence[dict], qfs=TABLE_II_QFS, demo: bool = False):
    """CAS-CNN Table II (LIVE1, gray protocol) with our rows beside the printed ones.

    ``jpeg_summary``: ``protocols.summarize`` of the JPEG evaluation (columns ``qf``,
    ``n_images``, ``jpeg_*``). ``ours``: one dict per network row with keys ``qf``,
    ``method`` (a key of ``OURS``), ``network``, ``summary`` (``protocols.summarize``
    of its evaluation, or None when it is missing), ``note`` (why it is missing) and
    the ``provenance`` keys. ``demo``: the numbers are not on LIVE1, so no diffs.

    Returns ``(table, cells)``: the wide table (one row per method and QF, our
    metrics, the printed ones, ``diff_*`` = ours rounded to the printed precision
    minus printed) and the long per-cell comparison of ``reproduce.compare``
    (``reproduce.method_table`` with CAS-CNN's printed rows).
    """
    printed = published.load(paper="cascnn", table="II", dataset="live1")
    rows = [{**o, "paper_method": OURS[o["method"]][1]} for o in ours if o["method"] in OURS]
    return reproduce.method_table(printed, jpeg_summary, rows, qfs, published_only=PUBLISHED_ONLY,
                                  metrics=METRICS, order=list(OURS), demo=demo)


def match_classic5(jpeg_per_image: pd.DataFrame, printed: pd.DataFrame | None = None) -> pd.DataFrame:
    """Which Classic5 file is each of Fig. 6's images ``img1``..``img5`` (caption order)?

    A file matches a printed image when its JPEG PSNR rounds to the printed JPEG
    PSNR (at the printed precision) and no other file does; an image left over
    when exactly one file is left is matched by elimination. ``jpeg_per_image``:
    ``protocols.evaluate`` rows of the Classic5 files at QF10. Returns one row per
    printed image: ``paper_image``, ``file`` (None when unmatched), ``how``, and
    how many of the JPEG PSNR / PSNR-B / SSIM cells agree at the printed precision.
    """
    printed = published.load(paper="cascnn", table="fig6") if printed is None else printed
    jp = printed[printed.method == "JPEG"]
    files = jpeg_per_image[jpeg_per_image.qf == 10].set_index("image")
    images_ = sorted(jp.dataset.unique(), key=lambda s: s.split("/")[-1])
    matched, rows = {}, {}
    for ds in images_:
        cell = jp[(jp.dataset == ds) & (jp.metric == "psnr")]
        cands = [f for f in files.index
                 if len(cell) and published.matches(files.loc[f, "jpeg_psnr"], cell.printed.iloc[0])]
        if len(cands) == 1:
            matched[ds] = cands[0]
            rows[ds] = "JPEG PSNR equal at the printed precision (unique)"
        else:
            rows[ds] = f"{len(cands)} files have the printed JPEG PSNR"
    left_imgs = [ds for ds in images_ if ds not in matched]
    left_files = [f for f in files.index if f not in matched.values()]
    if len(left_imgs) == 1 and len(left_files) == 1:
        matched[left_imgs[0]] = left_files[0]
        rows[left_imgs[0]] = f"by elimination ({rows[left_imgs[0]]}; the other four matched)"
    out = []
    for ds in images_:
        f = matched.get(ds)
        agree = None
        if f is not None:
            agree = sum(published.matches(files.loc[f, f"jpeg_{r.metric}"], r.printed)
                        for r in jp[jp.dataset == ds].itertuples())
        out.append({"paper_image": ds.split("/")[-1], "file": f, "how": rows[ds],
                    "jpeg_cells_agreeing": agree, "jpeg_cells_printed": int((jp.dataset == ds).sum())})
    return pd.DataFrame(out)


def fig6_table(per_image: pd.DataFrame, mapping: pd.DataFrame, printed: pd.DataFrame | None = None,
               demo: bool = False) -> pd.DataFrame:
    """Fig. 6's printed per-image numbers beside ours, one row per (image, method, metric).

    ``per_image``: ``protocols.evaluate`` rows of the Classic5 files at QF10 (with
    ``restored_*`` when a network was run). ``mapping``: ``match_classic5``.
    ``diff`` = ours rounded to the printed precision minus printed.
    """
    printed = published.load(paper="cascnn", table="fig6") if printed is None else printed
    files = per_image[per_image.qf == 10].set_index("image")
    file_of = dict(zip(mapping.paper_image, mapping.file))
    cas = printed[(printed.method == "CAS-CNN") & (printed.metric == "psnr")]
    cas_psnr = dict(zip(cas.dataset, cas.printed))
    rows = []
    for r in printed.itertuples():
        img = r.dataset.split("/")[-1]
        f = file_of.get(img)
        col = f"{'jpeg' if r.method == 'JPEG' else 'restored'}_{r.metric}"
        have = f is not None and col in files.columns and not demo
        ours = float(files.loc[f, col]) if have else float("nan")
        note = ""
        if r.method == "JPEG":
            same = [d for d, v in cas_psnr.items() if r.metric == "psnr" and v == r.printed]
            if same:
                note = (f"printed JPEG value equals the printed CAS-CNN value of {same[0].split('/')[-1]}: "
                        "likely a copy error in the paper (published/NOTES.md)")
        if f is None:
            note = (note + "; " if note else "") + "no Classic5 file identified"
        elif col not in files.columns or (not demo and ours != ours):
            note = (note + "; " if note else "") + "no network output for this image in this run"
        diff = round(published.round_half_up(ours, r.decimals) - r.value, r.decimals) if have else float("nan")
        rows.append({"paper_image": img, "file": f, "method": r.method, "metric": r.metric, "printed": r.printed,
                     "ours": ours, "diff": diff, "note": note})
    df = pd.DataFrame(rows)
    # the copy-error note belongs to every JPEG cell of that image
    for img in df.loc[df.note.str.contains("copy error"), "paper_image"].unique():
        m = (df.paper_image == img) & (df.method == "JPEG") & (df.note == "")
        df.loc[m, "note"] = df.loc[(df.paper_image == img) & df.note.str.contains("copy error"), "note"].iloc[0]
    return df


# --- the notebook's readings, computed from the run's tables -------------------------------------------------
FT, MS = list(OURS)[1], list(OURS)[0]
# each longer-trained row is compared with the cpu-budget row of the same loss (MS with MS, FT with FT)
BASELINE = {label: (MS if paper == OURS[MS][1] else FT) for _, _, label, paper in LONGER}
NAMES = {"psnr": "PSNR", "psnrb": "PSNR-B", "ssim": "SSIM"}


def _interval(d: float, lo: float, hi: float, unit: str = " dB", fmt: str = "+.2f") -> str:
    """``+0.89 dB (95% interval +0.75 to +1.03, beyond the image-to-image noise)``; NaN bounds: not estimated."""
    if lo != lo:
        return f"{d:{fmt}}{unit} (one image: no noise estimate)"
    verdict = "beyond" if lo > 0 or hi < 0 else "within"
    return f"{d:{fmt}}{unit} (95% interval {lo:{fmt}} to {hi:{fmt}}, {verdict} the image-to-image noise)"


def _beyond(lo: float, hi: float):
    return None if lo != lo else bool(lo > 0 or hi < 0)


def paired_gains(per_image: pd.DataFrame, metric: str = "psnr", n: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Table II's comparisons on the same images, each with a 95% bootstrap interval over images.

    ``per_image``: the long per-image table behind Table II (columns ``method``, ``qf``, ``image``,
    ``jpeg_<metric>``, ``restored_<metric>``; ``table2_live1_per_image.csv``). Per QF: each of our rows
    against JPEG on its images, and the FT network against the MS network on the images both were
    scored on, and each ``LONGER`` network against the cpu-budget network of the same loss
    (``BASELINE``). Returns one row per comparison: ``qf``, ``a``, ``b``, ``n_images``, ``difference``
    (mean of a - b per image), ``low``, ``high`` (``evaluation.paired_bootstrap``) and ``beyond_noise``
    (the interval excludes 0; None with a single image).
    """
    rows = []

    def add(qf, a, b, va, vb):
        d, lo, hi = paired_bootstrap(va, vb, n=n, seed=seed)
        rows.append({"qf": int(qf), "a": a, "b": b, "n_images": len(va), "difference": d, "low": lo, "high": hi,
                     "beyond_noise": _beyond(lo, hi)})

    for qf, g in per_image.groupby("qf"):
        by = {m: r.set_index("image") for m, r in g.groupby("method")}
        for method in [m for m in OURS if m in by]:
            r = by[method]
            add(qf, method, "JPEG", r[f"restored_{metric}"].to_numpy(), r[f"jpeg_{metric}"].to_numpy())
        pairs = [(FT, MS)] + list(BASELINE.items())   # FT vs MS; longer training vs the cpu budget
        for a, b in pairs:
            if a in by and b in by:
                common = by[a].index.intersection(by[b].index)
                if len(common):
                    add(qf, a, b, by[a].loc[common, f"restored_{metric}"].to_numpy(),
                        by[b].loc[common, f"restored_{metric}"].to_numpy())
    return pd.DataFrame(rows, columns=["qf", "a", "b", "n_images", "difference", "low", "high", "beyond_noise"])


def table2_reading(table: pd.DataFrame, cells: pd.DataFrame, paired: pd.DataFrame | None, label: str,
                   demo: bool = False) -> str:
    """The "Reading Table II" text, every number from this run: ``table2``'s ``(table, cells)`` and
    ``paired_gains`` (None when no network of ours was evaluated); ``label`` names the images."""
    out = [f"**Reading (computed).** On {label}:", ""]
    jp = cells[cells.row == "JPEG"] if "row" in cells else cells.iloc[:0]
    if demo or not len(jp):
        out.append("* JPEG rows: not compared with the printed cells (" + ("demo images" if demo else "no cells") + ").")
    else:
        match = jp["match"].astype(str).str.lower().eq("true")
        off = [f"QF {r.qf} {NAMES.get(r.metric, r.metric)} {r.diff:+.2f}" for r in jp[~match].itertuples()]
        out.append(f"* JPEG rows: {int(match.sum())} of {len(jp)} printed cells equal ours at the printed precision"
                   + (f"; the others differ by: {', '.join(off)} (ours rounded minus printed)." if off else "."))
    if paired is None or not len(paired):
        out.append("* No network of ours was evaluated: no gains to report.")
        return "\n".join(out)
    vs = paired[paired.b == "JPEG"]
    out.append("* PSNR gain over JPEG on the same images: " + "; ".join(
        f"QF {r.qf} {r.a}: {_interval(r.difference, r.low, r.high)}" for r in vs.itertuples()) + ".")
    beyond = vs.beyond_noise.dropna()
    out.append(f"* Of these {len(vs)} gains, {int(beyond.sum())} are beyond the image-to-image noise"
               + ("" if len(beyond) == len(vs) else f" ({len(vs) - len(beyond)} on a single image: not estimated)")
               + ".")
    ours = table[table.source.eq("this run")]
    gaps = pd.to_numeric(ours.diff_psnr, errors="coerce").dropna()
    if len(gaps) and not demo:
        out.append(f"* Our PSNR minus the printed row of the same name: from {gaps.min():+.2f} to {gaps.max():+.2f} dB "
                   f"over {len(gaps)} rows (`diff_psnr`).")
    longer = paired[paired.a.isin(list(BASELINE)) & paired.b.isin([FT, MS])]
    if len(longer):
        parts = [f"QF {r.qf} {r.a} − {r.b}: {_interval(r.difference, r.low, r.high, fmt='+.3f')}"
                 for r in longer.itertuples()]
        out.append("* Longer training against the cpu-budget network of the same loss (PSNR, same images): "
                   + "; ".join(parts) + ".")
    ft_ms = paired[(paired.b == MS) & (paired.a == FT)]
    for r in ft_ms.itertuples():
        rows = ours[ours.qf == r.qf].set_index("method")
        steps = pd.to_numeric(rows.steps, errors="coerce")
        paper = pd.to_numeric(rows.paper_psnr.replace("", np.nan), errors="coerce")
        txt = f"* QF {r.qf}, FT minus MS (PSNR, same images): {_interval(r.difference, r.low, r.high, fmt='+.3f')}"
        if paper.notna().all():
            txt += f"; the paper's printed FT minus MS: {paper[FT] - paper[MS]:+.2f} dB"
        if steps.notna().all():
            txt += f"; steps: MS {int(steps[MS])}, FT {int(steps[FT])}"
            if steps[FT] > steps[MS]:
                txt += (f" ({steps[FT] / steps[MS] - 1:.0%} more: the difference mixes the effect of the loss with "
                        "that of the extra training)")
        out.append(txt + ".")
    return "\n".join(out)


def images_improved(per_image: pd.DataFrame, metrics=("psnr", "ssim")) -> pd.DataFrame:
    """Per (qf, method): how many images the network improves over their JPEG (restored > jpeg) in each metric,
    and the image with the smallest PSNR change. ``per_image``: as for ``paired_gains``."""
    rows = []
    for (qf, method), g in per_image.groupby(["qf", "method"], sort=True):
        r = {"qf": int(qf), "method": method, "n_images": len(g)}
        for m in metrics:
            r[f"improved_{m}"] = int((g[f"restored_{m}"] > g[f"jpeg_{m}"]).sum())
        change = g.restored_psnr - g.jpeg_psnr
        r["worst_image"], r["worst_psnr_change"] = g.image.loc[change.idxmin()], float(change.min())
        rows.append(r)
    return pd.DataFrame(rows)


def fig3_reading(per_image: pd.DataFrame, method: str, label: str) -> str:
    """The Fig. 3 reading: per QF, on how many images ``method`` improves PSNR and SSIM over JPEG."""
    g = per_image[per_image.method == method] if len(per_image) else per_image
    if not len(g):
        return f"**Reading (computed).** No {method} network of ours was evaluated: nothing to count."
    imp = images_improved(g)
    parts = [f"QF {r.qf}: PSNR {r.improved_psnr} of {r.n_images}, SSIM {r.improved_ssim} of {r.n_images} "
             f"(smallest PSNR change {r.worst_psnr_change:+.2f} dB, {r.worst_image})" for r in imp.itertuples()]
    return (f"**Reading (computed).** Images of {label} that {method} improves over their JPEG: "
            + "; ".join(parts) + ".")


def _qf_runs(qfs, all_qfs) -> str:
    """``QF 10-40, 70`` for QFs that form runs of consecutive entries of ``all_qfs``; ``no QF`` for none."""
    all_qfs, qfs = sorted(all_qfs), set(qfs)
    runs, cur = [], []
    for q in all_qfs:
        if q in qfs:
            cur.append(q)
        elif cur:
            runs.append(cur)
            cur = []
    if cur:
        runs.append(cur)
    text = ", ".join(f"{r[0]}" if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)
    return f"QF {text}" if text else "no QF"


def sweep_reading(per_crop: pd.DataFrame, label: str, n: int = 2000, seed: int = 0) -> str:
    """The Fig. 4 reading: per network, its PSNR gain at the QF it was trained at (95% bootstrap interval over
    crops) and the QFs of the sweep where its gain is beyond the crop-to-crop noise, above or below 0.

    ``per_crop``: ``evaluation.evaluate_arrays`` rows of every network (columns ``network``, ``trained_qf``,
    ``qf``, ``jpeg_psnr``, ``restored_psnr``).
    """
    out = [f"**Reading (computed).** PSNR gain over JPEG on {label}:", ""]
    for (net, tq), g in per_crop.groupby(["network", "trained_qf"], sort=False):
        stats = {int(q): paired_bootstrap(r.restored_psnr, r.jpeg_psnr, n=n, seed=seed) for q, r in g.groupby("qf")}
        qfs = sorted(stats)
        up = [q for q in qfs if stats[q][1] > 0]
        down = [q for q in qfs if stats[q][2] < 0]
        best = max(qfs, key=lambda q: stats[q][0])
        at = (f"at its own QF {tq}: {_interval(*stats[int(tq)], fmt='+.2f')}" if int(tq) in stats
              else f"its own QF {tq} is not in the sweep")
        out.append(f"* {net} (trained at QF {tq}), {at}; largest mean gain {stats[best][0]:+.2f} dB at QF {best}; "
                   f"gain beyond the noise at {_qf_runs(up, qfs)}; loss beyond the noise at {_qf_runs(down, qfs)}.")
    return "\n".join(out)


def fig6_reading(mapping: pd.DataFrame, fig6: pd.DataFrame) -> str:
    """The Fig. 6 reading: how each printed image was matched, how many printed JPEG cells agree, and our
    network's PSNR per image against our JPEG and against the paper's CAS-CNN value (``fig6_table`` rows)."""
    out = ["**Reading (computed).**", ""]
    how = [f"{r.paper_image} = {r.file}" + (" (by elimination)" if str(r.how).startswith("by elimination") else "")
           if pd.notna(r.file) else f"{r.paper_image}: not matched ({r.how})" for r in mapping.itertuples()]
    out.append("* Matching: " + "; ".join(how) + ".")
    jp = fig6[fig6.method == "JPEG"]
    have = jp["diff"].notna()
    if have.any():
        agree = jp[have]["diff"].abs() < 1e-9
        noted = sorted(jp[jp.note.str.contains("copy error", na=False)].paper_image.unique())
        out.append(f"* JPEG cells: {int(agree.sum())} of {int(have.sum())} equal the printed ones at the printed "
                   "precision" + (f"; {', '.join(noted)} carries the copy-error note" if noted else "") + ".")
    ps = fig6[fig6.metric == "psnr"].pivot_table(index="paper_image", columns="method", values="ours", aggfunc="first")
    pp = fig6[(fig6.metric == "psnr") & (fig6.method != "JPEG")].set_index("paper_image")
    if "CAS-CNN" in ps and ps["CAS-CNN"].notna().any():
        ok = ps.dropna(subset=["CAS-CNN", "JPEG"])
        gain = ok["CAS-CNN"] - ok["JPEG"]
        out.append(f"* Our network improves PSNR over JPEG on {int((gain > 0).sum())} of {len(gain)} images ("
                   + ", ".join(f"{i} {v:+.2f} dB" for i, v in gain.items()) + "); ours minus the paper's CAS-CNN PSNR: "
                   + ", ".join(f"{i} {pp.loc[i, 'diff']:+.2f}" for i in ok.index if i in pp.index) + " dB.")
    else:
        out.append("* No network output in this run: only the JPEG cells are compared.")
    return "\n".join(out)


# NVIDIA GeForce GTX 1080 whitepaper (2016): 2560 CUDA cores at a 1733 MHz boost clock, 2 FLOP per fused
# multiply-add: 2560 x 1.733e9 x 2 = 8.873e12 FLOP/s fp32 peak.
GTX1080_FP32_PEAK_TFLOPS = 2560 * 1.733e9 * 2 / 1e12
PEAK_SOURCE = ("NVIDIA GeForce GTX 1080 whitepaper: 2560 CUDA cores x 1733 MHz boost clock x 2 FLOP per "
               "fused multiply-add")


def throughput_reading(throughput: pd.DataFrame, by_module: dict, top: int = 2) -> str:
    """The throughput reading: FLOPs per pixel and the ``top`` layers that cost most (``speed.flops_by_module``,
    FLOPs per output pixel of each layer), what the paper's Mpixel/s means in FLOP/s and as a share of the
    GTX 1080's fp32 peak (``GTX1080_FP32_PEAK_TFLOPS``), and each measured row of ``throughput``."""
    total = sum(by_module.values())
    big = sorted(by_module.items(), key=lambda kv: -kv[1])[:top]
    out = ["**Reading (computed).**", "",
           f"* CAS-CNN costs {total / 1e6:.3f} MFLOP per output pixel (counted by `torch.utils.flop_counter`, not "
           "taken from the paper); its " + ("largest layer" if top == 1 else f"{len(big)} largest layers") + ", "
           + " and ".join(f"`{k}` ({v / 1e6:.3f} MFLOP)" for k, v in big)
           + f", hold {sum(v for _, v in big) / total:.0%} of it."]
    paper = throughput[throughput.source.str.contains("paper", na=False)]
    if len(paper):
        p = paper.iloc[0]
        tflops = p.gflops / 1e3
        out.append(f"* The paper's {p.mpixel_per_s:g} Mpixel/s on a GTX 1080 is {tflops:.2f} TFLOP/s of convolution, "
                   f"{tflops / GTX1080_FP32_PEAK_TFLOPS:.1%} of that card's fp32 peak of "
                   f"{GTX1080_FP32_PEAK_TFLOPS:.2f} TFLOP/s ({PEAK_SOURCE}).")
    for r in throughput[~throughput.source.str.contains("paper", na=False)].itertuples():
        if r.mpixel_per_s != r.mpixel_per_s:
            out.append(f"* {r.precision}: not measured ({r.source}).")
            continue
        load = "" if r.load_avg_1min != r.load_avg_1min or r.load_avg_1min is None else \
            f", load average {float(r.load_avg_1min):.1f}"
        out.append(f"* This machine, {r.precision}, {r.image}: {r.mpixel_per_s:.3f} Mpixel/s = {r.gflops:.1f} GFLOP/s, "
                   f"{r.share_of_conv3x3:.0%} of its own 128-channel 3x3 convolution ({r.conv3x3_gflops:.1f} GFLOP/s); "
                   f"{int(float(r.threads))} threads{load}.")
    return "\n".join(out)
