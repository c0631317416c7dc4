"""Committed models by name: publish a finished run, load it back verified, evaluate it from the CLI."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from paperlib import cli, zoo
from paperlib.models.cascnn import train_cascnn


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    rng = np.random.default_rng(0)
    imgs = [np.clip(rng.normal(128, 40, (40, 48)), 0, 255).astype(np.uint8) for _ in range(3)]
    out = tmp_path_factory.mktemp("run")
    res = train_cascnn(20, imgs, out, "smoke", val_images=imgs[:1], sources=["synthetic"], progress=False,
                       width=8)
    assert res.finished
    return out


@pytest.fixture
def zoo_dir(tmp_path, monkeypatch, smoke_run):
    monkeypatch.setattr(zoo, "CHECKPOINT_DIR", tmp_path)
    zoo.publish(smoke_run, "cascnn-q20", dest=tmp_path)
    zoo.publish(smoke_run, "cascnn-q20-ms", weights="cascnn_ms_fp16.pt", dest=tmp_path)
    return tmp_path


def test_publish_writes_weights_log_and_manifest(zoo_dir, smoke_run):
    assert zoo.names() == ["cascnn-q20", "cascnn-q20-ms"]
    meta = zoo.info("cascnn-q20")
    assert meta["qf"] == 20 and meta["budget"] == "smoke" and meta["steps"] == 4
    assert meta["data"]["sources"] == ["synthetic"] and meta["wall_time_s"] > 0
    assert len(zoo.log("cascnn-q20")) == 4
    net = zoo.load("cascnn-q20")
    ref = torch.load(smoke_run / "cascnn_fp16.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(net.state_dict()[k], v.float()) for k, v in ref.items())
    assert (zoo.info("cascnn-q20-ms")["steps"], zoo.info("cascnn-q20-ms")["phase"]) == (3, "ms")
    ms = zoo.load("cascnn-q20-ms")
    assert not all(torch.equal(ms.state_dict()[k], net.state_dict()[k]) for k in ref)  # one more step


def test_tampered_weights_are_refused(zoo_dir):
    path = zoo_dir / "cascnn-q20.pt"
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="sha256"):
        zoo.load("cascnn-q20")
    with pytest.raises(ValueError, match="unknown model"):
        zoo.info("cascnn-q99")


def test_unfinished_run_is_not_published(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"finished": False, "steps_done": 1, "steps_total": 9}))
    with pytest.raises(ValueError, match="not finished"):
        zoo.publish(tmp_path, "x", dest=tmp_path / "out")


def test_cli_models_and_evaluate_json(zoo_dir, tmp_path, capsys):
    assert cli.main(["models"]) == 0
    assert "cascnn-q20" in capsys.readouterr().out
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    rng = np.random.default_rng(1)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (24, 32, 3)).astype(np.uint8)).save(imgs / f"{i}.png")
    assert cli.main(["evaluate", "--model", "cascnn-q20", "--images", str(imgs), "--qf", "20", "30", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["qf"] for r in rows] == [20, 30] and rows[0]["n_images"] == 2
    assert set(rows[0]["jpeg"]) == set(rows[0]["restored"]) == {"psnr", "ssim", "psnrb"}
    assert rows[0]["jpeg"] != rows[0]["restored"]
    assert cli.main(["evaluate", "--model", "nope", "--images", str(imgs), "--qf", "20"]) == 2
