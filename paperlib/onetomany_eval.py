"""Evaluation helpers for ``notebooks/onetomany.ipynb`` (Guo & Chao, CVPR 2017): Table 2, Figs. 5-8, measurements.

Nothing here trains or defines a model. The notebook loads networks with
``paperlib.zoo`` (committed checkpoints) or trains them with
``paperlib.models.onetomany.train_onetomany``; these functions name them, say how
they were trained (which losses, which feature network L_percept used), restore
images with them (``paperlib.restorer``: stochastic networks draw Z from a seed),
score them with the ``gray`` protocol, put our numbers beside the transcribed ones
(``reproduce.method_table``) and measure what the paper only shows in pictures:
distribution distance to the originals, spread over draws of Z, JPEG consistency,
contrast and grid-like (period-2) artifacts.

Restoring and scoring are two steps here (``compress`` / ``restore`` / ``scores``),
where ``evaluation.evaluate_arrays`` does both at once: the measurements need the
restored images themselves (SWD, consistency, the figures), which that function
does not keep. ``restore`` is ``evaluation.restore`` (results cache included). ``ours_row``, ``same_images_jpeg`` and ``ipsnr_table`` are the QGCN notebook's (generic:
a row of ours, the JPEG row of the images our rows are on, the gain over JPEG beside the paper's).
"""
from __future__ import annotations

from itertools import combinations
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from . import diffjpeg, evaluation, metrics, protocols, published, reproduce, zoo
from .models.onetomany import Losses, default_name
from .qgcn_eval import ipsnr_table, ours_row, same_images_jpeg
from .evaluation import restore
from .train import read_manifest

__all__ = ["TABLE_QFS", "FIG_QF", "METRICS", "DATASET", "EVAL_SET", "PUBLISHED_ONLY", "FIG5_IMAGES", "FIG6_IMAGES",
           "FIG7_IMAGES", "JPEG_SAME", "BASELINE", "ONETOMANY", "OURS", "ABLATIONS", "Z_EFFECT_MIN", "NYQUIST_BAND",
           "COLOR_PROTOCOL", "network_name", "objective", "net_provenance", "run_provenance", "features_phrase",
           "printed", "results_table", "ours_row", "same_images_jpeg", "ipsnr_table", "onetomany_cost",
           "paper_figure_gaps",
           "figure_psnr", "references", "compress", "restore", "first_sample", "scores", "image_measures",
           "distribution_table", "z_effect", "sampling_table", "nyquist_share"]

TABLE_QFS = (5, 10, 20)        # Table 2
FIG_QF = 5                     # Figs. 5-8: "we focus on Quality 5" (Sec. 4.2)
METRICS = ("psnr", "ssim", "psnrb")   # Table 2's column order
DATASET = "bsds500-test"       # Table 2's set (published/onetomany.csv)
EVAL_SET = "BSDS500 test"
PUBLISHED_ONLY = ("ARCNN", "TNRD", "DDCN")
FIG5_IMAGES = ("6046", "344010")        # BSDS500 test (the text's one "Image 6045" is 6046: published/NOTES.md)
FIG6_IMAGES = ("baboon", "coastguard")  # Set14
FIG7_IMAGES = FIG5_IMAGES               # the paper does not name Fig. 7's images: the same two, in colour
JPEG_SAME = "JPEG (same images)"
BASELINE = "Baseline (ours)"
ONETOMANY = "One-to-Many (ours)"
OURS = {BASELINE: "Baseline", ONETOMANY: None}   # our row -> the printed row it reproduces (Table 2 has no One-to-Many)
Z_EFFECT_MIN = 0.2             # the "Z matters": two samples differ by >= 0.2 gray levels on average
NYQUIST_BAND = 1 / 16          # nyquist_share: frequencies within this of 1/2 cycle per pixel, on either axis

# Fig. 8, QF 5 gray: panel -> (network suffix, what it is, Eq. 7 weights, shift-and-average). The paper compares
# 8a with 8b to isolate shift-and-average and says 8b is "L_percept" alone, so 8a is read as L_percept alone
# without it; "full" is the One-to-Many network itself (the paper's Fig. 5, row 1, column 5).
ABLATIONS = {
    "8a": ("-percept-noshift", "L_percept only, no shift-and-average", Losses(natural=0.0, jpeg=0.0), False),
    "8b": ("-percept", "L_percept only", Losses(natural=0.0, jpeg=0.0), True),
    "8c": ("-percept-natural", "L_percept + L_natural", Losses(jpeg=0.0), True),
    "full": ("", "L_percept + L_natural + L_jpeg (the full model)", Losses(), True),
}

