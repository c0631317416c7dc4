"""CAS-CNN's tables for ``notebooks/cascnn.ipynb``: network names, Table II and Fig. 6 beside the printed numbers.

Nothing here trains, defines or runs a model. The notebook loads networks with
``paperlib.zoo`` (committed checkpoints) or trains one with
``paperlib.models.cascnn.train_cascnn``, scores them with ``paperlib.evaluation``
(``gray`` protocol), and these functions put our numbers beside the transcribed ones.
"""
from __future__ import annotations

from typing import Sequence

import pandas as pd

from . import published, reproduce

__all__ = ["TABLE_II_QFS", "MS_QFS", "METRICS", "OURS", "PUBLISHED_ONLY", "network_name", "table2",
           "ints_or_blank", "match_classic5", "fig6_table"]

TABLE_II_QFS = (10, 20, 40, 60, 80)
MS_QFS = (10, 20, 40)             # Table II prints an "ours, MS loss" row only at these QFs
METRICS = ("psnr", "psnrb", "ssim")  # Table II's column order
# our row label -> (network suffix, the paper's method label in published/cascnn.csv)
OURS = {"ours, MS loss": ("-ms", "CAS-CNN (MS loss)"), "ours, w/ loss FT": ("", "CAS-CNN (w/ loss FT)")}
PUBLISHED_ONLY = ("SA-DCT", "AR-CNN", "L4", "L8")
TRANSCRIBED = reproduce.TRANSCRIBED


def network_name(qf: int, ms: bool = False) -> str:
    """Committed-network name: ``cascnn-q20`` (final, after FT) or ``cascnn-q20-ms`` (end of the MS phase)."""
    return f"cascnn-q{int(qf)}{'-ms' if ms else ''}"


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
