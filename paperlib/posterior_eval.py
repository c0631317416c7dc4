"""Evaluation helpers for ``notebooks/posterior.ipynb`` (Man, Ohayon, Adrai & Elad, CVPRW 2023): Table 1, Figs. 2-4,
Theorem 1 and the Ours-P check.

Nothing here trains or defines a model (``paperlib.models.posterior`` does). These functions name the networks
of each table row and figure, say how they were trained, code the test crops with the exact codec and keep each
input JPEG's coefficients (for Ours-P), restore with any network (``restore``: ``evaluation.restore``, results
cache included, ``DRAW_BATCH`` at a time; a stochastic network's draw k of image i uses ``derive_seed(seed, i,
k)``; this project's gray CAS-CNN restores the luma of colour images), and measure what the paper reports: the
distance of a method's outputs to the originals as sets (the sliced Wasserstein distance always, ``metrics.swd``;
FID only where the Inception weights are on the machine), JPEG consistency (``diffjpeg.consistency``: RMSE in gray
levels between JPEG(output) and JPEG(original), the input's own settings), PSNR and the per-pixel standard
deviation over draws of Z (``metrics.per_pixel_std``).

Evaluation protocol (``PROTOCOL``): RGB, Pillow (libjpeg-turbo, IJG tables) 4:2:0, the codec every colour network
here was trained with (this recipe's and QGCN's patches); PSNR over RGB. Images: central crops of BSDS500 test
(the paper: ImageNet-ctest10k centre crops, and FFHQ thumbnails for Fig. 2; neither is here), which none of the
networks compared has seen (all train on BSDS500 train+val and ``imagenet-sample-1000``).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from . import diffjpeg, evaluation, jpeg, metrics, protocols, published, zoo
from .models.posterior import QF_RANGE, Losses, default_name, project
from .train import read_manifest

__all__ = ["PROTOCOL", "TABLE_QF", "FIG2_QF", "FIG3_QFS", "CROPS", "EVAL_SET", "TABLE1", "PUBLISHED_ONLY",
           "SWEEP", "METRICS", "QGCN", "CASCNN", "PROJECT_CODE", "network_name", "sweep_name", "sweep_losses",
           "objective", "net_provenance", "run_provenance", "printed", "references", "jpeg_inputs", "DRAW_BATCH",
           "restore", "restore_luma", "projected", "project_outputs", "reencode_rmse", "stand_ins", "projection_check",
           "image_measures", "distribution", "sample_statistics", "MEASURE_CODE", "table1", "model_size", "theorem1", "sweep_reading"]

PROTOCOL = protocols.replace(
    protocols.COLOR_QGCN, name="color-pillow", codec="pillow",
    description="RGB; Pillow (libjpeg-turbo, IJG tables) 4:2:0 encode+decode, the codec the colour networks were "
                "trained with; PSNR over RGB")
TABLE_QF = 10                        # Table 1, Fig. 4 and Theorem 1: "QF=10"
FIG2_QF = 5                          # Fig. 2: FFHQ at QF 5 (here BSDS500 test crops at QF 5)
FIG3_QFS = (5, 10, 20, 30, 40, 50)   # Fig. 3: "across multiple QFs" from 5 to 50
CROPS = {"smoke": 64, "cpu": 128, "paper": 256}   # test crop side per training budget (the issue: 256, cpu 128)
EVAL_SET = "BSDS500 test"
METRICS = ("fid", "consistency", "psnr", "per_pixel_std")   # Table 1's columns (published/posterior.csv)
QGCN, CASCNN = "qgcn-color", "cascnn-q1-60"                  # the regression baselines (committed, QF 1-60)

# Table 1's rows, as printed (published/posterior.csv): network suffix and the losses that define the row.
TABLE1 = {
    "Perceptual Baseline": ("-perceptual-baseline", Losses(consistency=0.0, second_moment=0.0)),   # GAN, FM, P
    "Baseline": ("-baseline", Losses(first_moment=0.0, perceptual=0.0, second_moment=0.0)),        # GAN, C
    "+ First-Moment": ("-fm", Losses(perceptual=0.0, second_moment=0.0)),                          # + FM
    "+ VGG": ("-vgg", Losses(second_moment=0.0)),                                                  # + P
    "+ Second-Moment": ("-sm10", Losses(second_moment=10.0)),                                      # + SM (10^1)
    "Ours": ("", Losses()),                                                                        # SM 10^3
}
PUBLISHED_ONLY = ("Bahat",)   # printed, no network here
# Fig. 2's lambda_C sweep (the paper: 0, 0.1, 1, 5, ...): GAN + C + FM (its FFHQ recipe, Sec. 5.3), trained at QF 5.
SWEEP = (0.0, 0.1, 1.0, 5.0, 10.0)


def network_name(row: str) -> str:
    """The committed network of a Table 1 row: ``posterior-color`` (Ours), ``posterior-color-baseline``, ..."""
    if row not in TABLE1:
        raise ValueError(f"unknown Table 1 row {row!r}; one of {list(TABLE1)}")
    return default_name("posterior", QF_RANGE, TABLE1[row][0])


def sweep_name(lam: float) -> str:
    """Fig. 2's network at lambda_C = ``lam``: ``posterior-color-q5-c0``, ``-c0.1``, ``-c1``, ``-c5``, ``-c10``."""
    return default_name("posterior", FIG2_QF, f"-c{lam:g}")


