"""The five papers' printed numbers, transcribed as data (``paperlib/published/*.csv``).

They are shown beside reproduced numbers and used as test expectations; they
are never used as outputs. ``value`` keeps the printed string, so the printed
precision is known (``decimals``). See ``published/NOTES.md`` for how each
table was read.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["PAPERS", "load", "jpeg_rows", "matches", "round_half_up"]

HERE = Path(__file__).parent / "published"
PAPERS = ("cascnn", "svoboda", "onetomany", "qgcn", "posterior")


@lru_cache(maxsize=None)
def _all() -> pd.DataFrame:
    frames = [pd.read_csv(HERE / f"{p}.csv", dtype=str, keep_default_na=False) for p in PAPERS]
    df = pd.concat(frames, ignore_index=True)
    df["qf"] = pd.to_numeric(df["qf"].replace("", np.nan)).astype("Int64")
    df["printed"] = df.pop("value")
    df["value"] = df["printed"].astype(float)
    df["decimals"] = df["printed"].map(lambda s: len(s.split(".")[1]) if "." in s else 0)
    return df


def load(**where) -> pd.DataFrame:
    """Published rows, filtered by column equality, e.g. ``load(paper="cascnn", table="II")``.

    A list value matches any of its items.
    """
    df = _all()
    for col, val in where.items():
        if col not in df.columns:
            raise ValueError(f"unknown column {col!r}; columns are {list(df.columns)}")
        df = df[df[col].isin(val if isinstance(val, (list, tuple, set)) else [val])]
    return df.reset_index(drop=True)


def jpeg_rows() -> pd.DataFrame:
    """Every whole-dataset JPEG-row cell printed in any of the papers."""
    df = load(method="JPEG")
    return df[~df["table"].str.startswith(("fig", "text"))].reset_index(drop=True)


def round_half_up(x: float, decimals: int) -> float:
    """Round as printed tables do (half away from zero), robust to binary representation."""
    q = 10.0 ** decimals
    return float(np.sign(x) * np.floor(abs(x) * q + 0.5 + 1e-9) / q)


def matches(ours: float, printed: str) -> bool:
    """True when ``ours`` rounds to the printed string at its printed precision."""
    decimals = len(printed.split(".")[1]) if "." in printed else 0
    return round_half_up(ours, decimals) == round(float(printed), decimals)
