"""Committed models by name: publish a finished run, load it back verified, evaluate it from the CLI."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from paperlib import checkpoint, cli, zoo
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
    checkpoint.publish(smoke_run, "cascnn-q20", dest=tmp_path)
    checkpoint.publish(smoke_run, "cascnn-q20-ms", weights="cascnn_ms_fp16.pt", dest=tmp_path)
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
        checkpoint.publish(tmp_path, "x", dest=tmp_path / "out")


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


def test_provenance_reads_zoo_and_run_manifests():
    zoo_meta = {"budget": "cpu", "steps": 4000, "wall_time_s": 1800, "init_from": None,
                "data": {"sources": ["bsds500:train", "bsds500:val"], "n_images": 300}}
    p = zoo.provenance(zoo_meta)
    assert p == {"budget": "cpu", "steps": 4000, "train_data": "bsds500:train + bsds500:val (300 images)",
                 "wall_time_h": 0.5, "init_from": ""}
    run_meta = {"budget": "smoke", "steps_done": 4, "wall_time_s": 5.0, "data": {"sources": ["bsds500:val"]},
                "init_from": "checkpoints/cascnn-q20.pt"}
    p = zoo.provenance(run_meta)
    assert p["steps"] == 4 and p["train_data"] == "bsds500:val; started from cascnn-q20.pt"
    # the MS-phase weights carry their own step count (the run's manifest counts the whole run)
    assert zoo.provenance(run_meta, {"steps": 3, "phase": "ms"})["steps"] == 3


def test_zoo_provenance_reads_the_weights_meta(tmp_path, monkeypatch):

    imgs = [np.full((32, 32), v, np.uint8) for v in (60, 120, 180)]
    run = tmp_path / "run"
    train_cascnn(20, imgs, run, "smoke", sources=["synthetic"], progress=False, width=8)
    monkeypatch.setattr(zoo, "CHECKPOINT_DIR", tmp_path / "checkpoints")
    checkpoint.publish(run, "cascnn-q20-ms", weights="cascnn_ms_fp16.pt", dest=tmp_path / "checkpoints")
    checkpoint.publish(run, "cascnn-q20", dest=tmp_path / "checkpoints")
    assert zoo.info("cascnn-q20-ms")["steps"] == 3                 # publish records the step of these weights
    assert zoo.network_provenance("cascnn-q20-ms")["steps"] == 3        # and so does the weights file itself
    assert zoo.network_provenance("cascnn-q20")["steps"] == 4
    assert zoo.network_provenance("cascnn-q20")["train_data"] == "synthetic (3 images)"


def test_logs_behind_figures_are_checked(zoo_dir):
    meta = zoo.info("cascnn-q20")
    assert meta["log_sha256"] == checkpoint.sha256(zoo_dir / "cascnn-q20.log.csv") and meta["filters_sha256"] is None
    with open(zoo_dir / "cascnn-q20.log.csv", "a") as f:
        f.write("99,0.1\n")                                   # a log edited after publishing
    with pytest.raises(ValueError, match="sha256"):
        zoo.log("cascnn-q20")


def test_every_committed_manifest_lists_its_files_sha256():
    for name in zoo.names():
        meta = zoo.info(name)
        assert meta["log_sha256"] == checkpoint.sha256(zoo.CHECKPOINT_DIR / f"{name}.log.csv"), name
        flt = zoo.CHECKPOINT_DIR / f"{name}.filters.npz"
        assert meta["filters_sha256"] == (checkpoint.sha256(flt) if flt.exists() else None), name
        if meta.get("file"):
            assert meta["sha256"] == checkpoint.sha256(zoo.CHECKPOINT_DIR / meta["file"]), name


def test_lineage_follows_init_from_through_committed_manifests(tmp_path, monkeypatch):
    monkeypatch.setattr(zoo, "CHECKPOINT_DIR", tmp_path)
    for name, init in [("a", None), ("b", "checkpoints/a.pt"), ("c", "runs/x/../checkpoints/b.pt"),
                       ("d", "/elsewhere/not-committed.pt"), ("loop", "checkpoints/loop.pt")]:
        (tmp_path / f"{name}.json").write_text(json.dumps({"name": name, "init_from": init}))
    assert zoo.lineage("c") == ["c", "b", "a"]
    assert zoo.lineage("a") == ["a"]
    assert zoo.lineage("d") == ["d"]          # started from a file that is not a committed network
    assert zoo.lineage("loop") == ["loop"]    # a manifest naming itself does not loop
    with pytest.raises(ValueError, match="unknown model"):
        zoo.lineage("missing")