def sweep_losses(lam: float) -> Losses:
    return Losses(consistency=float(lam), perceptual=0.0, second_moment=0.0)


def objective(kind: str, losses: dict | None) -> str:
    """What a network was trained to minimise, in the paper's terms (from its manifest's ``losses``)."""
    if kind == "mse":
        return "MSE (Ours-MSE)"
    if not losses:
        return "unknown (no losses recorded)"
    terms = [f"{losses['gan']:g} V + R1 (gamma {losses['r1']:g})"] if losses.get("gan") else ["no GAN"]
    for key, sym in (("consistency", "C"), ("first_moment", "FM"), ("perceptual", "P"), ("second_moment", "SM")):
        if losses.get(key):
            terms.append(f"{losses[key]:g} {sym}" + (f" ({losses.get('percept_layer')})" if sym == "P" else ""))
    return " + ".join(terms)


def _provenance(meta: dict, weights_meta: dict, base: dict) -> dict:
    kind = weights_meta.get("kind") or meta.get("kind") or "posterior"
    losses = weights_meta.get("losses") or meta.get("losses")
    feats = weights_meta.get("perceptual_features", meta.get("perceptual_features"))
    uses_p = kind == "posterior" and bool((losses or {}).get("perceptual"))
    return {**base, "kind": kind, "objective": objective(kind, losses),
            "perceptual_features": feats or ("not recorded" if uses_p else "none (no P term)"),
            "mmse": weights_meta.get("mmse", meta.get("mmse")) or "", "params": meta.get("params"),
            "device": meta.get("device", "cpu"), "wall_time_s": meta.get("wall_time_s")}


def net_provenance(name: str) -> dict:
    """Budget, steps, data, objective, P's feature network, X̄ for SM, device and wall time of a committed network."""
    return _provenance(zoo.info(name), zoo.weights_meta(name), zoo.network_provenance(name))


def run_provenance(run_dir) -> dict:
    """The same for a training run of this notebook (its ``manifest.json``)."""
    meta = read_manifest(run_dir)
    return _provenance({**meta, "params": meta["model"]["params"]}, {}, zoo.provenance(meta))


def printed() -> pd.DataFrame:
    """Table 1's printed cells (ImageNet-ctest10k, QF 10)."""
    return published.load(paper="posterior", table="1")


# ---- inputs and restorations ---------------------------------------------------------------------------------

def references(paths, crop: int) -> dict:
    """``{image name: the central crop x crop of its RGB reference}`` (crops are taken before compression)."""
    return evaluation.center_crops(paths, int(crop), PROTOCOL)