# The colour network is trained on Pillow 4:2:0 JPEG crops (paperlib.patches); it is shown on the same codec.
COLOR_PROTOCOL = protocols.replace(
    protocols.COLOR_QGCN, name="color-pillow", codec="pillow",
    description="RGB; Pillow (libjpeg-turbo, IJG tables) 4:2:0 encode+decode, the codec the colour One-to-Many "
                "network was trained with; PSNR over RGB; scikit-image SSIM; PSNR-B with BEF summed over channels")


def network_name(kind: str, qf: int, color: bool = False, ablation: str | None = None) -> str:
    """``onetomany-baseline-gray-q10``, ``onetomany-gray-q5``, ``onetomany-color-q5``, ``onetomany-gray-q5-percept``."""
    if ablation is not None and ablation not in ABLATIONS:
        raise ValueError(f"unknown ablation {ablation!r}; one of {sorted(ABLATIONS)}")
    return default_name(kind, color, qf, ABLATIONS[ablation][0] if ablation else "")


def objective(kind: str, losses: dict | None, shift_average=True) -> str:
    """What a network was trained to minimise, in the paper's words (from its manifest's ``losses``)."""
    if kind == "baseline":
        text = "per-pixel L2 (no Z)"
    elif not losses:
        text = "unknown (no losses recorded)"
    else:
        terms = ["L_percept"] + [f"{losses[k]:g} L_{k}" for k in ("natural", "jpeg") if losses.get(k)]
        if losses.get("diversity"):
            terms.append(f"{losses['diversity']:g} L_diversity (beyond the paper)")
        text = " + ".join(terms) + (f" at {losses['percept_layer']}" if losses.get("percept_layer") else "")
    if shift_average is False:
        text += "; no shift-and-average"
    return text


def _provenance(meta: dict, weights_meta: dict, base: dict) -> dict:
    kind = weights_meta.get("kind") or meta.get("kind") or (
        "onetomany" if (weights_meta.get("kwargs") or {}).get("noise") else "baseline")
    shift = (weights_meta.get("kwargs") or {}).get("shift_average", meta.get("shift_average"))
    feats = weights_meta.get("perceptual_features", meta.get("perceptual_features"))
    return {**base, "kind": kind, "objective": objective(kind, weights_meta.get("losses") or meta.get("losses"), shift),
            "perceptual_features": feats or ("none (per-pixel L2)" if kind == "baseline" else "not recorded"),
            "device": meta.get("device", "cpu"), "wall_time_s": meta.get("wall_time_s")}


def net_provenance(name: str) -> dict:
    """Budget, steps, data, objective, L_percept's feature network, device and wall time of a committed network."""
    return _provenance(zoo.info(name), zoo.weights_meta(name), zoo.network_provenance(name))


def run_provenance(run_dir) -> dict:
    """The same for a training run of this notebook (its ``manifest.json``; ``kind``/``losses`` recorded there)."""
    meta = read_manifest(run_dir)
    return _provenance(meta, {"kwargs": meta["model"]["kwargs"]}, zoo.provenance(meta))


def features_phrase(entries: Sequence[dict], with_networks: bool = True) -> str:
    """Which feature network L_percept used, for captions: one clause per label (with the networks that used it).

    ``entries``: network entries (``network``, ``kind``, ``perceptual_features``); Baselines (no L_percept) are
    left out.
    """
    groups = {}
    for e in entries:
        if e.get("kind") == "onetomany":
            groups.setdefault(str(e.get("perceptual_features") or "not recorded"), []).append(str(e.get("network")))
    if not groups:
        return ""
    return "L_percept feature network: " + "; ".join(
        f"{label} ({', '.join(names)})" if with_networks else label for label, names in groups.items())


# ---- Table 2 ------------------------------------------------------------------------------------------------

def printed(table: str = "2") -> pd.DataFrame:
    """The printed cells of Table 2 (``"2"``) or of Figs. 5/6 (``"fig5"``, ``"fig6"``: per-image PSNR at QF 5)."""
    if table not in ("2", "fig5", "fig6"):
        raise ValueError(f"unknown table {table!r}; one of '2', 'fig5', 'fig6'")
    where = {"dataset": DATASET} if table == "2" else {}
    return published.load(paper="onetomany", table=table, **where)


