"""Evaluation helpers for ``notebooks/qgcn.ipynb`` (Li et al., TIP 2020: QGCN / QCN / EDSR): Tables II-III, Figs. 6-10.

Nothing here trains or defines a model. The notebook loads networks with
``paperlib.zoo`` (committed checkpoints) or trains them with
``paperlib.models.qgcn.train_qgcn``; ``paperlib.evaluation`` restores images with them
(the quantization tables of the QF the protocol coded at, as a JPEG file would
carry) and scores them with the paper's protocols (``color-qgcn`` for LIVE1 colour,
``color-qgcn-ssim8`` for BSDS500 colour, ``gray`` for Table III); these functions put our
numbers beside the transcribed ones (``reproduce.method_table``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from . import evaluation, protocols, published, reproduce, zoo

__all__ = ["TABLE_QFS", "METRICS", "TABLES", "COLOR_NETS", "GRAY_NETS", "CASCNN_NET", "PUBLISHED_ONLY",
           "SINGLE_QF_EDSR", "EDSR_RANGE", "NRES_RUNS", "PATCH_RUNS", "SCALES", "net_provenance",
           "evaluate_plan", "ours_row", "describe_nets", "same_images_jpeg", "results_table", "ipsnr_table",
           "ordering", "beats_jpeg", "downscaled", "largest", "scale_sweep", "nres_stability", "val_curves",
           "printed"]

TABLE_QFS = (10, 20, 30, 40, 50)
METRICS = ("psnr", "ssim", "psnrb")  # the tables' row order (PSNR, SSIM, PSNR-B)
# table -> {our evaluation set: (published dataset label, protocol)}
TABLES = {"II": {"LIVE1": "live1-color", "BSDS500 test": "bsds500-test-color"},
          "III": {"LIVE1": "live1", "BSDS500 test": "bsds500-test"}}
# our row label -> (committed network, the paper's method label or None for a row the paper does not print)
COLOR_NETS = {"EDSR (ours)": ("edsr-color", "EDSR"), "QCN (ours)": ("qcn-color", "QCN"),
              "QGCN (ours)": ("qgcn-color", "QGCN")}
GRAY_NETS = {"QGCN (ours)": ("qgcn-gray", "QGCN"), "QCN (ours, extra)": ("qcn-gray", None),
             "EDSR (ours, extra)": ("edsr-gray", None)}
CASCNN_NET = ("CAS-CNN (ours, QF1-60)", "cascnn-q1-60", "CAS-CNN")
PUBLISHED_ONLY = {"II": ("AR-CNN",), "III": ("AR-CNN", "DnCNN-3", "DMCNN", "IDCN", "RNAN")}
SINGLE_QF_EDSR = {q: f"edsr-color-q{q}" for q in TABLE_QFS}   # Fig. 6: one EDSR per QF
EDSR_RANGE = "edsr-color-q10-50"                               # Fig. 6: EDSR10-50
NRES_RUNS = {8: "qgcn-color", 16: "qgcn-color-r16", 32: "qgcn-color-r32", 64: "qgcn-color-r64"}   # Fig. 8
PATCH_RUNS = {"EDSR-64": "edsr-color-p64", "EDSR-256": "edsr-color", "QGCN-64": "qgcn-color-p64",
              "QGCN-256": "qgcn-color"}                        # Fig. 10 (-256: 64x64, then 256x256)
SCALES = (1, 2, 3, 4)   # Fig. 9: sides / s, i.e. 1, 1/4, 1/9, 1/16 of the area


def printed(table: str, eval_set: str) -> pd.DataFrame:
    """The paper's printed cells of Table ``table`` for one evaluation set (``"LIVE1"`` or ``"BSDS500 test"``)."""
    return published.load(paper="qgcn", table=table, dataset=TABLES[table][eval_set])


def net_provenance(name: str) -> dict:
    """Budget, steps, data, wall time and device of a committed network (or a log-only entry) from its manifest."""
    meta = zoo.info(name)
    prov = zoo.network_provenance(name)
    cfg = meta.get("budget_config") or {}
    return {**prov, "device": meta.get("device", "cpu"), "wall_time_s": meta.get("wall_time_s"),
            "n_res": cfg.get("n_res"), "weights": "committed" if meta.get("file") else "log only"}


