"""Writing what notebooks produce: tables (CSV + Markdown) and figures (PNG + PDF), atomically."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import atomic

__all__ = ["ROOT", "figures_dir", "save_table", "save_figure"]

ROOT = Path(__file__).resolve().parent.parent


def figures_dir(paper: str, out_dir=None) -> Path:
    """``out_dir`` if given, else ``<repo>/figures/<paper>``; created if missing."""
    path = Path(out_dir) if out_dir is not None else ROOT / "figures" / paper
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_table(df: pd.DataFrame, out_dir, name: str, caption: str = "", floatfmt: str = ".4f",
               markdown: str | None = None) -> Path:
    """Write ``name.csv`` (every column, full precision, for machines) and ``name.md`` (caption + the table
    rounded, or ``markdown``: a layout for readers, e.g. ``reproduce.readable``)."""
    out_dir = Path(out_dir)
    atomic.write_text(out_dir / f"{name}.csv", df.to_csv(index=False))
    shown = df.copy()
    for col in shown.columns[shown.dtypes == float]:  # format floats here; leave printed strings as printed
        shown[col] = shown[col].map(lambda v: "" if pd.isna(v) else f"{v:{floatfmt}}")
    body = markdown if markdown is not None else shown.to_markdown(index=False, disable_numparse=True) + "\n"
    md = (f"{caption}\n\n" if caption else "") + body
    atomic.write_text(out_dir / f"{name}.md", md)
    return out_dir / f"{name}.csv"


def save_figure(fig, out_dir, name: str) -> Path:
    """Write ``name.png`` and ``name.pdf`` cropped to the figure's tight bounding box (found once, for both);
    PDF metadata carries no date, so reruns are stable."""
    out_dir = Path(out_dir)
    bbox = fig.get_tightbbox(fig.canvas.get_renderer()).padded(0.1)   # inches; savefig's own pad_inches
    atomic.write(out_dir / f"{name}.png", lambda f: fig.savefig(f, format="png", dpi=150, bbox_inches=bbox,
                                                                 metadata={"Software": None}))
    atomic.write(out_dir / f"{name}.pdf", lambda f: fig.savefig(f, format="pdf", bbox_inches=bbox,
                                                                 metadata={"CreationDate": None, "Producer": None}))
    return out_dir / f"{name}.png"