def results_table(jpeg_summary: pd.DataFrame, ours: Sequence[dict], qfs=TABLE_QFS, demo: bool = False):
    """Table 2 (BSDS500 test, gray protocol) with our rows beside the printed ones (``reproduce.method_table``).

    ``jpeg_summary``: ``protocols.summarize`` of the JPEG evaluation of the full set. ``ours``: one dict per row
    (``ours_row``: ``qf``, ``method``, ``paper_method``, ``network``, ``summary`` or None with ``note``), in row
    order (``JPEG_SAME`` first, then ``BASELINE``, ``ONETOMANY``). Returns ``(table, cells)``, ``dataset`` first.
    """
    order = list(dict.fromkeys(o["method"] for o in ours))
    for o in ours:
        if o["method"] in OURS and o.get("paper_method") != OURS[o["method"]]:
            raise ValueError(f"row {o['method']!r} reproduces printed row {OURS[o['method']]!r}, "
                             f"not {o.get('paper_method')!r}")
    t, cells = reproduce.method_table(printed("2"), jpeg_summary, ours, qfs, published_only=PUBLISHED_ONLY,
                                      metrics=METRICS, order=order, demo=demo)
    t.insert(0, "dataset", EVAL_SET)
    return t, cells


def onetomany_cost(table: pd.DataFrame) -> pd.DataFrame:
    """How much One-to-Many loses on each metric: its row minus the Baseline's and minus JPEG on the same images.

    From a ``results_table``; one row per (QF, metric) where the One-to-Many row was evaluated. Differences
    with a missing row are NaN.
    """
    cols = ["qf", "metric", "one_to_many", "baseline", "jpeg_same_images", "minus_baseline", "minus_jpeg"]
    here = table[table.source.eq("this run")]
    rows = []
    for q in sorted(here[here.method == ONETOMANY].qf.unique()):
        at = here[here.qf == q].set_index("method")

        def value(method, m):
            return float(at.loc[method, m]) if method in at.index else float("nan")

        for m in METRICS:
            o, b, j = value(ONETOMANY, m), value(BASELINE, m), value(JPEG_SAME, m)
            rows.append({"qf": int(q), "metric": m, "one_to_many": o, "baseline": b, "jpeg_same_images": j,
                         "minus_baseline": o - b, "minus_jpeg": o - j})
    return pd.DataFrame(rows, columns=cols)


def paper_figure_gaps() -> pd.DataFrame:
    """The paper's own PSNR cost of One-to-Many, from the printed PSNRs under Figs. 5 and 6 (QF 5, per image)."""
    rows = []
    for fig in ("fig5", "fig6"):
        p = printed(fig)
        for image, g in p.groupby("dataset", sort=False):
            v = dict(zip(g.method, g.value))
            for cand in [m for m in g.method if m.startswith("One-to-Many")]:
                rows.append({"figure": fig, "image": image.split("/")[-1], "candidate": cand, "psnr": v[cand],
                             "jpeg": v["JPEG"], "baseline": v["Baseline"],
                             "minus_jpeg": round(v[cand] - v["JPEG"], 2),
                             "minus_baseline": round(v[cand] - v["Baseline"], 2)})
    return pd.DataFrame(rows)


def figure_psnr(ours: dict, figure: str, qf: int = FIG_QF, whole_images: bool = True) -> pd.DataFrame:
    """Our per-image PSNRs beside the PSNRs printed under Fig. 5 or 6.

    ``ours``: ``{(image, method): psnr}`` with the printed method names (``JPEG``, ``Baseline``,
    ``One-to-Many``, ``One-to-Many (1)``, ``(2)``); a printed cell without a value of ours is listed with
    an empty ``psnr``. ``diff`` (ours rounded to the printed precision minus printed) and ``match`` only at the
    printed QF and on ``whole_images`` (the paper's PSNRs are of whole images; a crop's are not comparable).
    """
    p = printed(figure)
    rows = []
    for r in p.itertuples():
        image = r.dataset.split("/")[-1]
        v = ours.get((image, r.method))
        have = v is not None and v == v
        same_qf = int(r.qf) == int(qf) and whole_images
        rows.append({"image": image, "method": r.method, "qf": int(qf), "psnr": float(v) if have else float("nan"),
                     "paper_qf": int(r.qf), "paper_psnr": r.printed,
                     "diff": (round(published.round_half_up(v, r.decimals) - r.value, r.decimals)
                              if have and same_qf else float("nan")),
                     "match": published.matches(v, r.printed) if have and same_qf else None})
    return pd.DataFrame(rows)


# ---- restoring and scoring ----------------------------------------------------------------------------------