def jpeg_inputs(refs: dict, qf: int) -> dict:
    """``{name: (decoded uint8, JPEGCoefficients)}``: each reference coded at ``qf`` with ``PROTOCOL``'s codec, and
    the coefficients, tables and subsampling read back from that very file (``diffjpeg.read_coefficients``)."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "input.jpg")
        for name, ref in refs.items():
            data = jpeg.encode(ref, qf, subsampling=PROTOCOL.subsampling, codec=PROTOCOL.codec)
            Path(path).write_bytes(data)
            out[name] = (jpeg.decode(data, codec=PROTOCOL.codec), diffjpeg.read_coefficients(path))
    return out


# Images (or draws of Z) per forward pass. The test crops are small (128 x 128 at the cpu budget): there the cpu
# generators run 1.2x faster 8 at a time than one at a time (AVX2, one thread); CAS-CNN and QGCN run at the same
# speed either way. Outputs depend on the batch only through float summation order (identical on the crops measured).
DRAW_BATCH = 8


def restore(model, decoded: dict, qf: int | None = None, seed: int = 0, samples: int | None = None,
            tables=None) -> dict:
    """``evaluation.restore`` (the results cache, the draws' seeds), ``DRAW_BATCH`` same-sized images at a time."""
    return evaluation.restore(evaluation.as_restorer(model, batch=DRAW_BATCH), decoded, qf, seed, samples, tables)


def restore_luma(model, decoded: dict, qf: int) -> dict:
    """A gray network on colour images: it restores the luma of each decoded JPEG (Pillow's YCbCr, the JFIF colour
    transform the codec itself uses), chroma kept as decoded, converted back to RGB by Pillow."""
    from PIL import Image
    names = list(decoded)
    ycc = [np.asarray(Image.fromarray(decoded[n]).convert("YCbCr")) for n in names]
    luma = restore(model, {n: np.ascontiguousarray(a[..., 0]) for n, a in zip(names, ycc)}, qf).values()
    out = {}
    for n, a, y in zip(names, ycc, luma):
        merged = np.concatenate([y[..., None], a[..., 1:]], axis=2)
        out[n] = np.asarray(Image.fromarray(merged, mode="YCbCr").convert("RGB"))
    return out


# What Ours-P runs: the projection and the differentiable codec it alternates with
PROJECT_CODE = ("paperlib.models.posterior:project", "paperlib.diffjpeg.cell", "paperlib.diffjpeg.codec",
                "paperlib.diffjpeg.color", "paperlib.diffjpeg.dct", "paperlib.diffjpeg.sampling",
                "paperlib.diffjpeg.quantization")


def projected(img: np.ndarray, coefs) -> np.ndarray:
    """``models.posterior.project(img, coefs)`` (an image or a K-stack onto its input JPEG's cell), from the results
    cache when the pixels, the input's coefficients and the projection's code are unchanged."""
    from . import cache
    from .models.posterior import PROJECTION_ITERATIONS, PROJECTION_MARGIN
    k = cache.key(what="ours-p", image=cache.digest_array(np.asarray(img)), code=cache.code_digest(*PROJECT_CODE),
                  coefs=[cache.digest_array(b.numpy()) for b in [*coefs.blocks, coefs.tables]],
                  size=list(coefs.size), subsampling=coefs.subsampling, margin=PROJECTION_MARGIN,
                  iterations=PROJECTION_ITERATIONS)
    return cache.computed(k, lambda: project(img, coefs))


def project_outputs(outputs: dict, inputs: dict) -> dict:
    """Ours-P of every output (image or K-stack): ``projected`` onto its input JPEG's cell."""
    return {n: projected(img, inputs[n][1]) for n, img in outputs.items()}


def reencode_rmse(img: np.ndarray, decoded: np.ndarray, coefs) -> float:
    """The 8-bit check of Ours-P: ``img`` re-encoded by Pillow with the input file's own tables and subsampling,
    decoded, against the input's decoded image: RMSE in gray levels."""
    data = diffjpeg.encode_tables(img, coefs.tables[0].numpy(), subsampling=coefs.subsampling, codec=PROTOCOL.codec)
    back = jpeg.decode(data, codec=PROTOCOL.codec).astype(np.float64)
    return float(np.sqrt(np.mean((back - decoded.astype(np.float64)) ** 2)))


def stand_ins(decoded: dict, seed: int = 0) -> dict:
    """Two stand-in "restorations" for the Ours-P check where no network is at hand, each far from consistent in
    its own way: the JPEG decode blurred (Gaussian, sigma 1.5 pixels) and the decode plus N(0, 12^2) noise."""
    from scipy.ndimage import gaussian_filter
    rng = np.random.default_rng(seed)
    blur, noise = {}, {}
    for n, d in decoded.items():
        f = d.astype(np.float64)
        blur[n] = np.clip(np.floor(gaussian_filter(f, (1.5, 1.5, 0)) + 0.5), 0, 255).astype(np.uint8)
        noise[n] = np.clip(np.floor(f + rng.normal(0, 12, f.shape) + 0.5), 0, 255).astype(np.uint8)
    return {"stand-in: JPEG decode blurred (sigma 1.5)": blur, "stand-in: JPEG decode + N(0, 12^2) noise": noise}


def projection_check(candidates: dict, inputs: dict, qf: int) -> pd.DataFrame:
    """Per candidate and image: the re-encode RMSE of the output as it is and of its Ours-P projection.

    ``candidates``: ``{label: {name: uint8 image}}`` (restorations, or stand-ins for them).
    """
    rows = []
    for label, imgs in candidates.items():
        for n, img in imgs.items():
            dec, coefs = inputs[n]
            rows.append({"candidate": label, "image": n, "qf": int(qf),
                         "rmse_unprojected": reencode_rmse(img, dec, coefs),
                         "rmse_projected": reencode_rmse(projected(img, coefs), dec, coefs)})
    return pd.DataFrame(rows, columns=["candidate", "image", "qf", "rmse_unprojected", "rmse_projected"])


# ---- measurements ----------------------------------------------------------------------------------------------

def _first(img: np.ndarray) -> np.ndarray:
    return img[0] if img.ndim == 4 else img


# What a measured row runs: its own code, the consistency check (the exact codec, its tables), the per-pixel STD
# and PSNR
MEASURE_CODE = ("paperlib.posterior_eval:_measure_row", "paperlib.posterior_eval:_sample_row",
                "paperlib.diffjpeg.consistency", "paperlib.diffjpeg.quantization", "paperlib.jpeg",
                "paperlib.metrics.sampling", "paperlib.metrics.fidelity")


def _measured(what: str, images: dict, qf: int, compute) -> dict:
    """``compute()`` (a row of floats) from the results cache when the images' pixels, the QF, the protocol and
    ``MEASURE_CODE`` are unchanged: a warm run does not re-encode every draw to check its consistency."""
    from dataclasses import asdict

    from . import cache
    k = cache.key(what=what, qf=int(qf), protocol=asdict(PROTOCOL), code=cache.code_digest(*MEASURE_CODE),
                  **{n: cache.digest_array(np.asarray(a)) for n, a in images.items()})
    hit = cache.load(k)
    if hit is not None:
        return hit[0]
    row = compute()
    cache.store(k, row)
    return row


def _measure_row(ref: np.ndarray, out: np.ndarray, qf: int) -> dict:
    return {"psnr": metrics.psnr(ref, out),
            "consistency": diffjpeg.consistency(out, ref, qf, subsampling=PROTOCOL.subsampling, codec=PROTOCOL.codec)}


def image_measures(refs: dict, outputs: dict, qf: int) -> pd.DataFrame:
    """Per method and image: PSNR (RGB) and JPEG consistency (gray levels) of the output (a stack's draw 0).

    ``outputs``: ``{method: {name: uint8 image or K-stack}}``.
    """
    rows = []
    for method, imgs in outputs.items():
        for n, ref in refs.items():
            out = _first(imgs[n])
            row = _measured("posterior image measures", {"ref": ref, "out": out}, qf,
                            lambda: _measure_row(ref, out, qf))
            rows.append({"method": method, "image": n, "qf": int(qf), **row})
    return pd.DataFrame(rows, columns=["method", "image", "qf", "psnr", "consistency"])


def distribution(refs: dict, draws: Sequence[dict], seed: int = 0, fid_weights=None, real_features=None) -> dict:
    """Distance of a method's outputs to the originals as sets, over repeated draws (Man et al.: 64 FIDs).

    ``draws``: one ``{name: uint8}`` set per draw of Z (one set for a deterministic method). Returns the SWD
    (mean over pyramid levels, x 1e3) and, with ``fid_weights`` (a local Inception file), the FID: the mean and
    standard deviation over the draws (std NaN for one draw) and the number of draws.
    ``real_features``: the originals' Inception features, computed once by the caller for many methods.
    """
    real = list(refs.values())
    swd = [float(evaluation.swd_levels(real, [d[n] for n in refs], seed=seed).mean() * 1e3) for d in draws]
    out = {"n_draws": len(draws), "swd_x1e3": float(np.mean(swd)),
           "swd_x1e3_std": float(np.std(swd, ddof=1)) if len(swd) > 1 else float("nan"),
           "fid": float("nan"), "fid_std": float("nan")}
    if fid_weights is not None:
        feats = real_features if real_features is not None else metrics.inception_features(real, fid_weights)
        fids = [metrics.frechet_distance(feats, metrics.inception_features([d[n] for n in refs], fid_weights))
                for d in draws]
        out.update(fid=float(np.mean(fids)), fid_std=float(np.std(fids, ddof=1)) if len(fids) > 1 else float("nan"))
    return out


def sample_statistics(refs: dict, stacks: dict, inputs: dict, qf: int) -> pd.DataFrame:
    """Per image, over its K draws: per-pixel STD ([0, 1]; Table 1's column), the PSNR of each draw (mean), of
    their average (Ours-A, rounded to 8 bits: ``metrics.mean_sample``), the MSE ratio draws / average in dB, and
    the JPEG consistency of the average and of the draws (mean)."""
    rows = []
    for n, ref in refs.items():
        s = np.asarray(stacks[n])
        row = _measured("posterior sample statistics", {"ref": ref, "stack": s}, qf, lambda: _sample_row(ref, s, qf))
        rows.append({"image": n, **row})
    return pd.DataFrame(rows)


def _sample_row(ref: np.ndarray, s: np.ndarray, qf: int) -> dict:
    avg = metrics.mean_sample(s)
    ref64 = ref.astype(np.float64)
    mse_draws = float(np.mean([np.mean((x.astype(np.float64) - ref64) ** 2) for x in s]))
    mse_avg = float(np.mean((avg.astype(np.float64) - ref64) ** 2))
    cons = [diffjpeg.consistency(x, ref, qf, subsampling=PROTOCOL.subsampling, codec=PROTOCOL.codec) for x in s]
    return {"samples": len(s), "per_pixel_std": metrics.per_pixel_std(s),
            "psnr_draws": float(np.mean([metrics.psnr(ref, x) for x in s])),
            "psnr_average": metrics.psnr(ref, avg),
            "mse_ratio_db": float(10 * np.log10(mse_draws / mse_avg)) if mse_avg > 0 else float("nan"),
            "consistency_draws": float(np.mean(cons)),
            "consistency_average": diffjpeg.consistency(avg, ref, qf, subsampling=PROTOCOL.subsampling,
                                                        codec=PROTOCOL.codec)}


# ---- tables ------------------------------------------------------------------------------------------------------

def table1(ours: Sequence[dict], qf: int = TABLE_QF) -> pd.DataFrame:
    """Table 1 with our rows beside the printed ones.

    ``ours``: one dict per row in order: ``method`` (a printed name, or one of ours such as "JPEG" or "Ours-MSE"),
    ``network``, ``note``, and the measured ``fid``, ``fid_std``, ``swd_x1e3``, ``swd_x1e3_std``, ``consistency``,
    ``psnr``, ``per_pixel_std`` (NaN or absent where not measured). Printed-only rows (``PUBLISHED_ONLY``) are
    appended. ``paper_*`` are the printed strings (blank where the paper prints none, e.g. "≈ 0*"), ``gap_*`` = ours
    minus printed where both exist.
    """
    p = printed()
    cols = ["method", "source", "network", "fid", "fid_std", "swd_x1e3", "swd_x1e3_std", "consistency", "psnr",
            "per_pixel_std"]
    rows = []
    for o in list(ours) + [{"method": m, "source": "paper only", "note": "printed; no network here"}
                           for m in PUBLISHED_ONLY]:
        row = {c: o.get(c, float("nan")) for c in cols}
        row["method"], row["network"] = o["method"], o.get("network", "")
        measured = any(np.isfinite(o.get(k, np.nan)) for k in ("swd_x1e3", "consistency", "psnr"))
        row["source"] = o.get("source") or ("this run" if measured else "missing")
        at = p[(p.method == o["method"]) & (p.qf == qf)].set_index("metric")
        for m in METRICS:
            row[f"paper_{m}"] = at.loc[m, "printed"] if m in at.index else ""
            ours_v, paper_v = row.get(m, np.nan), (float(at.loc[m, "value"]) if m in at.index else np.nan)
            row[f"gap_{m}"] = ours_v - paper_v if np.isfinite(ours_v) and np.isfinite(paper_v) else float("nan")
        row["note"] = o.get("note", "")
        rows.append(row)
    out = pd.DataFrame(rows)
    out.insert(1, "qf", int(qf))
    return out


def model_size(budgets: Sequence[str] = ("cpu", "paper"), height: int = 64) -> pd.DataFrame:
    """Generator and critic of each budget: parameters and the generator's FLOPs per pixel (``speed``)."""
    from . import speed
    from .models.posterior import BUDGETS, Critic, PosteriorNet
    rows = []
    for name in budgets:
        b = BUDGETS[name]
        g = PosteriorNet(3, b.features, b.n_blocks)
        rows.append({"budget": name, "features": b.features, "n_blocks": b.n_blocks,
                     "generator_params": sum(p.numel() for p in g.parameters()),
                     "generator_flops_per_pixel": speed.flops_per_pixel(g, height, height, in_channels=3),
                     "critic_features": b.critic_features, "critic_size": b.crop,
                     "critic_params": sum(p.numel() for p in Critic(3, b.crop, b.critic_features).parameters()),
                     "batch": b.batch, "fm": f"{b.fm_inputs} x {b.fm_samples}", "steps": b.steps,
                     "mse_steps": b.mse_steps})
    return pd.DataFrame(rows)


def theorem1(stats: pd.DataFrame, measures: pd.DataFrame, mse_label: str, regression: Sequence[str] = ()):
    """Theorem 1 made visible: ``(table, facts)``.

    ``stats``: ``sample_statistics`` of Ours (its K draws); ``measures``: ``image_measures`` at the same QF with
    rows for ``mse_label`` (Ours-MSE) and the ``regression`` baselines. The table: consistency and PSNR of
    Ours-MSE, Ours-A (the average of the K draws), Ours (single draws) and the baselines, on the same images.
    ``facts``: the numbers a reading needs (PSNR of Ours-A minus the draws' in dB, the MSE ratio, against
    10 log10 2 = 3.01 dB for an exact posterior sampler, whose draw has twice the MMSE).
    """
    rows = [{"method": "Ours-A (average of draws)", "consistency": stats.consistency_average.mean(),
             "psnr": stats.psnr_average.mean(), "n_images": len(stats)},
            {"method": "Ours (single draws)", "consistency": stats.consistency_draws.mean(),
             "psnr": stats.psnr_draws.mean(), "n_images": len(stats)}]
    imgs = set(stats.image)
    for m in [mse_label, *regression]:
        g = measures[(measures.method == m) & measures.image.isin(imgs)]
        if len(g):
            rows.append({"method": m, "consistency": g.consistency.mean(), "psnr": g.psnr.mean(), "n_images": len(g)})
    facts = {"psnr_gain_average_db": float(stats.psnr_average.mean() - stats.psnr_draws.mean()),
             "mse_ratio_db": float(stats.mse_ratio_db.mean()), "theory_db": float(10 * np.log10(2.0)),
             "samples": int(stats.samples.iloc[0]) if len(stats) else 0}
    return pd.DataFrame(rows), facts


def sweep_reading(sweep: pd.DataFrame, ycol: str = "swd_x1e3") -> str:
    """What Fig. 2's lambda_C sweep resolves: whether its consistency falls as lambda_C grows, and whether
    its distances to the originals (``ycol``) spread further than their draw-to-draw std (``ycol``_std).

    ``sweep``: one row per network with ``lambda_c``, ``consistency``, ``ycol`` and optionally ``ycol``_std.
    The points count as resolved when their spread (max - min) exceeds twice the largest std.
    """
    s = sweep.dropna(subset=["consistency", ycol]).sort_values("lambda_c")
    if len(s) < 2:
        return "Fewer than two sweep networks were measured: no trend to read."
    cons = s.consistency.to_numpy(float)
    falls = bool((np.diff(cons) <= 0).all())
    out = [f"Consistency {'falls' if falls else 'does not fall'} monotonically as λ_C grows "
           f"({cons[0]:.3f} gray levels at λ_C = {s.lambda_c.iloc[0]:g}, {cons[-1]:.3f} at {s.lambda_c.iloc[-1]:g})."]
    spread = float(s[ycol].max() - s[ycol].min())
    std = s[f"{ycol}_std"] if f"{ycol}_std" in s else pd.Series(dtype=float)
    if std.notna().any():
        noise = float(std.max())
        out.append(f"{ycol} spans {spread:.2f} across the sweep against a draw-to-draw std of up to {noise:.2f}: "
                   + ("the sweep's distances are resolved from one another." if spread > 2 * noise else
                      "within twice that std, so the sweep does not resolve a distance trade-off here."))
    else:
        out.append(f"{ycol} spans {spread:.2f} across the sweep (no draw-to-draw std to compare it with).")
    return " ".join(out)
