"""The committed figures come from the committed code and weights: pinned cells recomputed fresh (fast subset)."""
import shutil

import pandas as pd

from paperlib import figcheck


def test_committed_tables_equal_their_recomputation(data_root):
    cells = figcheck.check(fast=True, data_root=data_root, progress=lambda s: None)
    assert len(cells) == 3 * 5        # one network of each per-image table, one row of a reproduced table
    bad = [str(c) for c in cells if not c.ok]
    assert not bad, bad


def test_a_changed_cell_is_named(data_root, tmp_path, monkeypatch):
    rel = "svoboda/table3_live1.csv"
    (tmp_path / "svoboda").mkdir()
    shutil.copy(figcheck.FIGURES / rel, tmp_path / rel)
    df = pd.read_csv(tmp_path / rel, dtype=str, keep_default_na=False)
    first = df.index[df.source == "this run"][0]
    df.loc[first, "psnr"] = str(float(df.loc[first, "psnr"]) + 0.01)     # as if the table had not been regenerated
    df.to_csv(tmp_path / rel, index=False)
    monkeypatch.setattr(figcheck, "FIGURES", tmp_path)
    cells = figcheck.check(fast=True, data_root=data_root, files=[rel], progress=lambda s: None)
    bad = [c for c in cells if not c.ok]
    assert [c.metric for c in bad] == ["psnr"] and df.loc[first, "network"] in bad[0].where
