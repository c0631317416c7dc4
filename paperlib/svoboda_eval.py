"""Evaluation helpers for ``notebooks/svoboda.ipynb`` (Svoboda et al. 2016, L4/L8): Tables 3-5, Figs. 5-8, speed.

Nothing here trains or defines a model. The notebook loads networks with
``paperlib.zoo`` (committed checkpoints) or trains them with
``paperlib.models.svoboda.train_svoboda``; these functions name them, score
them with the ``gray`` protocol (``paperlib.evaluation``) and put our numbers
beside the transcribed ones (``reproduce.method_table``).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np
import pandas as pd

from . import evaluation, published, reproduce, zoo
from .evaluation import paired_bootstrap
from .train import read_manifest

__all__ = ["TABLE_QFS", "L8_QFS", "METRICS", "TABLES", "PUBLISHED_ONLY", "OURS", "OBJECTIVE_ROWS", "FIG5_QFS",
           "FIG5_SPECIFIC", "FIG5_ALL_QF", "DATA_SIZES", "FULL_TRAIN_SET", "FILTER_STEPS", "PAPER_FIG7",
           "network_name", "zoo_provenance", "run_provenance", "printed", "results_table", "training_images",
           "ipsnr_on", "TRAIN_SPLIT", "COMMON_SPLIT", "VAL_SPLIT", "datasize_point", "speed_table", "filter_steps_shown",
           "paired_networks", "margin_text", "table5_reading", "sweep_crops", "sweep_table", "fig5_reading", "size_reading"]

TABLE_QFS = (10, 20)          # Tables 3 and 4
L8_QFS = (20,)                # the paper trained (and prints) L8 at QF 20 only
METRICS = ("psnr", "psnrb", "ssim")  # the tables' column order
# table -> (dataset label in published/svoboda.csv, what it is)
TABLES = {"3": ("live1", "LIVE1 (29 images)"), "4": ("bsds500-val", "BSDS500 val (100 images)"),
          "5": ("live1", "LIVE1 (29 images), QF 10")}
PUBLISHED_ONLY = ("spp", "SA-DCT", "AR-CNN")  # printed only; Table 4 has no SA-DCT row
# Tables 3/4: our row label -> (arch, the paper's method label)
OURS = {"L4 residual (ours)": ("L4", "L4 (Residual)"), "L8 residual (ours)": ("L8", "L8 (Residual)")}
# Table 5: objective -> (our row label, the paper's method label), in the paper's row order
OBJECTIVE_ROWS = {"direct": ("L4 direct mapping (ours)", "L4 (Direct mapping)"),
                  "sobel": ("L4 edge preserving, Sobel (ours)", "L4 (Edge preserving)"),
                  "residual": ("L4 residual (ours)", "L4 (Residual learn.)")}
FIG5_QFS = (10, 20, 30, 40, 50, 60)
FIG5_SPECIFIC = FIG5_QFS      # one quality-specific L4 per QF
FIG5_ALL_QF = (10, 60)        # the all-QF L4 (L4Q10-Q60)
DATA_SIZES = (4, 16, 64, 256, 400)  # Fig. 8; 400 = the whole training set (the plain network)
FULL_TRAIN_SET = 400
FILTER_STEPS = (25, 50, 200, 1000)  # Fig. 7 snapshots of the cpu budget (plus init and the last step)
# Fig. 7 of the paper: iterations shown per objective (of 250k)
PAPER_FIG7 = {"direct": (20_000, 100_000, 250_000), "residual": (5_000, 20_000, 250_000),
              "sobel": (2_500, 20_000, 250_000)}


def network_name(arch: str, objective: str, qf, n_images: int | None = None) -> str:
    """Committed-network name: ``l4-residual-q10``, ``l4-residual-q10-60`` (all QFs), ``l8-residual-q20-n64``."""
    from .models.svoboda import default_name
    name = default_name(arch, objective, qf)
    return name if n_images in (None, FULL_TRAIN_SET) else f"{name}-n{int(n_images)}"


def zoo_provenance(name: str) -> dict:
    """``zoo.network_provenance`` plus where the network was trained (``device``) and its wall time in s."""
    meta = zoo.info(name)
    return {**zoo.network_provenance(name), "device": meta.get("device", "cpu"), "wall_time_s": meta.get("wall_time_s")}


def run_provenance(run_dir) -> dict:
    """The same for a training run of this notebook (its ``manifest.json``)."""
    meta = read_manifest(run_dir)
    return {**zoo.provenance(meta), "device": meta.get("device", "cpu"), "wall_time_s": meta.get("wall_time_s")}


def printed(table: str) -> pd.DataFrame:
    """The printed cells of Svoboda Table ``table`` ("3", "4" or "5")."""
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}; one of {sorted(TABLES)}")
    return published.load(paper="svoboda", table=table, dataset=TABLES[table][0])


def results_table(table: str, jpeg_summary: pd.DataFrame, ours: Sequence[dict], qfs=TABLE_QFS, demo: bool = False,
                  printed_rows: pd.DataFrame | None = None):
    """Svoboda Table 3, 4 or 5 with our rows beside the printed ones (``reproduce.method_table``).

    ``ours``: one dict per network row with ``qf``, ``method`` (a key of ``OURS`` for
    Tables 3/4, a row label of ``OBJECTIVE_ROWS`` for Table 5), ``network``, ``summary``
    (``protocols.summarize`` or None when missing), ``note`` and the provenance keys.
    The printed counterpart of each row is filled in here. Table 5's printed JPEG row
    is BSDS500-val's (``reproduce.NOT_REPRODUCED`` notes it on each cell).
    """
    rows_printed = printed(table) if printed_rows is None else printed_rows
    if table == "5":
        paper_of = dict(OBJECTIVE_ROWS.values())
        published_only = ()
    else:
        paper_of = {label: paper for label, (_, paper) in OURS.items()}
        published_only = PUBLISHED_ONLY
    rows = []
    for o in ours:
        if o["method"] not in paper_of:
            raise ValueError(f"row {o['method']!r} is not one of Table {table}'s: {sorted(paper_of)}")
        rows.append({**o, "paper_method": paper_of[o["method"]]})
    return reproduce.method_table(rows_printed, jpeg_summary, rows, qfs, published_only=published_only,
                                  metrics=METRICS, order=list(paper_of), demo=demo)


def training_images(meta: dict, data_root=None, limit: int | None = None) -> list:
    """The images a network was trained on, in training order, from its manifest (``zoo.info`` / manifest.json).

    Rebuilt as the training CLI chose them: ``data.gray_images(sources, min_side=crop)``, then the
    first ``data.n_images``. ``limit`` keeps only the first ``limit`` of those (a subset for scoring).
    """
    d = meta["data"]
    crop = int(meta["budget_config"]["crop"])
    imgs = _gray_images(tuple(d["sources"]), None if data_root is None else str(data_root), crop)
    n = int(d.get("n_images") or len(imgs))
    if len(imgs) < n:
        raise ValueError(f"found {len(imgs)} training images of {d['sources']}, the manifest says {n}")
    imgs = imgs[:n]
    return imgs[:limit] if limit else imgs


@lru_cache(maxsize=4)
def _gray_images(sources: tuple, data_root, crop: int) -> list:
    from . import data
    return data.gray_images(list(sources), data_root, min_side=crop)[0]


def ipsnr_on(model, refs: dict, qf: int) -> dict:
    """Mean PSNR gain of ``model`` over JPEG ``qf`` on in-memory references (``{name: uint8}``)."""
    df = evaluation.evaluate_arrays(refs, [qf], model)
    return {"ipsnr": float((df.restored_psnr - df.jpeg_psnr).mean()),
            "ipsnrb": float((df.restored_psnrb - df.jpeg_psnrb).mean()),
            "jpeg_psnr": float(df.jpeg_psnr.mean()), "restored_psnr": float(df.restored_psnr.mean()),
            "n_images": len(df)}


TRAIN_SPLIT = "train (images it was trained on)"
COMMON_SPLIT = "train, first {n} images (in every network's training set)"
VAL_SPLIT = "validation"


def datasize_point(model, train_imgs: Sequence[np.ndarray], val_refs: dict, qf: int,
                   common_imgs: Sequence[np.ndarray] = ()) -> list:
    """Fig. 8 rows of one network: IPSNR on (its own) training images and on the validation images.

    ``train_imgs`` must be images the network was trained on; ``val_refs`` images it was not.
    ``common_imgs``: training images every network of the sweep was trained on (the first
    ``min(n_images)``), scored as a third split so that the train curve compares like with like.
    """
    train_refs = {f"train{i:03d}": im for i, im in enumerate(train_imgs)}
    rows = [{"split": TRAIN_SPLIT, **ipsnr_on(model, train_refs, qf)}]
    if len(common_imgs):
        common = {f"common{i:03d}": im for i, im in enumerate(common_imgs)}
        rows.append({"split": COMMON_SPLIT.format(n=len(common)), **ipsnr_on(model, common, qf)})
    return rows + [{"split": VAL_SPLIT, **ipsnr_on(model, val_refs, qf)}]


def speed_table(models: dict, size: int = 512, min_time_s: float = 1.5) -> pd.DataFrame:
    """L4/L8 speed and size on this machine beside the paper's text numbers.

    ``models``: ``{"L4": (model, label), "L8": (model, label)}``. Per arch: ms per megapixel
    (``speed.forward_throughput``, fp32, batch 1, ``size`` x ``size``; ``speed.measured``), FLOPs per pixel counted
    (``speed.flops_per_pixel``, on a 64x64 input, so including the mirror-padded border) and
    analytic (``svoboda.counts``), parameters counted and analytic, and the paper's
    220 / 1052 ms (GTX 780), 140 K / 440 K FLOPs and 70 K / 220 K parameters.
    """
    from . import speed
    from .models import svoboda
    text = published.load(paper="svoboda", table="text")
    paper = {(r.method, r.metric): float(r.value) for r in text.itertuples()}
    rows = []
    for arch, (model, label) in models.items():
        r = speed.measured(speed.forward_throughput, model, size, size, min_time_s=min_time_s)
        c = svoboda.counts(arch, getattr(model, "skip", "after"))
        rows.append({
            "arch": arch, "network": label, "device": r["device"], "image": f"{size}x{size}",
            "calls": r["calls"], "ms_per_mpixel": 1e3 / r["mpixel_per_s"],
            "paper_ms_per_mpixel": paper.get((arch, "ms_per_mpixel"), float("nan")),
            "flops_per_pixel_measured": speed.flops_per_pixel(model, 64, 64),
            "flops_per_pixel_analytic": float(c["flops_per_pixel"]),
            "paper_flops_per_pixel": 1e3 * paper.get((arch, "flops_per_pixel_k"), float("nan")),
            "params_measured": int(sum(p.numel() for p in model.parameters())), "params_analytic": c["params"],
            "paper_params": 1e3 * paper.get((arch, "params_k"), float("nan")),
            "paper_params_conclusions": 1e3 * paper.get((f"{arch} (as stated in Conclusions)", "params_k"),
                                                         float("nan")),
            "threads": r["threads"], "load_avg_1min": r["load_avg_1min"], "measured_at": r["measured_at"]})
    return pd.DataFrame(rows)


def filter_steps_shown(available: Sequence[int], wanted: Sequence[int] | None = None) -> list:
    """The snapshot steps to draw: ``wanted`` that exist (default: all available), always ending with the last."""
    available = sorted(int(s) for s in available)
    if not available:
        return []
    shown = [s for s in (available if wanted is None else wanted) if s in available]
    return sorted(set(shown) | {available[-1]})


# --- the notebook's readings, computed from the run's tables -------------------------------------------------

def paired_networks(per_image: pd.DataFrame, a: str, b: str, dataset: str, qf: int, metric: str = "psnr",
                    n: int = 2000, seed: int = 0) -> dict:
    """Network ``a`` minus network ``b`` (``network`` column) on the images of ``dataset`` both were scored on at
    ``qf``: mean per-image ``restored_<metric>`` difference with its 95% bootstrap interval over images.

    ``per_image``: the long per-image table behind Tables 3-5 (``tables_per_image.csv``). Returns ``difference``,
    ``low``, ``high``, ``n_images`` (NaN and 0 when the two share no image).
    """
    def scores(net):
        g = per_image[(per_image.network == net) & (per_image.dataset == dataset) & (per_image.qf == qf)]
        return g.set_index("image")[f"restored_{metric}"]

    va, vb = scores(a), scores(b)
    common = va.index.intersection(vb.index)
    if not len(common):
        return {"difference": float("nan"), "low": float("nan"), "high": float("nan"), "n_images": 0}
    d, lo, hi = paired_bootstrap(va[common].to_numpy(), vb[common].to_numpy(), n=n, seed=seed)
    return {"difference": d, "low": lo, "high": hi, "n_images": len(common)}


def margin_text(d: float, lo: float, hi: float, unit: str = " dB", fmt: str = "+.3f") -> str:
    """``+0.123 dB (95% interval +0.08 to +0.16, beyond the image-to-image noise)``; NaN bounds: not estimated."""
    if d != d:
        return "not computed (no common images)"
    if lo != lo:
        return f"{d:{fmt}}{unit} (one image: no noise estimate)"
    verdict = "beyond" if lo > 0 or hi < 0 else "within"
    return f"{d:{fmt}}{unit} (95% interval {lo:{fmt}} to {hi:{fmt}}, {verdict} the image-to-image noise)"


def table5_reading(table5: pd.DataFrame, per_image: pd.DataFrame, dataset: str = "live1") -> str:
    """The Table 5 reading: our objectives ranked by PSNR with the margin between neighbours (95% bootstrap
    interval over images, from ``per_image``), beside the paper's order of the printed rows."""
    have = table5[table5.source.eq("this run")].set_index("method")
    if len(have) < 2:
        return "**Reading Table 5 (computed).** Fewer than two objectives were evaluated: no order to report."
    qf = int(have.qf.iloc[0])
    jp = float(table5[table5.method == "JPEG"].psnr.iloc[0])
    ranked = have.psnr.sort_values(ascending=False)
    short = lambda m: m.replace(" (ours)", "")   # noqa: E731
    ours = " > ".join(f"{short(m)} ({v:.2f} dB, {v - jp:+.2f} over JPEG)" for m, v in ranked.items())
    gaps = []
    for hi_m, lo_m in zip(ranked.index, ranked.index[1:]):
        r = paired_networks(per_image, have.loc[hi_m, "network"], have.loc[lo_m, "network"], dataset, qf)
        gaps.append(f"{short(hi_m)} minus {short(lo_m)}: {margin_text(r['difference'], r['low'], r['high'])}")
    pr = pd.to_numeric(have.paper_psnr.replace("", np.nan), errors="coerce").dropna().sort_values(ascending=False)
    paper = " > ".join(f"{short(m)} ({v:.2f})" for m, v in pr.items())
    rank = {m: i + 1 for i, m in enumerate(ranked.index)}
    prank = {m: i + 1 for i, m in enumerate(pr.index)}
    places = "; ".join(f"{short(m)}: {rank[m]} here, {prank[m]} in the paper" for m in ranked.index if m in prank)
    return (f"**Reading Table 5 (computed).** PSNR order here: {ours}. Margins on the same images: "
            + "; ".join(gaps) + f". The paper's order: {paper}. Rank of each objective (1 = best): {places}.")


