"""paperlib.weights (pretrained weight files) and paperlib.features (VGG feature extractors).

No real VGG/Inception file exists on the test machines and none is faked: the
search/verify/download mechanism is tested with small generated files listed in a
temporary manifest, downloads go to a loopback HTTP server on 127.0.0.1 only.
"""
import functools
import hashlib
import http.server
import json
import re
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from paperlib import cli, data, features, weights

REAL_WEIGHTS_DIR = weights.MANIFEST_DIR


@pytest.fixture
def server(tmp_path):
    """A loopback HTTP server over ``tmp_path/served``: ``(folder, base_url)``."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield served, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture
def places(tmp_path, monkeypatch):
    """Empty manifest folder, torch hub cache and $PAPERLIB_WEIGHTS for one test."""
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    monkeypatch.setattr(weights, "MANIFEST_DIR", manifests)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("PAPERLIB_WEIGHTS", raising=False)
    return manifests, tmp_path / "torch" / "hub" / "checkpoints", tmp_path / "env"


def _add(manifests, name, file, blob, urls=()):
    man = {"name": name, "description": "test", "file": file, "sha256": hashlib.sha256(blob).hexdigest(),
           "bytes": len(blob), "sha256_source": "test", "urls": list(urls) or ["http://127.0.0.1:9/none"],
           "url_source": "test", "source": "test", "license": "test"}
    (manifests / f"{name}.json").write_text(json.dumps(man))
    return man


def _put(folder, file, blob):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / file).write_bytes(blob)
    return folder / file


BLOB = np.random.default_rng(0).bytes(1000)
FILE = "toy-weights-0123abcd.pth"


def test_search_order_explicit_then_env_then_hub(places, tmp_path, monkeypatch):
    manifests, hub, env = places
    _add(manifests, "toy", FILE, BLOB)
    explicit = _put(tmp_path / "mine", "any-name.pth", BLOB)
    _put(env, FILE, BLOB)
    _put(hub, FILE, BLOB)
    monkeypatch.setenv("PAPERLIB_WEIGHTS", str(env))
    assert weights.resolve("toy", explicit, download=False) == explicit
    assert weights.resolve("toy", download=False) == env / FILE
    # an explicit path that is not there falls through (and is listed if nothing is found)
    assert weights.resolve("toy", tmp_path / "nowhere.pth", download=False) == env / FILE
    monkeypatch.delenv("PAPERLIB_WEIGHTS")
    assert weights.resolve("toy", download=False) == hub / FILE
    path, why = weights.status("toy")
    assert path == hub / FILE and why.startswith("found:") and str(hub / FILE) in why


def test_wrong_hash_is_refused_by_name_not_skipped(places, monkeypatch):
    manifests, hub, env = places
    _add(manifests, "toy", FILE, BLOB)
    _put(env, FILE, BLOB[:-1])  # one byte short (another length, so no stale hash-cache entry can match)
    _put(hub, FILE, BLOB)      # a good copy later in the order must not hide the bad one
    monkeypatch.setenv("PAPERLIB_WEIGHTS", str(env))
    with pytest.raises(weights.ChecksumError, match=re.escape(str(env / FILE))):
        weights.resolve("toy", download=False)
    with pytest.raises(weights.ChecksumError, match="999 bytes"):
        weights.verify("toy", env / FILE)
    path, why = weights.status("toy")
    assert path is None and why.startswith("refused:") and str(env / FILE) in why


def test_missing_names_the_file_every_place_and_how_to_provide(places, tmp_path, monkeypatch):
    manifests, hub, env = places
    _add(manifests, "toy", FILE, BLOB)
    monkeypatch.setenv("PAPERLIB_WEIGHTS", str(env))
    with pytest.raises(weights.WeightsNotFound) as err:
        weights.resolve("toy", tmp_path / "given.pth", download=False)
    assert isinstance(err.value, FileNotFoundError)
    msg = str(err.value)
    for needle in (FILE, str(tmp_path / "given.pth"), str(env / FILE), str(hub / FILE), "$PAPERLIB_WEIGHTS",
                   "python -m paperlib weights fetch toy", "http://127.0.0.1:9/none"):
        assert needle in msg, needle
    with pytest.raises(ValueError, match="unknown weight file 'nope'; known: toy"):
        weights.resolve("nope")


def test_loopback_download_fetches_verifies_and_refuses_a_bad_file(places, server):
    manifests, hub, env = places
    served, base = server
    _put(served, FILE, BLOB)
    # the first URL 404s, the second serves the file: pooch falls through to it
    _add(manifests, "toy", FILE, BLOB, urls=[f"{base}/missing/{FILE}", f"{base}/{FILE}"])
    path = weights.resolve("toy")
    assert path == hub / FILE and path.read_bytes() == BLOB
    assert weights.status("toy")[0] == hub / FILE
    # a server that sends other bytes: refused by name, and nothing is left in the cache
    _put(served, "bad.pth", BLOB[:500])
    _add(manifests, "bad", "bad-weights.pth", BLOB, urls=[f"{base}/bad.pth"])
    with pytest.raises(weights.ChecksumError, match="bad-weights.pth"):
        weights.resolve("bad")
    assert not (hub / "bad-weights.pth").exists()
    # nothing served at all: WeightsNotFound with the download error among the places looked
    _add(manifests, "gone", "gone.pth", BLOB, urls=[f"{base}/gone.pth"])
    with pytest.raises(weights.WeightsNotFound, match="(?s)could not download gone.pth.*404"):
        weights.resolve("gone")


def test_cli_weights_list_verify_fetch(places, tmp_path, capsys, server):
    manifests, hub, env = places
    _add(manifests, "toy", FILE, BLOB)
    _add(manifests, "other", "other-weights.pth", BLOB[:10])
    _put(hub, FILE, BLOB)
    assert cli.main(["weights", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split()[0] for ln in lines] == ["other", "toy"]
    assert "missing:" in lines[0] and str(hub / "other-weights.pth") in lines[0]
    assert "found:" in lines[1] and "sha256 verified" in lines[1]
    assert cli.main(["weights", "verify", "toy"]) == 0
    assert "OK: toy" in capsys.readouterr().out
    bad = _put(tmp_path, "bad.pth", b"x")
    assert cli.main(["weights", "verify", "toy", "--path", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "refusing" in err and str(bad) in err
    assert cli.main(["weights", "fetch", "other"]) == 1  # its URL is a closed port on 127.0.0.1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "other-weights.pth" in err and "Traceback" not in err
    assert cli.main(["weights", "verify", "nope"]) == 2


def test_cli_weights_list_of_the_real_manifests(tmp_path):
    env = {"PATH": "", "TORCH_HOME": str(tmp_path / "torch"), "PAPERLIB_CACHE": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-m", "paperlib", "weights", "list"], capture_output=True, text=True,
                         env=env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [ln.split()[0] for ln in lines] == ["inception", "vgg16", "vgg19"]
    for ln in lines:  # nothing is there in an empty TORCH_HOME: each line says where it looked
        assert "missing:" in ln and "$PAPERLIB_WEIGHTS: not set" in ln and str(tmp_path / "torch") in ln


def test_real_manifests_agree_with_torchvision_and_torch_fidelity():
    """File names and URLs are the installed packages' own; the sha256 starts with the name's hash prefix."""
    import torch.hub
    import torchvision.models as tvm
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3
    official = {"vgg16": tvm.VGG16_Weights.IMAGENET1K_V1, "vgg19": tvm.VGG19_Weights.IMAGENET1K_V1}
    mans = {p.stem: json.loads(p.read_text()) for p in REAL_WEIGHTS_DIR.glob("*.json")}
    assert sorted(mans) == ["inception", "vgg16", "vgg19"]
    for name, man in mans.items():
        assert man["name"] == name and man["license"] and man["source"] and man["sha256_source"]
        assert re.fullmatch(r"[0-9a-f]{64}", man["sha256"])
        prefix = torch.hub.HASH_REGEX.search(man["file"]).group(1)  # what torch.hub's check_hash compares
        assert len(prefix) >= 8 and man["sha256"].startswith(prefix)
        assert man["urls"][0].rsplit("/", 1)[1] == man["file"]
    for name, w in official.items():
        assert mans[name]["urls"] == [w.url]
        assert round(mans[name]["bytes"] / 2**20, 3) == w.meta["_file_size"]  # torchvision's size in MiB
    assert mans["inception"]["urls"][0] == URL_INCEPTION_V3


def test_weight_manifests_are_not_datasets():
    assert not set(data.names()) & {"vgg16", "vgg19", "inception"}
    assert set(data.names()) == {p.stem for p in data.MANIFEST_DIR.glob("*.json")} | {data.DEMO}


# ---------------------------------------------------------------- features

def test_layer_names_follow_the_vgg_paper_blocks():
    """Table 1 of Simonyan & Zisserman: D (VGG-16) has 2,2,3,3,3 convs per block, E (VGG-19) 2,2,4,4,4."""
    for name, convs in (("vgg16", [2, 2, 3, 3, 3]), ("vgg19", [2, 2, 4, 4, 4])):
        names = features.layer_names(name)
        for b, n in enumerate(convs, start=1):
            expect = [f"{kind}{b}_{i}" for i in range(1, n + 1) for kind in ("conv", "relu")] + [f"pool{b}"]
            assert [x for x in names if re.fullmatch(rf"(conv|relu){b}_\d|pool{b}", x)] == expect
        assert len(names) == 2 * sum(convs) + 5
    assert features.layer_names("vgg19-random") == features.layer_names("vgg19")
    # indices into torchvision's features used elsewhere: LPIPS slices VGG-16 at 4, 9, 16, 23, 30 (after
    # relu1_2 ... relu5_3); ESRGAN's VGG-19 loss takes features[:35], ending at conv5_4 (before its ReLU)
    v16, v19 = features.layer_names("vgg16"), features.layer_names("vgg19")
    assert [v16.index(n) + 1 for n in ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")] == [4, 9, 16, 23, 30]
    assert v19.index("conv5_4") == 34 and v19.index("relu5_4") == 35


def test_relu5_4_does_not_exist_in_vgg16():
    with pytest.raises(ValueError) as err:
        features.vgg("vgg16", ["relu5_4"])
    msg = str(err.value)
    assert "vgg16 has no layer relu5_4" in msg and "relu5_3" in msg and "conv1_1" in msg
    with pytest.raises(ValueError, match="unknown network 'vgg11'"):
        features.vgg("vgg11", ["relu1_1"])


def test_stand_in_is_explicit_deterministic_labelled_and_he_normal():
    with pytest.raises(ValueError, match="allow_stand_in=True"):
        features.vgg("vgg19-random", ["relu5_4"])
    a = features.vgg("vgg19-random", ["relu5_4"], allow_stand_in=True)
    b = features.vgg("vgg19-random", ["relu5_4"], allow_stand_in=True)
    c = features.vgg("vgg19-random", ["relu5_4"], allow_stand_in=True, seed=1)
    assert "NOT pretrained" in a.weights_label and "seed 0" in a.weights_label and "seed 1" in c.weights_label
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["body.0.weight"], sc["body.0.weight"])
    convs = [m for m in a.body if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 16
    for m in convs:
        w = m.weight.double()
        n = w.numel()
        target = (2.0 / (m.in_channels * 9)) ** 0.5  # He et al. 2015, fan_in
        # the sample std of n normal draws has relative standard error 1/sqrt(2n): allow 5 of them;
        # the sample mean has standard error target/sqrt(n): allow 5 of those
        assert abs(w.std().item() / target - 1) < 5 / (2 * n) ** 0.5
        assert abs(w.mean().item()) < 5 * target / n ** 0.5
        assert torch.all(m.bias == 0)


def test_real_weights_never_fall_back_to_the_stand_in(places, server):
    """With no file and a download that fails, vgg19 raises WeightsNotFound even with allow_stand_in=True."""
    manifests, hub, env = places
    real = json.loads((REAL_WEIGHTS_DIR / "vgg19.json").read_text())
    real["urls"] = [f"{server[1]}/{real['file']}"]  # the loopback server has no such file: 404, no internet
    (manifests / "vgg19.json").write_text(json.dumps(real))
    with pytest.raises(weights.WeightsNotFound, match="vgg19-dcbb9e9d.pth"):
        features.vgg("vgg19", ["relu5_4"], allow_stand_in=True)


def _toy_vgg16_state(seed):
    """A VGG-16 state dict of random values (not ImageNet weights) in torchvision's key layout: the conv
    layers (``features.*``) and one classifier tensor, which the extractor must ignore."""
    g = torch.Generator().manual_seed(seed)
    shapes = {f"features.{k}": v.shape for k, v in features._skeleton("vgg16").state_dict().items()}
    shapes["classifier.6.bias"] = torch.Size([1000])
    return {k: torch.randn(s, generator=g) * 0.05 for k, s in shapes.items()}


def test_weights_file_is_loaded_checked_and_labelled(places, tmp_path):
    manifests, hub, env = places
    state = _toy_vgg16_state(0)
    path = tmp_path / "test-vgg16-state.pth"
    torch.save(state, path, _use_new_zipfile_serialization=False)  # the legacy format of the 2017 files
    _add(manifests, "vgg16", "test-vgg16-state.pth", path.read_bytes())
    net = features.vgg("vgg16", ["relu1_1", "relu2_2", "pool5"], weights_path=path)
    assert net.weights_label == "vgg16 (torchvision test-vgg16-state.pth, sha256 verified)"
    assert net.weights_path == path
    params = list(net.parameters())
    assert len(params) == 2 * 13 and all(not p.requires_grad for p in params) and not net.train().training
    # reference computation with torch.nn.functional and the saved tensors: normalise, conv, relu, pool
    x = torch.rand(2, 3, 32, 40, generator=torch.Generator().manual_seed(1), requires_grad=True)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    conv = lambda h, i: F.conv2d(h, state[f"features.{i}.weight"], state[f"features.{i}.bias"], padding=1)
    h = F.relu(conv((x - mean) / std, 0))
    relu1_1 = h
    h = F.max_pool2d(F.relu(conv(h, 2)), 2)
    relu2_2 = F.relu(conv(F.relu(conv(h, 5)), 7))
    out = net(x)
    assert list(out) == ["relu1_1", "relu2_2", "pool5"]
    # same float32 operations in the same order; allow a few ulps of the values for kernel differences
    for got, ref in ((out["relu1_1"], relu1_1), (out["relu2_2"], relu2_2)):
        assert torch.allclose(got, ref, rtol=1e-5, atol=1e-5 * ref.abs().max().item())
    assert out["pool5"].shape == (2, 512, 1, 1)
    out["pool5"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # the same name with another file: refused by name
    other = tmp_path / "other.pth"
    torch.save({"features.0.bias": torch.zeros(64)}, other)
    with pytest.raises(weights.ChecksumError, match=re.escape(str(other))):
        features.vgg("vgg16", ["relu1_1"], weights_path=other)


def test_outputs_have_the_vgg_channels_and_strides():
    layers = [n for n in features.layer_names("vgg19") if n.startswith(("relu", "pool"))]
    net = features.vgg("vgg19-random", layers, allow_stand_in=True)
    with torch.no_grad():
        out = net(torch.rand(1, 3, 32, 48))
    width = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}  # the paper: 64, doubled after each pool up to 512
    for name, y in out.items():
        b = int(name[4])
        stride = 2 ** (b - 1) if name.startswith("relu") else 2 ** b
        assert y.shape == (1, width[b], 32 // stride, 48 // stride), name


def test_conv_outputs_are_not_overwritten_and_gray_is_replicated():
    net = features.vgg("vgg19-random", ["conv1_1", "relu1_1"], allow_stand_in=True)
    assert len(net.body) == 2  # truncated after the deepest requested layer
    x = torch.rand(1, 1, 16, 16)
    with torch.no_grad():
        out = net(x)
        rgb = net(x.expand(-1, 3, -1, -1))
    assert (out["conv1_1"] < 0).any()
    assert torch.equal(out["relu1_1"], out["conv1_1"].clamp(min=0))
    assert torch.equal(out["relu1_1"], rgb["relu1_1"])
    with pytest.raises(ValueError, match="expected images"):
        net(torch.rand(1, 2, 16, 16))
