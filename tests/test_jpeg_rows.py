"""The papers' JPEG rows, reproduced from data at their printed precision."""
import pytest

from paperlib import published, reproduce

ROWS = published.jpeg_rows()
CASES = sorted({(r.dataset, r.qf) for r in ROWS.itertuples()})


@pytest.fixture(scope="module")
def summaries(data_root):
    cache = {}

    def get(eval_set):
        if eval_set not in cache:
            qfs = sorted({int(q) for q in ROWS[ROWS.dataset == eval_set].qf})
            cache[eval_set] = reproduce.jpeg_summary(eval_set, qfs, data_root=data_root, progress=False)[0]
        return cache[eval_set]
    return get


def test_every_jpeg_row_dataset_has_an_evaluation_set():
    assert set(ROWS.dataset) <= set(reproduce.EVAL_SETS)
    # what the papers print: LIVE1 gray 10-80, LIVE1 colour 10-50, BSDS500 test 5-50, val 10/20
    assert set(ROWS[ROWS.dataset == "live1"].qf) == {10, 20, 30, 40, 50, 60, 80}
    assert set(ROWS[ROWS.dataset == "bsds500-test"].qf) == {5, 10, 20, 30, 40, 50}
    assert set(ROWS[ROWS.dataset == "bsds500-val"].qf) == {10, 20}


@pytest.mark.parametrize("eval_set", sorted(set(ROWS.dataset)))
def test_jpeg_rows_reproduce(eval_set, summaries):
    table = reproduce.compare(ROWS[ROWS.dataset == eval_set], summaries(eval_set))
    known = table.note != ""
    bad = table[~known & ~table.match.astype(bool)]
    assert bad.empty, "cells that should reproduce but do not:\n" + bad.to_string()
    # the documented exceptions must still be exceptions (their explanation would otherwise be stale)
    stale = table[known & table.match.astype(bool)]
    assert stale.empty, "documented as not reproduced but now matching:\n" + stale.to_string()


def test_conventions_values_to_four_decimals(summaries):
    s = summaries("live1").set_index("qf")
    assert round(s.loc[10, "jpeg_psnr"], 4) == 27.7698
    assert round(s.loc[10, "jpeg_ssim"], 4) == 0.7905
    assert round(s.loc[10, "jpeg_psnrb"], 4) == 25.3325
    c = summaries("live1-color").set_index("qf")
    assert (round(c.loc[10, "jpeg_psnr"], 4), round(c.loc[10, "jpeg_psnrb"], 4)) == (25.5979, 21.0336)
