"""Published vs reproduced: the evaluation sets the papers' tables use, and the comparison table.

``EVAL_SETS`` maps each dataset label of ``paperlib/published/*.csv`` to the
data and protocol that reproduce it. ``compare`` lines up printed cells with
our numbers, rounds ours to the printed precision and flags each cell.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import data, protocols, published

__all__ = ["EVAL_SETS", "NOT_REPRODUCED", "JPEG_ROW_ONLY", "VARIANTS", "TRANSCRIBED", "jpeg_summary", "jpeg_row_table", "cropped_jpeg_rows", "compare", "readable",
           "method_table", "ints_or_blank", "convention_effects", "on_curve",
           "validation_curves", "curves_reading"]

TRANSCRIBED = "transcribed from the paper"

# published dataset label -> (dataset, split, protocol)
EVAL_SETS = {
    "live1": ("live1", None, "gray"),
    "live1-color": ("live1", None, "color-qgcn"),
    "bsds500-test": ("bsds500", "test", "gray"),
    "bsds500-test-color": ("bsds500", "test", "color-qgcn-ssim8"),
    "bsds500-val": ("bsds500", "val", "gray"),
}

_CROP32 = ("whole images give this; the same JPEG row on images cropped to a multiple of 32 pixels is computed "
           "beside it in figures/protocols/cascnn_crop32.md (notebooks/protocols.ipynb)")
_SVOBODA5 = ("the printed row equals Svoboda Table 4's BSDS500-val JPEG row (27.58 / 24.97 / 0.769), "
             "not LIVE1: the caption's dataset is most likely a mislabel")
# JPEG-row cells that do not reproduce, with the best explanation we have. Tests assert they
# still differ, so a change that makes them match (or breaks the others) is noticed.
NOT_REPRODUCED = {
    ("cascnn", "II", "live1", 60, "psnr"): _CROP32,
    ("cascnn", "II", "live1", 60, "psnrb"): _CROP32,
    ("cascnn", "II", "live1", 80, "psnr"): _CROP32,
    ("cascnn", "II", "live1", 80, "psnrb"): _CROP32,
    ("svoboda", "5", "live1", 10, "psnr"): _SVOBODA5,
    ("svoboda", "5", "live1", 10, "ssim"): _SVOBODA5,
    ("svoboda", "5", "live1", 10, "psnrb"): _SVOBODA5,
}

# The explanations concern the printed JPEG row (the only row whose inputs we can recompute): ``compare``
# attaches them to the JPEG cells only.
JPEG_ROW_ONLY = set(NOT_REPRODUCED)


def _note(r) -> str:
    key = (r.paper, r.table, r.dataset, r.qf, r.metric)
    if key in JPEG_ROW_ONLY and r.method != "JPEG":
        return ""
    return NOT_REPRODUCED.get(key, "")


def jpeg_summary(eval_set: str, qfs, data_root=None, progress: bool = True, demo_fallback: bool = False):
    """Mean JPEG-row metrics per QF on one of ``EVAL_SETS``.

    Returns ``(summary, note)``; ``note`` is None on the real benchmark and the
    demo label when ``demo_fallback`` had to use the built-in demo images.
    Without ``demo_fallback`` a missing dataset raises ``DataNotFound``.
    """
    if eval_set not in EVAL_SETS:
        raise ValueError(f"unknown evaluation set {eval_set!r}; choose from {sorted(EVAL_SETS)}")
    name, split, proto = EVAL_SETS[eval_set]
    if demo_fallback:
        paths, note = data.images_or_demo(name, split, data_root=data_root)
    else:
        paths, note = data.image_paths(name, split, data_root=data_root), None
    return protocols.summarize(protocols.evaluate(paths, qfs, proto, progress=progress)), note


def cropped_jpeg_rows(eval_set: str, qfs, multiple: int = 32, data_root=None) -> pd.DataFrame:
    """The JPEG row of ``eval_set`` on images cropped at the top-left to a multiple of ``multiple`` pixels,
    beside the whole-image row and the printed cells: what cropping (to a network's stride, say) changes."""
    from .evaluation import evaluate_arrays
    name, split, proto = EVAL_SETS[eval_set]
    proto = protocols.get(proto)
    paths = data.image_paths(name, split, data_root=data_root)
    refs = {p.stem: protocols.reference(proto, p) for p in paths}
    crops = {k: v[: v.shape[0] // multiple * multiple, : v.shape[1] // multiple * multiple] for k, v in refs.items()}
    whole = protocols.summarize(evaluate_arrays(refs, qfs, None, proto)).set_index("qf")
    cropped = protocols.summarize(evaluate_arrays(crops, qfs, None, proto)).set_index("qf")
    printed = published.jpeg_rows()
    printed = printed[(printed.dataset == eval_set) & printed.qf.isin(qfs)]
    rows = []
    for r in printed.itertuples():
        w, c = float(whole.loc[r.qf, f"jpeg_{r.metric}"]), float(cropped.loc[r.qf, f"jpeg_{r.metric}"])
        rows.append({"paper": r.paper, "table": r.table, "qf": r.qf, "metric": r.metric, "printed": r.printed,
                     "whole_images": w, f"cropped_to_{multiple}": c,
                     "whole_matches": published.matches(w, r.printed), "cropped_matches": published.matches(c, r.printed)})
    return pd.DataFrame(rows)


def jpeg_row_table(eval_set: str, qfs=None, data_root=None, progress: bool = True):
    """Every printed JPEG-row cell for ``eval_set`` beside ours: ``(comparison, note)``.

    ``qfs=None`` takes every QF the papers print for this set. On demo data the
    ``match`` column is None: there is nothing to compare with.
    """
    printed = published.jpeg_rows()
    printed = printed[printed.dataset == eval_set]
    qfs = sorted({int(q) for q in printed.qf}) if qfs is None else sorted(int(q) for q in qfs)
    printed = printed[printed.qf.isin(qfs)]
    summary, note = jpeg_summary(eval_set, qfs, data_root, progress, demo_fallback=True)
    table = compare(printed, summary)
    if note:
        table["match"] = None
        table["note"] = note
    return table, note


def compare(printed: pd.DataFrame, ours: pd.DataFrame, prefix: str = "jpeg_") -> pd.DataFrame:
    """Printed cells beside ours.

    ``printed``: rows of ``published.load(...)`` for one dataset; ``ours``: a
    ``protocols.summarize`` frame (columns ``qf`` and ``<prefix><metric>``).
    Returns one row per printed cell with ``ours``, ``diff`` (ours rounded to
    the printed precision minus printed), ``match`` and ``note``.
    """
    rows = []
    ours = ours.set_index("qf")
    for r in printed.itertuples():
        col = f"{prefix}{r.metric}"
        value = float(ours.loc[r.qf, col]) if (r.qf in ours.index and col in ours.columns) else float("nan")
        have = value == value
        rounded = published.round_half_up(value, r.decimals) if have else float("nan")
        rows.append({
            "paper": r.paper, "table": r.table, "dataset": r.dataset, "method": r.method, "qf": r.qf,
            "metric": r.metric, "printed": r.printed, "ours": value,
            "diff": round(rounded - r.value, r.decimals) if have else float("nan"),
            "match": published.matches(value, r.printed) if have else None,
            "note": _note(r),
        })
    return pd.DataFrame(rows)


def ints_or_blank(values) -> pd.Series:
    """Whole numbers as text, missing ones as "" (so tables show a blank, not NaN or <NA>)."""
    return pd.Series(["" if v is None or pd.isna(v) else str(int(v)) for v in values],
                     index=getattr(values, "index", None), dtype=object)


def _cells(printed: pd.DataFrame, summary: pd.DataFrame | None, prefix: str) -> pd.DataFrame:
    if summary is None or printed.empty:
        return pd.DataFrame(columns=["metric", "printed", "ours", "diff", "note"])
    return compare(printed, summary, prefix=prefix)


def method_table(printed: pd.DataFrame, jpeg_summary: pd.DataFrame, ours, qfs, published_only=(),
                 metrics=("psnr", "psnrb", "ssim"), order=None, jpeg_method: str = "JPEG", demo: bool = False):
    """A paper's results table (methods x QFs) with our rows beside the printed ones.

    ``printed``: ``published.load(...)`` rows of one table and dataset. ``jpeg_summary``:
    ``protocols.summarize`` of the JPEG evaluation (columns ``qf``, ``n_images``, ``jpeg_*``),
    compared with the printed ``jpeg_method`` row. ``published_only``: printed methods shown
    as the paper's numbers only (a method is listed at a QF only where it is printed there).
    ``ours``: one dict per network row with keys ``qf``, ``method`` (our row label),
    ``paper_method`` (the printed method it reproduces, or None), ``network``, ``summary``
    (``protocols.summarize`` of its evaluation, or None when it is missing), ``note`` (why it
    is missing, or a remark) and optionally ``budget``, ``steps``, ``train_data``.
    ``order``: our method labels in row order (default: order of first appearance in ``ours``).
    ``demo``: the numbers are not on the paper's data, so no diffs.

    Returns ``(table, cells)``: the wide table (one row per method and QF: our metrics, the
    printed ones as ``paper_*`` strings, ``diff_*`` = ours rounded to the printed precision
    minus printed) and the long per-cell comparison of ``compare``.
    """
    rows, cells = [], []
    ours = list(ours)
    if order is None:
        order = list(dict.fromkeys(o["method"] for o in ours))

    def row(qf, method, source, summary, prefix, paper_method, extra):
        p = printed[(printed.qf == qf) & (printed.method == paper_method)] if paper_method else printed.iloc[:0]
        c = _cells(p, summary, prefix)
        if not c.empty:
            cells.append(c.assign(row=method))
        r = {"qf": qf, "method": method, "source": source}
        s = None
        if summary is not None and qf in set(summary.qf):
            s = summary.set_index("qf").loc[qf]
        for m in metrics:
            r[m] = float(s[f"{prefix}{m}"]) if s is not None else float("nan")
        for m in metrics:
            hit = p[p.metric == m]
            r[f"paper_{m}"] = hit.printed.iloc[0] if len(hit) else ""
        for m in metrics:
            hit = c[c.metric == m] if not c.empty else c
            r[f"diff_{m}"] = float(hit["diff"].iloc[0]) if len(hit) and not demo else float("nan")
        r["n_images"] = int(s["n_images"]) if s is not None else None
        notes = [n for n in (c.note if not c.empty else []) if n]
        r.update({"network": "", "budget": "", "steps": None, "train_data": "", **extra})
        r["note"] = "; ".join(dict.fromkeys([extra.get("note", "")] + notes if extra.get("note") else notes))
        rows.append(r)

    for qf in qfs:
        row(qf, jpeg_method, "this run (computed)", jpeg_summary, "jpeg_", jpeg_method,
            {"network": "none (JPEG decode)", "train_data": "no training"})
        for method in published_only:
            if ((printed.qf == qf) & (printed.method == method)).any():
                row(qf, method, f"paper only ({TRANSCRIBED})", None, "", method, {})
        for method in order:
            for o in (o for o in ours if o["qf"] == qf and o["method"] == method):
                extra = {k: o.get(k) for k in ("network", "budget", "steps", "train_data")}
                if o.get("summary") is None:
                    row(qf, method, "missing", None, "restored_", o.get("paper_method"),
                        {**extra, "note": o.get("note") or "not evaluated"})
                else:
                    row(qf, method, "this run", o["summary"], "restored_", o.get("paper_method"),
                        {**extra, "note": o.get("note", "")})
    table = pd.DataFrame(rows)
    for col in ("network", "budget", "train_data", "note"):
        table[col] = table[col].fillna("").astype(str)
    for col in ("steps", "n_images"):
        table[col] = ints_or_blank(table[col])
    cells = pd.concat(cells, ignore_index=True) if cells else pd.DataFrame()
    if demo and not cells.empty:
        cells["diff"] = float("nan")
        cells["match"] = None
    return table, cells


def on_curve(log: pd.DataFrame, steps: int, window: int = 1000) -> dict:
    """Where a network taken at step ``steps`` sits on the validation curve of its training ``log``.

    Returns ``val_step`` (the last validation point at or before ``steps``), ``val_ipsnr`` there,
    ``best_val_ipsnr`` and its step over the whole log, ``slope_db_per_1000`` (``train.val_slope`` over the
    ``window`` steps up to ``steps``) and ``flattened``: the slope is below ``train.FLAT_DB_PER_1000``
    (None when there is no slope).
    """
    from .train import FLAT_DB_PER_1000, val_slope
    v = log.dropna(subset=["val_ipsnr"])
    upto = v[v.step <= steps]
    slope = val_slope(log[log.step <= steps], window)
    best = v.loc[v.val_ipsnr.idxmax()] if len(v) else None
    return {"val_step": int(upto.step.iloc[-1]) if len(upto) else None,
            "val_ipsnr": float(upto.val_ipsnr.iloc[-1]) if len(upto) else float("nan"),
            "best_val_ipsnr": float(best.val_ipsnr) if best is not None else float("nan"),
            "best_step": int(best.step) if best is not None else None,
            "slope_db_per_1000": slope, "flattened": None if slope != slope else bool(slope < FLAT_DB_PER_1000)}


def validation_curves(runs: dict, title: str = "", window: int = 1000):
    """Every network's validation curve and where its weights were taken on it.

    ``runs``: ``{network: (training log, step its weights were taken at)}``. Returns ``(table, figure)``:
    one ``on_curve`` row per network, and the curves (validation IPSNR over JPEG against step) with a
    marker at each network's last validation point at or before its step.
    """
    import matplotlib.pyplot as plt
    rows = [{"network": name, "steps": int(steps), **on_curve(log, int(steps), window)}
            for name, (log, steps) in runs.items()]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for r, color in zip(rows, plt.cm.turbo(np.linspace(0.05, 0.95, max(1, len(rows))))):
        v = runs[r["network"]][0].dropna(subset=["val_ipsnr"])
        ax.plot(v.step, v.val_ipsnr, "-", color=color, lw=1)
        if r["val_step"] is not None:
            ax.plot([r["val_step"]], [r["val_ipsnr"]], "o", color=color, mec="k", ms=5,
                    label=f"{r['network']} (step {r['steps']})")
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xlabel("training step (a network initialised from another counts its own steps)")
    ax.set_ylabel("validation IPSNR over JPEG (dB)")
    ax.legend(fontsize=6, ncol=1 + len(rows) // 12, loc="lower right")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return pd.DataFrame(rows, columns=["network", "steps", "val_step", "val_ipsnr", "best_val_ipsnr", "best_step",
                                       "slope_db_per_1000", "flattened"]), fig


def curves_reading(table: pd.DataFrame) -> str:
    """One computed sentence on a ``validation_curves`` table: which networks were still climbing."""
    from .train import FLAT_DB_PER_1000
    climbing = table[table.flattened.eq(False)]
    text = (f"**Reading (computed).** {len(climbing)} of {len(table)} networks were still climbing when their weights "
            f"were taken (at least {FLAT_DB_PER_1000} dB per 1,000 steps over the 1,000 steps before)")
    text += (": " + ", ".join(f"{r.network} {r.slope_db_per_1000:+.2f}" for r in climbing.itertuples())
             + " dB per 1,000 steps." if len(climbing) else ".")
    if table.flattened.isna().any():
        text += (f" {int(table.flattened.isna().sum())} have fewer than two validation points in that window: "
                 "no slope.")
    return text


def readable(table: pd.DataFrame, metrics=("psnr", "psnrb", "ssim"), labels=None) -> str:
    """``method_table``'s table laid out like the paper's, as Markdown: one row per QF and method, one column
    per metric, each cell ``ours / paper (diff)``; the provenance of our rows once, beneath.

    ``ours`` is rounded to the printed precision of the paper's cell (2 decimals for dB, 4 for SSIM
    where the paper prints nothing), ``diff`` = that minus printed. Cells: ``- / paper`` for rows the
    paper prints and we do not compute, ``ours`` alone where the paper prints nothing, and
    ``missing`` (the reason beneath) for a row of ours that could not be evaluated.
    """
    labels = labels or {"psnr": "PSNR (dB)", "psnrb": "PSNR-B (dB)", "ssim": "SSIM"}
    sets = "dataset" in table.columns   # several evaluation sets in one table (QGCN's LIVE1 and BSDS500 test)
    lines = [("| set " if sets else "") + "| QF | method | " + " | ".join(labels.get(m, m) for m in metrics) + " |",
             ("|:---" if sets else "") + "|---:|:---|" + "|".join("---:" for _ in metrics) + "|"]
    notes, prov = [], {}
    for r in table.itertuples():
        cells = []
        for m in metrics:
            ours, paper, diff = getattr(r, m), getattr(r, f"paper_{m}"), getattr(r, f"diff_{m}")
            dec = len(paper.split(".")[1]) if paper and "." in paper else (4 if m.startswith("ssim") else 2)
            o = "" if pd.isna(ours) else f"{ours:.{dec}f}"
            if o and paper:
                cells.append(f"{o} / {paper}" + ("" if pd.isna(diff) else f" ({diff:+.{dec}f})"))
            elif paper:
                cells.append(f"- / {paper}")
            else:
                cells.append(o or ("missing" if str(r.source) == "missing" else ""))
        method = r.method + (" (paper)" if str(r.source).startswith("paper only") else "")
        lines.append((f"| {r.dataset} " if sets else "") + f"| {r.qf} | {method} | " + " | ".join(cells) + " |")
        if str(r.source) in ("this run", "missing") and r.network:
            bits = [b for b in (f"budget {r.budget}" if r.budget else "", f"{r.steps} steps" if r.steps else "",
                                str(r.train_data)) if b]
            prov.setdefault(r.network, (r.method, ", ".join(bits)))
        if r.note:
            notes.append(f"{r.dataset + ', ' if sets else ''}QF {r.qf}, {r.method}: {r.note}")
    out = "\n".join(lines)
    if prov:
        out += "\n\nOur rows: " + "; ".join(f"**{m}** = `{n}` ({b})" for n, (m, b) in prov.items()) + "."
    if notes:
        out += "\n\nNotes: " + " ".join(f"{n}." if not n.endswith(".") else n for n in dict.fromkeys(notes))
    return out + "\n"


# Conventions other toolkits use, as changes to a base protocol (name -> (base, change)).
VARIANTS = {
    "SSIM 11x11 Gaussian": ("gray", dict(ssim_window="gaussian11")),
    "SSIM scikit-image 7x7": ("gray", dict(ssim_window="skimage")),
    "Pillow luma (convert('L'))": ("gray", dict(luma="pillow")),
    "PSNR-B exact pair counts": ("gray", dict(psnrb_counts="exact")),
    "Pillow (libjpeg-turbo) colour decode": ("color-qgcn", dict(decoder="pillow")),
    "Pillow colour encode + decode": ("color-qgcn", dict(codec="pillow")),
}


def convention_effects(paths, qfs, progress: bool = True) -> pd.DataFrame:
    """How each of ``VARIANTS`` moves the JPEG row on ``paths``: long table of deltas vs the base protocol."""
    bases = {}
    rows = []
    for variant, (base, change) in VARIANTS.items():
        if base not in bases:
            bases[base] = protocols.summarize(protocols.evaluate(paths, qfs, base, progress=progress))
        proto = protocols.replace(protocols.get(base), name=variant, **change)
        alt = protocols.summarize(protocols.evaluate(paths, qfs, proto, progress=progress))
        for metric in ("psnr", "ssim", "psnrb"):
            for (qf, ref), val in zip(bases[base][["qf", f"jpeg_{metric}"]].values, alt[f"jpeg_{metric}"]):
                rows.append({"variant": variant, "base": base, "qf": int(qf), "metric": metric,
                             "base_value": ref, "variant_value": val, "delta": val - ref})
    return pd.DataFrame(rows)