def references(paths, crop: int | None = None, protocol="gray") -> dict:
    """``{image name: uint8 reference}``: whole images, or their central ``crop`` x ``crop`` crops."""
    protocol = protocols.get(protocol) if isinstance(protocol, str) else protocol
    if crop:
        return evaluation.center_crops(paths, int(crop), protocol)
    return {Path(p).stem: protocols.reference(protocol, p) for p in paths}


def compress(refs: dict, qf: int, protocol="gray") -> dict:
    """``{name: decoded JPEG}`` of every reference at ``qf`` with the protocol's codec."""
    protocol = protocols.get(protocol) if isinstance(protocol, str) else protocol
    return {n: protocol.compress(r, qf)[0] for n, r in refs.items()}


def first_sample(img: np.ndarray, color: bool = False) -> np.ndarray:
    """The first sample of a K-stack (a single image is returned as it is)."""
    return img[0] if img.ndim == (4 if color else 3) else img


def scores(refs: dict, decoded: dict, qf: int, restored: dict | None = None, protocol="gray") -> pd.DataFrame:
    """Per-image ``jpeg_*`` (and ``restored_*``: a stack's first sample) scores, ``protocols.evaluate``'s columns
    (``protocols.scored``: from the results cache when nothing they depend on changed)."""
    protocol = protocols.get(protocol) if isinstance(protocol, str) else protocol
    rows = []
    for n, ref in refs.items():
        row = {"image": n, "qf": int(qf), "height": ref.shape[0], "width": ref.shape[1]}
        row.update({f"jpeg_{k}": v for k, v in protocols.scored(protocol, ref, decoded[n]).items()})
        if restored is not None:
            out = first_sample(restored[n], protocol.color)
            row.update({f"restored_{k}": v for k, v in protocols.scored(protocol, ref, out).items()})
        rows.append(row)
    return pd.DataFrame(rows)


def nyquist_share(x, band: float = NYQUIST_BAND) -> float:
    """Share of an image's power within ``band`` of the Nyquist frequency (1/2 cycle per pixel) on either axis.

    The image (channels summed in power) minus its mean, times a 2-D Hann window (so the wrap-around edge
    does not leak power along the axes), then |FFT|^2. A period-2 pattern (the grid of a stride-2
    deconvolution, Sec. 3.2.2) scores near 1, smooth content near 0, white noise about the band's share of
    the frequency plane, ``4 band - 4 band^2``. NaN for a constant image (no power). Applied to the
    correction a network adds (restored minus its JPEG input), it measures grid-like artifacts.
    """
    a = np.asarray(x, np.float64)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or min(a.shape[:2]) < 2:
        raise ValueError(f"expected an HxW or HxWxC image, got shape {np.shape(x)}")
    if not 0 < band <= 0.5:
        raise ValueError(f"band must be in (0, 0.5], got {band}")
    h, w = a.shape[:2]
    win = np.hanning(h)[:, None, None] * np.hanning(w)[None, :, None]
    power = (np.abs(np.fft.fft2((a - a.mean(axis=(0, 1))) * win, axes=(0, 1))) ** 2).sum(axis=2)
    total = power.sum()
    if total <= 0:
        return float("nan")
    fy, fx = np.abs(np.fft.fftfreq(h))[:, None], np.abs(np.fft.fftfreq(w))[None, :]
    near = (fy >= 0.5 - band) | (fx >= 0.5 - band)
    return float(power[near].sum() / total)


def image_measures(refs: dict, decoded: dict, outputs: dict, qf: int, protocol="gray") -> pd.DataFrame:
    """Per method and image: PSNR, JPEG consistency, contrast ratio and the correction's Nyquist share.

    ``outputs``: ``{method: {name: uint8 image or K-stack (first sample used)}}``. ``consistency``: Man et
    al.'s RMSE in gray levels between JPEG(output) and JPEG(original) with the protocol's exact codec at
    ``qf`` (``diffjpeg.consistency``; 0 = the output compresses to the input's JPEG). ``contrast_ratio``:
    the output's standard deviation over the original's (the paper's "contrast", Sec. 4.4). ``correction_nyquist``:
    ``nyquist_share`` of output minus JPEG input (NaN where there is no correction).
    """
    protocol = protocols.get(protocol) if isinstance(protocol, str) else protocol
    rows = []
    for method, imgs in outputs.items():
        for n, ref in refs.items():
            out = first_sample(imgs[n], protocol.color)
            corr = out.astype(np.float64) - decoded[n].astype(np.float64)
            rows.append({"method": method, "image": n, "qf": int(qf), "psnr": metrics.psnr(ref, out),
                         "consistency": diffjpeg.consistency(out, ref, qf, subsampling=protocol.subsampling,
                                                             codec=protocol.codec),
                         "contrast_ratio": float(out.std() / ref.std()) if ref.std() > 0 else float("nan"),
                         "correction_nyquist": nyquist_share(corr) if np.any(corr) else float("nan")})
    return pd.DataFrame(rows, columns=["method", "image", "qf", "psnr", "consistency", "contrast_ratio",
                                       "correction_nyquist"])