def describe_nets(entries: Iterable[dict]) -> str:
    """One phrase per group of networks sharing budget, n_res, steps and device (for captions), from their manifests.

    ``entries``: the notebook's network entries (``network`` and the ``net_provenance`` keys).
    """
    groups = {}
    for e in entries:
        key = (e.get("budget") or "?", e.get("n_res"), e.get("steps"), e.get("device") or "?")
        groups.setdefault(key, []).append(str(e.get("network", "?")))
    parts = []
    for (b, r, s, d), names in groups.items():
        bits = [f"budget {b}"] + ([f"n_res {r}"] if r else []) + ([f"{s} steps"] if s else []) + [f"trained on {d}"]
        parts.append(f"{', '.join(names)}: {', '.join(bits)}")
    return "; ".join(parts) if parts else "none"


def evaluate_plan(model, plan: dict, protocol, keep: Iterable[str] = ()):
    """Score ``model`` on different images at different QFs: ``plan = {qf: paths}``.

    Any network (``paperlib.evaluation.evaluate_network``: QGCN-family networks get the tables
    of each QF; a gray CAS-CNN refuses colour images). Returns ``(per_image, kept)``.
    """
    frames, kept = [], {}
    for qf, paths in plan.items():
        if not paths:
            continue
        df, k = evaluation.evaluate_network(paths, [qf], model, keep=keep, protocol=protocol)
        frames.append(df)
        kept.update(k)
    if not frames:
        raise ValueError("empty evaluation plan")
    return pd.concat(frames, ignore_index=True), kept


def ours_row(qf: int, method: str, paper_method, net: dict, per_image: pd.DataFrame | None, note: str = "") -> dict:
    """One "ours" row for ``results_table``: the summary at ``qf`` of ``per_image`` (None: missing, ``note`` says why).

    ``net``: the notebook's network entry (``network`` and the ``net_provenance`` keys).
    """
    summary = None
    if per_image is not None and (per_image.qf == qf).any():
        summary = protocols.summarize(per_image[per_image.qf == qf])
    return {"qf": qf, "method": method, "paper_method": paper_method, "network": net.get("network", ""),
            "summary": summary, "note": note if summary is not None else (note or net.get("note") or "not evaluated"),
            **{k: net.get(k) for k in ("budget", "steps", "train_data")}}


def same_images_jpeg(per_image: pd.DataFrame) -> pd.DataFrame:
    """The JPEG scores of exactly the images a network was scored on, as a ``restored_*`` summary.

    ``per_image``: ``protocols.evaluate`` rows (one network, possibly several QFs). The result is
    ``protocols.summarize`` with the ``jpeg_*`` metrics renamed ``restored_*``, so it can stand as a row
    of ``reproduce.method_table`` beside the network rows (same images, same QF).
    """
    s = protocols.summarize(per_image)
    keep = ["qf", "n_images"] + [c for c in s.columns if c.startswith("jpeg_")]
    return s[keep].rename(columns=lambda c: "restored_" + c[5:] if c.startswith("jpeg_") else c)


def results_table(table: str, eval_set: str, jpeg_summary: pd.DataFrame, ours: Sequence[dict], qfs=TABLE_QFS,
                  demo: bool = False):
    """Table II or III for one evaluation set: ``reproduce.method_table`` with the paper's printed rows.

    ``ours``: one dict per row (keys ``qf``, ``method``, ``paper_method``, ``network``, ``summary``, ``note`` and
    provenance). Returns ``(table, cells)``, with a ``dataset`` column first.
    """
    pr = printed(table, eval_set)
    order = list(dict.fromkeys(o["method"] for o in ours))
    t, cells = reproduce.method_table(pr, jpeg_summary, ours, qfs, published_only=PUBLISHED_ONLY[table],
                                      metrics=METRICS, order=order, demo=demo)
    t.insert(0, "dataset", eval_set)
    if not cells.empty:
        cells.insert(0, "eval_set", eval_set)
    return t, cells