def sweep_crops(nets: Sequence[dict], refs: dict, qfs=FIG5_QFS) -> pd.DataFrame:
    """Fig. 5's per-crop rows: every network (dicts with ``model``, ``network``, ``trained_qf``) on every crop of
    ``refs`` at every QF of ``qfs`` (``evaluation.evaluate_arrays`` columns plus ``network``, ``trained_qf``).
    ``evaluation.ipsnr_by_qf`` of one network's rows gives its Fig. 5 rows."""
    parts = [evaluation.evaluate_arrays(refs, qfs, n["model"]).assign(network=n["network"],
                                                                      trained_qf=str(n["trained_qf"])) for n in nets]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["network", "trained_qf", "qf"])


def sweep_table(crops: pd.DataFrame) -> pd.DataFrame:
    """Fig. 5 data from ``sweep_crops`` rows: one row per (network, QF) with IPSNR / IPSNR-B / SSIM gain
    (``evaluation.ipsnr_by_qf``)."""
    cols = ["network", "trained_qf", "qf", "n_images", "ipsnr", "ipsnrb", "issim"]
    parts = [evaluation.ipsnr_by_qf(g).assign(network=net, trained_qf=tq)
             for (net, tq), g in crops.groupby(["network", "trained_qf"], sort=False)]
    return pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)


