"""Notebooks run headless with papermill on small parameters (the full runs are `make figures`)."""
from pathlib import Path

import papermill as pm
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def test_protocols_notebook_runs_and_writes_its_outputs(data_root, tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERLIB_DATA", str(data_root))
    out = tmp_path / "figures"
    pm.execute_notebook(str(NOTEBOOKS / "protocols.ipynb"), str(tmp_path / "out.ipynb"),
                        parameters={"datasets": ["live1", "bsds500-val"], "qfs": [10], "out_dir": str(out)},
                        cwd=str(NOTEBOOKS), progress_bar=False)
    names = {p.name for p in out.iterdir()}
    for stem in ("jpeg_rows_live1", "jpeg_rows_bsds500-val", "jpeg_rows_summary", "convention_effects"):
        assert {f"{stem}.csv", f"{stem}.md"} <= names
    for stem in ("jpeg_rows", "convention_effects"):
        assert {f"{stem}.png", f"{stem}.pdf"} <= names
    summary = (out / "jpeg_rows_summary.md").read_text()
    assert "| cascnn" in summary and "| svoboda" in summary
    live1 = (out / "jpeg_rows_live1.csv").read_text()
    assert "27.77," in live1 and "✓" in live1