def ipsnr_table(table: pd.DataFrame, printed_rows: pd.DataFrame, same_images_label: str) -> pd.DataFrame:
    """Gain over JPEG, ours vs the paper's, for every reproduced row of a ``results_table``.

    Ours: the row's PSNR minus the JPEG PSNR on the same images (the ``same_images_label`` row at that QF).
    Paper: its printed row minus its printed JPEG row. Rows without a printed counterpart get NaN for the paper.
    """
    pj = printed_rows[(printed_rows.method == "JPEG") & (printed_rows.metric == "psnr")].set_index("qf").value
    out = []
    for r in table[table.source.eq("this run") & ~table.method.eq(same_images_label)].itertuples():
        same = table[(table.qf == r.qf) & (table.method == same_images_label) & table.source.eq("this run")]
        jp = float(same.psnr.iloc[0]) if len(same) else float("nan")
        paper = float(r.paper_psnr) - float(pj.loc[r.qf]) if r.paper_psnr and r.qf in pj.index else float("nan")
        out.append({"dataset": r.dataset, "qf": r.qf, "method": r.method, "network": r.network,
                    "n_images": r.n_images, "ipsnr_ours": r.psnr - jp, "ipsnr_paper": paper,
                    "ipsnr_gap": r.psnr - jp - paper})
    return pd.DataFrame(out, columns=["dataset", "qf", "method", "network", "n_images", "ipsnr_ours", "ipsnr_paper",
                                      "ipsnr_gap"])


def ordering(scores: dict, metrics: Sequence[str] = METRICS) -> pd.DataFrame:
    """Does ``a > b`` hold for each consecutive pair of ``scores`` (``{label: {metric: value}}``, best-first order)?

    One row per (pair, metric): the two values, their difference and ``holds``. A missing value gives
    ``holds`` None (not known), never False.
    """
    labels = list(scores)
    rows = []
    for a, b in zip(labels, labels[1:]):
        for m in metrics:
            va, vb = scores[a].get(m), scores[b].get(m)
            known = va is not None and vb is not None and va == va and vb == vb
            rows.append({"pair": f"{a} > {b}", "metric": m, "a": va, "b": vb,
                         "difference": (va - vb) if known else float("nan"), "holds": bool(va > vb) if known else None})
    return pd.DataFrame(rows)


def beats_jpeg(ipsnr: pd.DataFrame, qfs=TABLE_QFS) -> pd.DataFrame:
    """Per QF: the IPSNR (``ipsnr`` column, dB) and whether it is positive; a QF with no value is ``None``."""
    by = ipsnr.set_index("qf").ipsnr if len(ipsnr) else pd.Series(dtype=float)
    return pd.DataFrame([{"qf": q, "ipsnr": float(by.loc[q]) if q in by.index else float("nan"),
                          "improves": bool(by.loc[q] > 0) if q in by.index else None} for q in qfs])


def downscaled(ref: np.ndarray, scales: Sequence[int] = SCALES) -> dict:
    """``{s: ref with both sides divided by s}`` (area 1/s^2), bicubic with antialiasing (Pillow), s = 1 unchanged.

    Sides are ``round(side / s)``; the copies are made from the uncompressed image and then JPEG-coded on their own.
    """
    from PIL import Image

    ref = np.asarray(ref)
    if ref.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {ref.dtype}")
    out = {}
    for s in scales:
        if int(s) != s or s < 1:
            raise ValueError(f"scales must be positive integers, got {s}")
        h, w = ref.shape[:2]
        if s == 1:
            out[1] = ref.copy()
            continue
        size = (max(8, round(w / s)), max(8, round(h / s)))
        out[int(s)] = np.asarray(Image.fromarray(ref).resize(size, Image.BICUBIC, reducing_gap=None))
    return out


def largest(paths, n: int) -> list:
    """The ``n`` paths with the most pixels (ties: name order), largest first."""
    from PIL import Image

    def area(p):
        with Image.open(p) as im:
            return im.size[0] * im.size[1]

    return sorted(paths, key=lambda p: (-area(p), Path(p).stem))[:n]