def fig5_reading(crops: pd.DataFrame, all_qf: str = "10-60", n: int = 2000, seed: int = 0) -> str:
    """The Fig. 5 reading from ``sweep_crops`` rows: at each QF with a network trained at it, that network's PSNR
    gain minus the best other specific network's, and the all-QF network's gain minus the best specific one's,
    each with its 95% bootstrap interval over crops."""
    g = crops.assign(ipsnr=crops.restored_psnr - crops.jpeg_psnr)
    means = g.pivot_table(index="qf", columns="trained_qf", values="ipsnr")
    by = {(t, int(q)): d.set_index("image").ipsnr for (t, q), d in g.groupby(["trained_qf", "qf"])}
    specific = [c for c in means.columns if c != all_qf]
    if len(specific) < 2:
        return "**Reading Fig. 5 (computed).** Fewer than two quality-specific networks: nothing to compare."

    def diff(a, b, q):
        common = by[(a, q)].index.intersection(by[(b, q)].index)
        return paired_bootstrap(by[(a, q)][common].to_numpy(), by[(b, q)][common].to_numpy(), n=n, seed=seed)

    own, wins, beyond = [], 0, 0
    for q in means.index:
        if str(q) not in specific:
            continue
        rival = means.loc[q, [c for c in specific if c != str(q)]].idxmax()
        d, lo, hi = diff(str(q), rival, int(q))
        wins += d > 0
        beyond += lo > 0
        own.append(f"QF {q}: {margin_text(d, lo, hi, fmt='+.2f').replace('image-to-image', 'crop-to-crop')} over "
                   f"the QF{rival} network")
    text = (f"**Reading Fig. 5 (computed).** The network trained at a QF has the highest gain among the specific "
            f"networks at {wins} of {len(own)} such QFs, {beyond} of them beyond the crop-to-crop noise. Own-QF "
            "network minus the best other specific network: " + "; ".join(own) + ".")
    if all_qf in means.columns:
        parts = []
        for q in means.index:
            best = means.loc[q, specific].idxmax()
            d, lo, hi = diff(all_qf, best, int(q))
            parts.append(f"QF {q}: {margin_text(d, lo, hi, fmt='+.2f').replace('image-to-image', 'crop-to-crop')} "
                         f"vs the QF{best} network")
        text += (" The all-QF network minus the best specific network at each QF: " + "; ".join(parts)
                 + f"; its own gain ranges {means[all_qf].min():.2f}-{means[all_qf].max():.2f} dB over QF "
                 f"{min(means.index)}-{max(means.index)}.")
    return text


