"""Committed outputs are checked, not trusted: pinned cells of ``figures/`` recomputed from the committed weights.

``check()`` recomputes cells of the committed tables with the committed networks
(``paperlib.zoo``: sha256 checked), fresh (the results cache is bypassed), and compares
them with the committed CSVs at their printed precision: 2 decimals for PSNR and PSNR-B
(a difference up to 0.005 dB passes), 4 for SSIM (0.00005). A differing cell is named
with both values. Two kinds of pins:

* ``PER_IMAGE``: per-image CSVs (image, QF, network, ``restored_*``): for every network its
  smallest image and the whole set at one QF, compared with the mean of the committed rows (a
  stochastic network's draw 0, seed ``SEED``, restored over the whole set in the table's order, as
  the notebooks restore it);
* ``MEANS``: reproduced tables (``reproduce.method_table`` CSVs): the whole-set means of
  our rows.

``fast`` (the test suite's subset, a few minutes on two cores): the first network of each
per-image CSV on its smallest image (a stochastic one is skipped), and the first row of the first
reproduced table.

``python -m paperlib check-figures [--fast]`` (``make check-figures``) runs it; the test
suite runs the fast subset.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass

import pandas as pd

from . import cache, data, evaluation, protocols, zoo
from .report import ROOT

__all__ = ["PER_IMAGE", "MEANS", "TOLERANCE", "Cell", "check"]

FIGURES = ROOT / "figures"
# committed per-image CSV -> {its "dataset" value (None: no such column): (dataset, split, protocol)}
PER_IMAGE = {
    "cascnn/table2_live1_per_image.csv": {None: ("live1", None, "gray")},
    "qgcn/table2_per_image.csv": {"LIVE1": ("live1", None, "color-qgcn"),
                                  "BSDS500 test": ("bsds500", "test", "color-qgcn-ssim8")},
    "qgcn/table3_per_image.csv": {"LIVE1": ("live1", None, "gray"), "BSDS500 test": ("bsds500", "test", "gray")},
    "onetomany/table2_per_image.csv": {None: ("bsds500", "test", "gray")},
}
SEED = 0   # the notebooks' default seed: draw 0 of image i of a stochastic network's rows uses derive_seed(0, i, 0)
# committed reproduced table -> the set its rows of ours are whole-set means of
MEANS = {
    "svoboda/table3_live1.csv": ("live1", None, "gray"),
    "svoboda/table4_bsds500_val.csv": ("bsds500", "val", "gray"),
    "svoboda/table5_objectives_live1.csv": ("live1", None, "gray"),
}
TOLERANCE = {"psnr": 0.005, "psnrb": 0.005, "ssim": 0.00005}   # half a unit of the printed precision


@dataclass
class Cell:
    where: str          # file and row
    metric: str
    committed: float
    recomputed: float

    @property
    def ok(self) -> bool:
        return abs(self.committed - self.recomputed) <= TOLERANCE[self.metric]

    def __str__(self):
        return (f"{'ok  ' if self.ok else 'DIFF'} {self.where} {self.metric}: committed {self.committed:.5f}, "
                f"recomputed {self.recomputed:.5f}")


@contextmanager
def _fresh():
    old = os.environ.get(cache.ENV_OFF)
    os.environ[cache.ENV_OFF] = "1"
    try:
        yield
    finally:
        if old is None:
            del os.environ[cache.ENV_OFF]
        else:
            os.environ[cache.ENV_OFF] = old


def _paths(dataset, split, data_root, stems=None):
    paths = data.image_paths(dataset, split, data_root=data_root, download_missing=False)
    if stems is not None:
        by_stem = {p.stem: p for p in paths}
        missing = [s for s in stems if s not in by_stem]
        if missing:
            raise ValueError(f"{dataset}: no image {missing[0]!r} (the committed table names it)")
        paths = [by_stem[s] for s in stems]
    return paths


def _per_image(rel: str, sets: dict, fast: bool, data_root, models: dict) -> list:
    df = pd.read_csv(FIGURES / rel, dtype={"image": str})   # BSDS500 names are numbers: keep them file stems
    if "dataset" not in df.columns:
        df["dataset"] = None
    df = df[df.restored_psnr.notna()]   # rows of the JPEG decode itself (no network) are the JPEG-row tests' business
    cells = []
    groups = list(df.groupby(["network", "dataset"], dropna=False, sort=False))
    for (net, dset), rows in groups[:1] if fast else groups:
        dset = None if pd.isna(dset) else dset
        name, split, proto = sets[dset]
        qf = int(rows.qf.iloc[0])
        at_qf = rows[rows.qf == qf]
        smallest = at_qf.assign(px=at_qf.height * at_qf.width).sort_values("px").iloc[0]
        model = models.setdefault(net, zoo.load(net))
        if getattr(model, "stochastic", False):   # draws depend on each image's position: the whole set, in order
            if fast:
                continue
            got = _stochastic(model, _paths(name, split, data_root, list(at_qf.image)), qf, proto)
        else:
            stems = [smallest.image] if fast else list(at_qf.image)
            got, _ = evaluation.evaluate_network(_paths(name, split, data_root, stems), [qf], model, protocol=proto)
        got = got.set_index("image")
        where = f"{rel} {net} {dset or name} QF{qf}"
        for m in ("psnr", "ssim", "psnrb"):
            cells.append(Cell(f"{where} {smallest.image}", m, float(smallest[f"restored_{m}"]),
                              float(got.loc[smallest.image, f"restored_{m}"])))
            if not fast:
                cells.append(Cell(f"{where} mean of {len(at_qf)} images", m, float(at_qf[f"restored_{m}"].mean()),
                                  float(got[f"restored_{m}"].mean())))
    return cells


def _stochastic(model, paths, qf: int, proto) -> pd.DataFrame:
    """Draw 0 of a stochastic network on ``paths`` restored as one call in that order (``evaluation.restore``, seed
    ``SEED``), as the notebooks restore them, and its ``restored_*`` scores."""
    proto = protocols.get(proto)
    refs = {p.stem: proto.reference(p) for p in paths}
    out = evaluation.restore(model, {n: proto.compress(r, qf)[0] for n, r in refs.items()}, qf, seed=SEED)
    return pd.DataFrame([{"image": n, **{f"restored_{k}": v for k, v in proto.score(r, out[n]).items()}}
                         for n, r in refs.items()])


def _means(rel: str, spec: tuple, fast: bool, data_root, models: dict) -> list:
    df = pd.read_csv(FIGURES / rel, dtype={"network": str}, keep_default_na=False)
    ours = df[df.source == "this run"]
    if fast:
        ours = ours.head(1)
    name, split, proto = spec
    paths = _paths(name, split, data_root)
    cells = []
    for r in ours.itertuples():
        model = models.setdefault(r.network, zoo.load(r.network))
        got = protocols.summarize(evaluation.evaluate_network(paths, [int(r.qf)], model, protocol=proto)[0]).iloc[0]
        if int(got.n_images) != int(r.n_images):
            raise ValueError(f"{rel}: row {r.method} QF{r.qf} is a mean of {r.n_images} images, {name} has "
                             f"{int(got.n_images)}")
        for m in ("psnr", "ssim", "psnrb"):
            cells.append(Cell(f"{rel} {r.method} ({r.network}) QF{r.qf}", m, float(r._asdict()[m]),
                              float(got[f"restored_{m}"])))
    return cells


def check(fast: bool = False, data_root=None, files=None, progress=print) -> list:
    """Recompute the pinned cells (see the module doc); returns every ``Cell`` (``.ok`` says whether it matches).

    ``files``: only these committed CSVs (paths relative to ``figures/``). Raises ``ValueError`` when a
    committed table names a network that is not committed (or whose weights fail their sha256).
    """
    models: dict = {}
    cells = []
    with _fresh():
        for rel, sets in PER_IMAGE.items():
            if files is None or rel in files:
                part = _per_image(rel, sets, fast, data_root, models)
                cells += part
                for c in part:
                    progress(str(c))
        for i, (rel, spec) in enumerate(MEANS.items()):
            if (files is None and not (fast and i)) or (files is not None and rel in files):
                part = _means(rel, spec, fast, data_root, models)
                cells += part
                for c in part:
                    progress(str(c))
    return cells