def distribution_table(refs: dict, outputs: dict, seed: int = 0, fid: bool = True) -> pd.DataFrame:
    """Distance of each method's outputs to the originals, as sets: multi-scale SWD per level, and FID.

    ``outputs``: ``{method: {name: image or K-stack (first sample)}}`` over the same names as ``refs``, or
    ``{method: reason}`` for a method that is missing (a row with the reason, no numbers). SWD
    (``metrics.swd`` through the results cache, x 1e3 as Karras et al. print it) compares restorations of one
    real set, level by level (finest first), on sets of equal size, as its docstring asks. FID (``metrics.fid``)
    only where the Inception weights are already on this machine (``weights.status``: nothing is downloaded
    behind a notebook's back); otherwise ``fid`` stays empty and ``note`` says it needs them.
    """
    from . import weights
    fid_path, fid_note = None, "FID not requested"
    if fid:
        fid_path, _ = weights.status("inception")
        fid_note = None if fid_path is not None else (
            f"FID needs Inception weights ({weights.manifest('inception')['file']} not found locally; "
            "`python -m paperlib weights list` says where it looked, `python -m paperlib weights fetch inception` "
            "provides it)")
    real = list(refs.values())
    rows = []
    for method, imgs in outputs.items():
        if isinstance(imgs, str):
            rows.append({"method": method, "n_images": None, "note": imgs})
            continue
        fake = [first_sample(imgs[n], real[0].ndim == 3) for n in refs]
        levels = evaluation.swd_levels(real, fake, seed=seed) * 1e3
        row = {"method": method, "n_images": len(fake), "swd_mean_x1e3": float(levels.mean()),
               **{f"swd_level{k}_x1e3": float(v) for k, v in enumerate(levels)}, "fid": float("nan"),
               "note": fid_note or ""}
        if fid_path is not None:
            row["fid"] = metrics.fid(real, fake, weights_path=fid_path)
        rows.append(row)
    df = pd.DataFrame(rows)
    df["n_images"] = reproduce.ints_or_blank(df["n_images"])
    levels = sorted((c for c in df.columns if c.startswith("swd_level")), key=lambda c: int(c[9:-5]))
    return df.reindex(columns=["method", "n_images", "swd_mean_x1e3"] + levels + ["fid", "note"])


def z_effect(samples) -> float:
    """Mean absolute difference between the first two samples of a K-stack, in gray levels (the "Z matters" test)."""
    s = np.asarray(samples)
    if s.dtype != np.uint8 or s.ndim < 3 or len(s) < 2:
        raise ValueError(f"expected a uint8 stack of at least 2 samples, got {s.dtype} {s.shape}")
    return float(np.abs(s[0].astype(np.float64) - s[1].astype(np.float64)).mean())


def sampling_table(refs: dict, stacks: dict) -> pd.DataFrame:
    """Per image, over its K samples: per-pixel STD ([0, 1] and gray levels), ``z_effect``, mean |difference| over
    all pairs of samples, the PSNR of each sample (mean, min, max) and of the samples' mean (``metrics.sampling``)."""
    rows = []
    for n, ref in refs.items():
        s = np.asarray(stacks[n])
        st = metrics.sample_statistics(ref, s)
        pairs = [np.abs(s[i].astype(np.float64) - s[j].astype(np.float64)).mean()
                 for i, j in combinations(range(len(s)), 2)]
        p = [metrics.psnr(ref, x) for x in s]
        rows.append({"image": n, "samples": len(s), "per_pixel_std": st["per_pixel_std"],
                     "per_pixel_std_gray_levels": 255.0 * st["per_pixel_std"], "z_effect": z_effect(s),
                     "mean_abs_diff_all_pairs": float(np.mean(pairs)), "psnr_samples_mean": float(np.mean(p)),
                     "psnr_samples_min": float(np.min(p)), "psnr_samples_max": float(np.max(p)),
                     "psnr_of_mean": st["psnr_of_mean"]})
    return pd.DataFrame(rows)
