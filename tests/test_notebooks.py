"""Notebooks run headless with papermill on small parameters (the full runs are `make figures`)."""
from pathlib import Path

import papermill as pm

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


def test_cascnn_notebook_smoke_trains_and_evaluates(data_root, tmp_path, monkeypatch):
    """train=True, budget="smoke": trains a CAS-CNN for a few steps, then writes every table and figure (< 1 min)."""
    import pandas as pd

    monkeypatch.setenv("PAPERLIB_DATA", str(data_root))
    out = tmp_path / "figures"
    pm.execute_notebook(str(NOTEBOOKS / "cascnn.ipynb"), str(tmp_path / "out.ipynb"),
                        parameters={"train": True, "budget": "smoke", "qf": 20, "out_dir": str(out)},
                        cwd=str(NOTEBOOKS), progress_bar=False)
    names = {p.name for p in out.iterdir()}
    for stem in ("networks", "table2_live1", "table2_live1_cells", "table2_live1_per_image", "table2_ipsnr",
                 "fig4_qf_sweep", "fig6_classic5", "fig6_classic5_matching", "throughput"):
        assert {f"{stem}.csv", f"{stem}.md"} <= names, stem
    for stem in ("fig2_training_curves", "fig3_psnr_ssim_vs_bpp", "fig4_qf_generalisation", "fig5_lighthouse3",
                 "fig6_classic5"):
        assert {f"{stem}.png", f"{stem}.pdf"} <= names, stem
    # the run went into out_dir/runs/ and finished
    run = out / "runs" / "cascnn-q20-smoke-seed0"
    assert (run / "cascnn_fp16.pt").is_file() and (run / "cascnn_ms_fp16.pt").is_file()
    table = pd.read_csv(out / "table2_live1.csv", dtype=str, keep_default_na=False)
    ours = table[(table.method == "ours, w/ loss FT") & (table.source == "this run")]
    assert len(ours) == 1 and ours.qf.iloc[0] == "20" and ours.budget.iloc[0] == "smoke"
    assert "cascnn-q20-smoke-seed0" in ours.network.iloc[0] and ours.psnr.iloc[0] != ""
    assert ours.paper_psnr.iloc[0] == "31.70"                      # beside the paper's row
    assert {"JPEG", "SA-DCT", "AR-CNN", "L4", "L8", "ours, MS loss"} <= set(table.method)
    # every output says it comes from the smoke budget and that printed numbers are transcribed
    for md in out.glob("*.md"):
        assert "SMOKE BUDGET" in md.read_text(), md.name
    assert "transcribed" in (out / "table2_live1.md").read_text()
    # Fig. 6: the Classic5 files are identified from their JPEG numbers
    matching = pd.read_csv(out / "fig6_classic5_matching.csv")
    assert matching.file.notna().all()
