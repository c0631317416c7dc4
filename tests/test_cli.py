import json
import subprocess
import sys

import pytest

from paperlib import cli


def _run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "paperlib", *args], capture_output=True, text=True, env=env)


def test_baseline_json_prints_the_live1_gray_row(data_root):
    out = _run("baseline", "--images", str(data_root / "live1"), "--qf", "10", "20", "--protocol", "gray", "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [r["qf"] for r in rows] == [10, 20]
    r = rows[0]
    assert set(r) == {"qf", "n_images", "psnr", "ssim", "psnrb"} and r["n_images"] == 29
    assert (round(r["psnr"], 2), round(r["ssim"], 4), round(r["psnrb"], 2)) == (27.77, 0.7905, 25.33)


def test_baseline_table_and_errors(tmp_path, capsys):
    from PIL import Image
    import numpy as np
    Image.fromarray(np.full((16, 16), 128, np.uint8)).save(tmp_path / "a.png")
    assert cli.main(["baseline", "--images", str(tmp_path), "--qf", "50"]) == 0
    assert "PSNR-B" in capsys.readouterr().out
    assert cli.main(["baseline", "--images", str(tmp_path), "--qf", "101"]) == 2
    assert "1..100" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="not a folder"):
        cli.main(["baseline", "--images", str(tmp_path / "x"), "--qf", "50"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="no image files"):
        cli.main(["baseline", "--images", str(tmp_path / "empty"), "--qf", "50"])


def test_data_verify(data_root, tmp_path):
    ok = _run("data", "verify", "live1", "--root", str(data_root))
    assert ok.returncode == 0 and "29 files" in ok.stdout
    bad = _run("data", "verify", "live1", "--root", str(tmp_path))
    assert bad.returncode == 1 and "missing" in bad.stderr