def size_reading() -> str:
    """The analytic size of L4 and L8 (``svoboda.counts``, both readings of where L8 concatenates the first layer's
    output) against the paper's text: FLOPs per pixel and parameters, Section 4's and the Conclusions' numbers."""
    from .models import svoboda
    text = published.load(paper="svoboda", table="text")
    paper = {(r.method, r.metric): float(r.value) for r in text.itertuples()}
    parts = []
    for arch in ("L4", "L8"):
        for skip in (("after", "before") if arch == "L8" else ("after",)):
            c = svoboda.counts(arch, skip)
            bits = []
            for key, metric, what in (("flops_per_pixel", "flops_per_pixel_k", "FLOPs per pixel"),
                                      ("params", "params_k", "parameters")):
                p = paper.get((arch, metric), float("nan")) * 1e3
                bits.append(f"{c[key] / 1e3:.0f} k {what} ({c[key] / p - 1:+.1%} from the paper's {p / 1e3:.0f} K"
                            + (f", {c[key] / (1e3 * paper[(f'{arch} (as stated in Conclusions)', metric)]) - 1:+.0%} "
                               f"from the Conclusions' {paper[(f'{arch} (as stated in Conclusions)', metric)]:.0f} K"
                               if (f"{arch} (as stated in Conclusions)", metric) in paper else "") + ")")
            where = {"after": "outputs", "before": "inputs"}[skip]
            label = arch + (f" (first-layer activations concatenated to the {where} of layers 4 and 6)"
                            if arch == "L8" else "")
            parts.append(f"{label}: " + ", ".join(bits))
    return "**Analytic size (computed).** " + "; ".join(parts) + "."
