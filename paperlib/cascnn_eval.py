"""Evaluation helpers for ``notebooks/cascnn.ipynb``: which networks exist, scoring them, Table II and Fig. 6 tables.

Nothing here trains or defines a model. The notebook loads networks with
``paperlib.zoo`` (committed checkpoints) or trains one with
``paperlib.models.cascnn.train_cascnn``; these functions score them with the
``gray`` protocol and put our numbers beside the transcribed ones.
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from . import protocols, published, reproduce

__all__ = ["TABLE_II_QFS", "MS_QFS", "METRICS", "OURS", "PUBLISHED_ONLY", "network_name", "provenance",
           "zoo_provenance", "run_info", "evaluate_network", "enhance_batch", "center_crops", "evaluate_arrays",
           "table2", "ints_or_blank", "match_classic5", "fig6_table", "ipsnr_by_qf"]

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


def provenance(meta: dict, weights_meta: dict | None = None) -> dict:
    """Budget, steps, training data and wall time from a zoo manifest (``zoo.info``) or a run's manifest.json.

    ``weights_meta``: the meta stored in the weights file itself (``checkpoint.load_fp16``). Its ``steps``
    wins: the MS-phase weights of a run are those of step ``ft_start``, while a run's manifest (and a zoo
    manifest copied from it) counts every step of the run.
    """
    d = meta.get("data") or {}
    sources = d.get("sources") or []
    n = d.get("n_images")
    steps = (weights_meta or {}).get("steps", meta.get("steps", meta.get("steps_done")))
    wall = meta.get("wall_time_s")
    init = meta.get("init_from") or ""
    train_data = " + ".join(sources) + (f" ({n} images)" if n else "")
    if init:
        train_data += f"; started from {Path(str(init)).name}"
    return {"budget": meta.get("budget", ""), "steps": int(steps) if steps is not None else None,
            "train_data": train_data, "wall_time_h": round(wall / 3600, 2) if wall is not None else None,
            "init_from": str(init)}


def zoo_provenance(name: str) -> dict:
    """``provenance`` of the committed network ``name`` (its manifest and the meta inside its weights file)."""
    from . import checkpoint, zoo

    meta = zoo.info(name)
    try:
        _, weights_meta = checkpoint.load_fp16(zoo.CHECKPOINT_DIR / meta["file"])
    except (OSError, ValueError, KeyError, RuntimeError):
        weights_meta = None
    return provenance(meta, weights_meta)


def run_info(run_dir) -> dict:
    """A training run's manifest.json (see ``train_cascnn``)."""
    return json.loads((Path(run_dir) / "manifest.json").read_text())


def evaluate_network(paths, qfs, model, keep: Iterable[str] = (), protocol="gray", progress: bool = False,
                     restorer=None):
    """``protocols.evaluate`` with ``model`` as the restorer; also returns the outputs of the images in ``keep``.

    ``restorer(img, qf) -> uint8`` runs the network (default: ``models.cascnn.enhance(model, img)``,
    gray networks that need no QF; QGCN passes one that gives the QF's tables).
    Returns ``(per_image, kept)`` where ``kept[(image, qf)]`` is the restored uint8 image.
    """
    if restorer is None:
        from .models.cascnn import enhance

        def restorer(img, qf):
            return enhance(model, img)

    outputs = []

    def restore(img, qf):
        out = restorer(img, qf)
        outputs.append(out)
        return out

    df = protocols.evaluate(paths, qfs, protocol, restore=restore, progress=progress)
    keep = set(keep)
    # protocols.evaluate calls restore once per row, in row order
    kept = {(r.image, int(r.qf)): o for r, o in zip(df.itertuples(), outputs) if r.image in keep}
    return df, kept


def enhance_batch(model, imgs: Sequence[np.ndarray], batch: int = 8, channels_last: bool = True) -> list:
    """``models.cascnn.enhance`` for many images: same-sized images go through the network together."""
    import torch

    p = next(model.parameters())
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    was_training = model.training
    model.eval()
    groups = defaultdict(list)
    for i, im in enumerate(imgs):
        if im.ndim != 2 or im.dtype != np.uint8:
            raise ValueError(f"expected HxW uint8 images, got {im.dtype} {im.shape}")
        groups[im.shape].append(i)
    out = [None] * len(imgs)
    try:
        with torch.no_grad():
            for idx in groups.values():
                for s in range(0, len(idx), batch):
                    chunk = idx[s:s + batch]
                    x = torch.from_numpy(np.stack([imgs[i] for i in chunk])).to(p.device, torch.float32)[:, None]
                    y = model((x / 255.0).contiguous(memory_format=fmt))
                    y = (y[:, 0].float().clamp(0, 1) * 255.0).round().to(torch.uint8).cpu().numpy()
                    for i, yi in zip(chunk, y):
                        out[i] = yi
    finally:
        model.train(was_training)
    return out


def center_crops(paths, size: int, protocol="gray") -> dict:
    """``{image name: the size x size centre crop of its reference}`` (images smaller than ``size`` whole).

    Crops are taken from the uncompressed image, so JPEG is applied to the crop
    itself (its 8x8 grid starts at the crop's corner).
    """
    protocol = protocols.get(protocol) if isinstance(protocol, str) else protocol
    out = {}
    for p in paths:
        ref = protocol.reference(p)
        h, w = ref.shape[:2]
        ch, cw = min(size, h), min(size, w)
        top, left = (h - ch) // 2, (w - cw) // 2
        out[Path(p).stem] = np.ascontiguousarray(ref[top:top + ch, left:left + cw])
    return out


def evaluate_arrays(refs: dict, qfs, model=None, protocol="gray", batch: int = 8,
                    restore_batch=None) -> pd.DataFrame:
    """``protocols.evaluate`` for in-memory references (``{name: uint8}``), restoring in batches.

    Same columns as ``protocols.evaluate``; ``restored_*`` only when ``model`` is given.
    ``restore_batch(model, decoded_images, qf, batch) -> list`` restores them (default:
    ``enhance_batch``, gray networks that need no QF; QGCN passes its own).
    """
    protocol = protocols.get(protocol) if isinstance(protocol, str) else protocol
    if restore_batch is None:
        def restore_batch(m, imgs, qf, b):
            return enhance_batch(m, imgs, b)
    names = list(refs)
    rows = []
    for qf in qfs:
        coded = [protocol.compress(refs[n], qf) for n in names]
        restored = restore_batch(model, [c[0] for c in coded], qf, batch) if model is not None else None
        for i, n in enumerate(names):
            ref, (dec, nbytes) = refs[n], coded[i]
            row = {"image": n, "qf": int(qf), "height": ref.shape[0], "width": ref.shape[1],
                   "bpp": 8.0 * nbytes / (ref.shape[0] * ref.shape[1])}
            row.update({f"jpeg_{k}": v for k, v in protocol.score(ref, dec).items()})
            if restored is not None:
                row.update({f"restored_{k}": v for k, v in protocol.score(ref, restored[i]).items()})
            rows.append(row)
    return pd.DataFrame(rows)


def ipsnr_by_qf(per_image: pd.DataFrame) -> pd.DataFrame:
    """Mean IPSNR and IPSNR-B (restored minus JPEG, dB) per QF, with the number of images."""
    d = per_image.assign(ipsnr=per_image.restored_psnr - per_image.jpeg_psnr,
                         ipsnrb=per_image.restored_psnrb - per_image.jpeg_psnrb,
                         issim=per_image.restored_ssim - per_image.jpeg_ssim)
    g = d.groupby("qf")
    return g[["ipsnr", "ipsnrb", "issim"]].mean().assign(n_images=g.size()).reset_index()


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
