import json
import subprocess
import sys


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
    assert cli.main(["baseline", "--images", str(tmp_path / "x"), "--qf", "50"]) == 2
    assert "not a folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli.main(["baseline", "--images", str(tmp_path / "empty"), "--qf", "50"]) == 2
    assert "no image files" in capsys.readouterr().err


def test_data_verify(data_root, tmp_path):
    ok = _run("data", "verify", "live1", "--root", str(data_root))
    assert ok.returncode == 0 and "29 files" in ok.stdout
    bad = _run("data", "verify", "live1", "--root", str(tmp_path))
    assert bad.returncode == 1 and "missing" in bad.stderr


def test_data_verify_takes_several_datasets_in_one_process(data_root, tmp_path, capsys):
    """`make figures` checks all five datasets with one command: each is reported, and one failure fails it."""
    assert cli.main(["data", "verify", "live1", "classic5", "--root", str(data_root)]) == 0
    out = capsys.readouterr().out
    assert "live1: 29 files" in out and "classic5: 5 files" in out
    (tmp_path / "live1").symlink_to(data_root / "live1")
    assert cli.main(["data", "verify", "live1", "classic5", "--root", str(tmp_path)]) == 1
    got = capsys.readouterr()
    assert "live1: 29 files" in got.out and "classic5" in got.err and "missing" in got.err
    assert cli.main(["data", "verify", "live1", "no-such-set", "--root", str(data_root)]) == 2   # checked first
    got = capsys.readouterr()
    assert "no-such-set" in got.err and "live1" not in got.out


def _jpegs(folder):
    """A baseline colour JPEG (QF 25), a progressive one, a CMYK one, a PNG and a gray JPEG."""
    import numpy as np
    from PIL import Image
    folder.mkdir()
    rgb = np.random.default_rng(0).integers(0, 255, (40, 52, 3), dtype=np.uint8)
    im = Image.fromarray(rgb)
    im.save(folder / "a.jpg", quality=25)
    im.save(folder / "p.jpg", quality=25, progressive=True)
    im.convert("CMYK").save(folder / "c.jpg", quality=25)
    im.save(folder / "x.png")
    im.convert("L").save(folder / "g.jpeg", quality=40)
    return folder


def test_restore_file_folder_and_refusals(tmp_path, capsys):
    import numpy as np
    from PIL import Image
    src = _jpegs(tmp_path / "in")
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    out = tmp_path / "a.png"
    assert cli.main(["restore", str(src / "a.jpg"), str(out), "--model", "qgcn-color"]) == 0
    assert "IJG QF 25" in capsys.readouterr().out
    assert np.asarray(Image.open(out)).shape == (40, 52, 3)
    assert cli.main(["restore", str(src / "a.jpg"), str(out), "--model", "qgcn-color"]) == 2   # no silent overwrite
    assert "exists" in capsys.readouterr().err
    # never the input, never JPEG out
    assert cli.main(["restore", str(src / "a.jpg"), str(src / "a.jpg"), "--model", "qgcn-color"]) == 2
    assert "losslessly" in capsys.readouterr().err
    # every committed network restores through the same call; gray networks refuse colour files with the reason
    assert cli.main(["restore", str(src / "a.jpg"), str(tmp_path / "b.png"), "--model", "cascnn-q20"]) == 2
    assert "colour JPEG; cascnn-q20 restores gray images" in capsys.readouterr().err
    for model in ("cascnn-q20", "l4-residual-q20"):
        assert cli.main(["restore", str(src / "g.jpeg"), str(tmp_path / f"{model}.png"), "--model", model]) == 0
        assert np.asarray(Image.open(tmp_path / f"{model}.png")).shape == (40, 52)
    assert cli.main(["restore", str(src / "g.jpeg"), str(tmp_path / "s.png"), "--model", "l4-residual-q20",
                     "--samples", "2"]) == 2
    assert "deterministic" in capsys.readouterr().err
    assert cli.main(["restore", str(src / "p.jpg"), str(tmp_path / "p.png"), "--model", "qgcn-color"]) == 2
    assert "progressive" in capsys.readouterr().err
    # folder form: a.jpg restored; progressive, CMYK and the gray file (colour model) skipped with reasons
    assert cli.main(["restore", str(src), str(tmp_path / "out"), "--model", "qgcn-color", "--quiet"]) == 1
    res = capsys.readouterr()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png"]
    assert "CMYK" in res.err and "progressive" in res.err and "gray JPEG" in res.err
    assert "restored 1 of 4" in res.out
    assert cli.main(["restore", str(src / "g.jpeg"), str(tmp_path / "g.png"), "--model", "qgcn-gray"]) == 0
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before        # inputs untouched
    assert cli.main(["restore", str(src), str(src), "--model", "qgcn-color"]) == 2
    assert "differ" in capsys.readouterr().err


def test_evaluate_qgcn_model_checks_the_protocol(data_root, tmp_path):
    import shutil
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    shutil.copy(data_root / "live1" / "monarch.bmp", imgs)
    out = _run("evaluate", "--model", "qgcn-color", "--images", str(imgs), "--qf", "10", "--protocol", "color-qgcn",
               "--json")
    assert out.returncode == 0, out.stderr
    row = json.loads(out.stdout)[0]
    assert row["restored"]["psnr"] > row["jpeg"]["psnr"]
    bad = _run("evaluate", "--model", "qgcn-color", "--images", str(imgs), "--qf", "10", "--protocol", "gray")
    assert bad.returncode != 0 and "colour" in bad.stderr
