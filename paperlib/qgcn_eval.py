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
from .evaluation import paired_bootstrap

__all__ = ["TABLE_QFS", "METRICS", "TABLES", "COLOR_NETS", "GRAY_NETS", "CASCNN_NET", "PUBLISHED_ONLY",
           "SINGLE_QF_EDSR", "EDSR_RANGE", "NRES_RUNS", "PATCH_RUNS", "SCALES", "net_provenance",
           "evaluate_plan", "ours_row", "describe_nets", "same_images_jpeg", "results_table", "ipsnr_table",
           "downscaled", "largest", "scale_sweep", "nres_stability", "val_curves",
           "printed", "paired_ordering", "ordering_verdict", "ipsnr_intervals", "best_by_qf", "largest_layer",
           "params_reading", "vs_jpeg_line", "best_line"]

TABLE_QFS = (10, 20, 30, 40, 50)
METRICS = ("psnr", "ssim", "psnrb")  # the tables' row order (PSNR, SSIM, PSNR-B)
# table -> {our evaluation set: (published dataset label, protocol)}
TABLES = {"II": {"LIVE1": "live1-color", "BSDS500 test": "bsds500-test-color"},
          "III": {"LIVE1": "live1", "BSDS500 test": "bsds500-test"}}
# our row label -> (committed network, the paper's method label or None for a row the paper does not print)
COLOR_NETS = {"EDSR (ours)": ("edsr-color", "EDSR"), "QCN (ours)": ("qcn-color", "QCN"),
              "QGCN (ours)": ("qgcn-color", "QGCN")}
# "cpu budget continued": `qgcn-gray` trained on with the same cpu recipe four times more, 3,000 steps each time
# (issue 13; Makefile qgcn-cont-checkpoints: qgcn-gray -> qgcn-gray-cont -> ... -> qgcn-gray-cont4),
# beside the cpu-budget row and compared with the same printed QGCN row
GRAY_NETS = {"QGCN (ours)": ("qgcn-gray", "QGCN"), "QGCN (ours, cpu budget continued)": ("qgcn-gray-cont4", "QGCN"),
             "QCN (ours, extra)": ("qcn-gray", None), "EDSR (ours, extra)": ("edsr-gray", None)}
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


NAMES = {"psnr": ("PSNR", " dB", "+.4f"), "psnrb": ("PSNR-B", " dB", "+.4f"), "ssim": ("SSIM", "", "+.4f")}


def _scores(per_image: pd.DataFrame, label: str, qf: int, metric: str, jpeg_of: str | None = None) -> pd.Series:
    """Per-image ``metric`` of ``label`` at ``qf`` (indexed by image); ``jpeg_of``: the JPEG scores of that
    label's images instead."""
    g = per_image[(per_image.method == (jpeg_of or label)) & (per_image.qf == qf)]
    return g.set_index("image")[f"{'jpeg' if jpeg_of else 'restored'}_{metric}"]