def scale_sweep(refs: dict, models: dict, qfs=TABLE_QFS, scales: Sequence[int] = SCALES,
                protocol="color-qgcn") -> pd.DataFrame:
    """Fig. 9: IPSNR of each network on downscaled copies of each reference, per QF and scale.

    ``refs``: ``{name: uint8 image}``; ``models``: ``{label: network}``. Returns one row per
    (network, scale, image, qf) with the copy's size, the JPEG and restored PSNR and ``ipsnr``.
    """
    rows = []
    copies = {n: downscaled(r, scales) for n, r in refs.items()}
    for label, model in models.items():
        for s in scales:
            df = evaluation.evaluate_arrays({n: c[s] for n, c in copies.items()}, qfs, model, protocol, batch=1)
            rows.append(df.assign(network=label, scale=int(s), area=1.0 / s ** 2,
                                  ipsnr=df.restored_psnr - df.jpeg_psnr))
    df = pd.concat(rows, ignore_index=True)
    return df[["network", "scale", "area", "image", "height", "width", "qf", "jpeg_psnr", "restored_psnr", "ipsnr"]]


def nres_stability(logs: dict, qfs=TABLE_QFS) -> pd.DataFrame:
    """Fig. 8: the last logged validation IPSNR per QF of each run (``{n_res: training log DataFrame}``).

    One row per (n_res, qf) with the step it was logged at. Runs without a ``val_ipsnr_q{qf}`` column are skipped.
    """
    rows = []
    for n_res, log in logs.items():
        for q in qfs:
            col = f"val_ipsnr_q{q}"
            if col not in log.columns:
                continue
            v = log.dropna(subset=[col])
            if len(v):
                rows.append({"n_res": int(n_res), "qf": q, "val_ipsnr": float(v[col].iloc[-1]),
                             "step": int(v.step.iloc[-1])})
    return pd.DataFrame(rows, columns=["n_res", "qf", "val_ipsnr", "step"])


def val_curves(logs: dict) -> pd.DataFrame:
    """Fig. 10: validation PSNR / IPSNR over training steps, long format, one ``run`` per key of ``logs``."""
    parts = []
    for label, log in logs.items():
        v = log.dropna(subset=["val_psnr"])
        crop = v["crop"] if "crop" in v else pd.Series(np.nan, index=v.index)
        parts.append(pd.DataFrame({"run": label, "step": v.step.astype(int), "val_psnr": v.val_psnr,
                                   "val_ipsnr": v.val_ipsnr, "crop": crop}))
    return (pd.concat(parts, ignore_index=True) if parts else
            pd.DataFrame(columns=["run", "step", "val_psnr", "val_ipsnr", "crop"]))


# A low-quality JPEG whose tables are not IJG's (the real-JPEG example): how it is made, and what reading the
# file's own tables buys over assuming IJG tables of the nearest quality.
CUSTOM_BASE_QF = 20   # the IJG quality the custom tables start from


def custom_tables(base_qf: int = CUSTOM_BASE_QF) -> np.ndarray:
    """Luma and chroma tables no IJG quality produces: IJG's tables at ``base_qf`` with each entry scaled by
    ``1 + 0.1 (i + j)`` (frequency index i, j: 1x at DC, 2.4x at the highest frequency), rounded, clamped
    to 1..255 for baseline JPEG; a camera-firmware-like curve that quantizes high frequencies harder."""
    from . import jpeg
    i, j = np.mgrid[:8, :8]
    return np.clip(np.round(jpeg.ijg_tables(base_qf, True) * (1 + 0.1 * (i + j))), 1, 255).astype(np.int64)


def custom_jpeg(ref: np.ndarray, tables: np.ndarray) -> bytes:
    """``ref`` (HxWx3 uint8) coded by Pillow, 4:2:0, with ``tables`` (luma, chroma) instead of a quality."""
    import io

    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(ref).save(buf, format="JPEG", qtables=[t.flatten().tolist() for t in tables], subsampling=2)
    return buf.getvalue()


def nearest_ijg_qf(tables: np.ndarray) -> int:
    """The IJG quality whose (luma, chroma) tables are closest to ``tables`` (summed absolute difference):
    what a restorer that only knows a QF would assume for this file."""
    from . import jpeg
    return min(range(1, 101), key=lambda q: int(np.abs(jpeg.ijg_tables(q, True) - tables).sum()))
