"""Writing what notebooks produce: tables (CSV + Markdown) and figures (PNG + PDF), atomically."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd

__all__ = ["ROOT", "figures_dir", "save_table", "save_figure", "atomic_write"]

ROOT = Path(__file__).resolve().parent.parent


def figures_dir(paper: str, out_dir=None) -> Path:
    """``out_dir`` if given, else ``<repo>/figures/<paper>``; created if missing."""
    path = Path(out_dir) if out_dir is not None else ROOT / "figures" / paper
    path.mkdir(parents=True, exist_ok=True)
    return path


def atomic_write(path, write) -> Path:
    """Call ``write(tmp_path)`` then rename onto ``path``, so readers never see half a file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=path.suffix)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def save_table(df: pd.DataFrame, out_dir, name: str, caption: str = "", floatfmt: str = ".4f") -> Path:
    """Write ``name.csv`` (full precision) and ``name.md`` (caption + rounded table)."""
    out_dir = Path(out_dir)
    atomic_write(out_dir / f"{name}.csv", lambda p: df.to_csv(p, index=False))
    shown = df.copy()
    for col in shown.columns[shown.dtypes == float]:  # format floats here; leave printed strings as printed
        shown[col] = shown[col].map(lambda v: "" if pd.isna(v) else f"{v:{floatfmt}}")
    md = (f"{caption}\n\n" if caption else "") + shown.to_markdown(index=False, disable_numparse=True) + "\n"
    atomic_write(out_dir / f"{name}.md", lambda p: Path(p).write_text(md))
    return out_dir / f"{name}.csv"


def save_figure(fig, out_dir, name: str) -> Path:
    """Write ``name.png`` and ``name.pdf``; PDF metadata carries no date, so reruns are stable."""
    out_dir = Path(out_dir)
    atomic_write(out_dir / f"{name}.png", lambda p: fig.savefig(p, format="png", dpi=150, bbox_inches="tight",
                                                                 metadata={"Software": None}))
    atomic_write(out_dir / f"{name}.pdf", lambda p: fig.savefig(p, format="pdf", bbox_inches="tight",
                                                                 metadata={"CreationDate": None, "Producer": None}))
    return out_dir / f"{name}.png"