def paired_ordering(per_image: pd.DataFrame, labels: Sequence[str], qf: int, metrics: Sequence[str] = METRICS,
                    jpeg_label: str = "JPEG (same images)", n: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Does ``a > b`` hold for each consecutive pair of ``labels`` (best first) at ``qf``, per metric, by how much,
    and is the margin beyond the image-to-image noise?

    ``per_image``: the long per-image table of one evaluation set (columns ``method``, ``qf``, ``image``,
    ``jpeg_*``, ``restored_*``; ``table2_per_image.csv``). ``jpeg_label`` stands for the JPEG scores of the
    images of the label before it. Each pair is compared on the images both were scored on: ``a``, ``b`` their
    means, ``difference`` the mean per-image difference with its 95% bootstrap interval ``low``, ``high``
    (``evaluation.paired_bootstrap``); ``beyond_noise`` when the interval excludes 0. A label without scores
    gives ``holds`` None (not known), never False.
    """
    rows = []
    for i, (a, b) in enumerate(zip(labels, labels[1:])):
        for m in metrics:
            va = _scores(per_image, a, qf, m)
            vb = _scores(per_image, b, qf, m, jpeg_of=labels[i] if b == jpeg_label else None)
            common = va.index.intersection(vb.index)
            row = {"pair": f"{a} > {b}", "metric": m, "a": float("nan"), "b": float("nan"),
                   "difference": float("nan"), "low": float("nan"), "high": float("nan"), "n_images": len(common),
                   "holds": None, "beyond_noise": None}
            if len(common):
                d, lo, hi = paired_bootstrap(va[common].to_numpy(), vb[common].to_numpy(), n=n, seed=seed)
                row.update(a=float(va[common].mean()), b=float(vb[common].mean()), difference=d, low=lo, high=hi,
                           holds=bool(d > 0), beyond_noise=None if lo != lo else bool(lo > 0 or hi < 0))
            rows.append(row)
    return pd.DataFrame(rows)


def _margin(d: float, lo: float, hi: float, metric: str = "psnr") -> str:
    name, unit, fmt = NAMES.get(metric, (metric, "", "+.4f"))
    if lo != lo:
        return f"{name} {d:{fmt}}{unit} (one image: no noise estimate)"
    verdict = "beyond" if lo > 0 or hi < 0 else "within"
    return f"{name} {d:{fmt}}{unit} (95% interval {lo:{fmt}} to {hi:{fmt}}, {verdict} the noise)"


def ordering_verdict(o: pd.DataFrame, kind: str) -> str:
    """One line on a ``paired_ordering`` table: does the order hold, and each margin with its interval."""
    if o.holds.isna().any():
        return f"**{kind}: not decided** (a row is missing: {', '.join(o[o.holds.isna()].pair.unique())})."
    held = o.holds.astype(bool)
    beyond = o.beyond_noise.dropna().astype(bool)
    head = (f"**{kind}: {'yes' if held.all() else 'no'}**, {int(held.sum())} of {len(o)} comparisons in the "
            f"stated order, {int((held & o.beyond_noise.fillna(False).astype(bool)).sum())} of them beyond the "
            f"image-to-image noise and {int((~held & o.beyond_noise.fillna(False).astype(bool)).sum())} reversed "
            f"beyond it ({len(o) - len(beyond)} not estimated).")
    pairs = [f"{pair}: " + ", ".join(_margin(r.difference, r.low, r.high, r.metric) for r in g.itertuples())
             for pair, g in o.groupby("pair", sort=False)]
    return head + " " + "; ".join(pairs) + "."


def ipsnr_intervals(per_image: pd.DataFrame, qfs=TABLE_QFS, n: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per QF: one network's mean PSNR gain over JPEG on its images (``ipsnr``) with its 95% bootstrap interval,
    whether it is positive (``improves``) and beyond the image-to-image noise; a QF with no rows is None."""
    rows = []
    for q in qfs:
        g = per_image[per_image.qf == q]
        r = {"qf": q, "n_images": len(g), "ipsnr": float("nan"), "low": float("nan"), "high": float("nan"),
             "improves": None, "beyond_noise": None}
        if len(g):
            d, lo, hi = paired_bootstrap(g.restored_psnr.to_numpy(), g.jpeg_psnr.to_numpy(), n=n, seed=seed)
            r.update(ipsnr=d, low=lo, high=hi, improves=bool(d > 0), beyond_noise=None if lo != lo else bool(lo > 0 or hi < 0))
        rows.append(r)
    return pd.DataFrame(rows)


def best_by_qf(per_image: pd.DataFrame, labels: Sequence[str], qfs=TABLE_QFS, n: int = 2000,
               seed: int = 0) -> pd.DataFrame:
    """Per QF: the network of ``labels`` with the highest mean PSNR gain over JPEG, its lead over the runner-up
    on the images both were scored on (95% bootstrap interval) and whether that lead is beyond the noise."""
    rows = []
    for q in qfs:
        gains = {}
        for lab in labels:
            g = per_image[(per_image.method == lab) & (per_image.qf == q)].set_index("image")
            if len(g):
                gains[lab] = g.restored_psnr - g.jpeg_psnr
        if not gains:
            continue
        ranked = sorted(gains, key=lambda k: -gains[k].mean())
        r = {"qf": q, "best": ranked[0], "ipsnr_best": float(gains[ranked[0]].mean()), "runner_up": None,
             "lead": float("nan"), "low": float("nan"), "high": float("nan"), "beyond_noise": None}
        if len(ranked) > 1:
            a, b = gains[ranked[0]], gains[ranked[1]]
            common = a.index.intersection(b.index)
            d, lo, hi = paired_bootstrap(a[common].to_numpy(), b[common].to_numpy(), n=n, seed=seed)
            r.update(runner_up=ranked[1], lead=d, low=lo, high=hi, beyond_noise=None if lo != lo else bool(lo > 0 or hi < 0))
        rows.append(r)
    return pd.DataFrame(rows, columns=["qf", "best", "ipsnr_best", "runner_up", "lead", "low", "high", "beyond_noise"])


def vs_jpeg_line(g: pd.DataFrame, eval_set: str, what: str = "QGCN (colour)") -> str:
    """One reading line on an ``ipsnr_intervals`` table: at how many QFs the network improves on JPEG, how many
    of those gains are beyond the image-to-image noise, and each gain with its interval."""
    ok = g.improves.dropna().astype(bool)
    beyond = g.beyond_noise.reindex(ok.index).fillna(False).astype(bool)
    have = g.dropna(subset=["ipsnr"])
    worse = int((~ok & beyond).sum())
    return (f"* {what} vs JPEG on {eval_set}: improves at {int(ok.sum())} of {len(ok)} QFs evaluated, "
            f"{int((ok & beyond).sum())} of them beyond the image-to-image noise"
            + (f"; worse than JPEG beyond the noise at {worse}" if worse else "") + "; IPSNR "
            + ", ".join(f"QF{r.qf} {r.ipsnr:+.2f} dB [{r.low:+.2f}, {r.high:+.2f}]" for r in have.itertuples())
            + " (95% intervals over images)" + ("" if len(ok) == len(g) else f"; {len(g) - len(ok)} QF(s) not evaluated")
            + ".")


def best_line(best: pd.DataFrame, eval_set: str) -> str:
    """One reading line on a ``best_by_qf`` table: the best network per QF and its lead over the runner-up."""
    parts = []
    for r in best.itertuples():
        lead = ("" if r.runner_up is None else
                f"; lead over {r.runner_up.replace(' (ours)', '')}: {_margin(r.lead, r.low, r.high).removeprefix('PSNR ')}")
        parts.append(f"QF{r.qf} {r.best.replace(' (ours)', '')} ({r.ipsnr_best:+.2f} dB{lead})")
    return f"* Best colour network by IPSNR on {eval_set}: " + "; ".join(parts) + "."


def largest_layer(module) -> tuple[str, int]:
    """The direct child layer of ``module`` holding the most parameters (weights and bias), as ``(name, count)``;
    children that are containers are searched one level down (``convs.12``)."""
    counts = {}
    for name, p in module.named_parameters():
        layer = name.rsplit(".", 1)[0]
        counts[layer] = counts.get(layer, 0) + p.numel()
    name = max(counts, key=counts.get)
    return name, counts[name]


def params_reading(params: pd.DataFrame, largest: tuple[str, int]) -> str:
    """The parameter-count reading: the global branch's share of QGCN and its largest layer (``largest_layer`` of
    the colour QGCN's global branch), and QGCN's size relative to QCN, per ``n_res`` (colour networks)."""
    c = params[params.images == "colour"].set_index(["n_res", "network"])
    parts = []
    for n_res in sorted(c.index.get_level_values(0).unique()):
        q, qcn = c.loc[(n_res, "QGCN")], c.loc[(n_res, "QCN")]
        parts.append(f"n_res {n_res}: QGCN {q.params / 1e6:.2f} M parameters, {q.global_branch_params / q.params:.0%} "
                     f"of them in the global branch; QGCN / QCN = {q.params / qcn.params:.1f}")
    name, count = largest
    return ("**Reading (computed).** " + "; ".join(parts) + f". The global branch's largest layer, `{name}`, holds "
            f"{count / 1e6:.2f} M parameters.")


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
