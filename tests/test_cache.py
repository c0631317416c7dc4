"""paperlib.cache: a hit gives exactly the fresh numbers; a changed network, code or input misses; off means off."""
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from paperlib import cache, evaluation, protocols
from paperlib.models.cascnn import CASCNN


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(cache.ENV_OFF, raising=False)
    return tmp_path / "cache" / "results"


def _files(folder, n=3):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        p = folder / f"im{i}.png"
        Image.fromarray(rng.integers(0, 256, (24 + 8 * i, 32), dtype=np.uint8)).save(p)
        paths.append(p)
    return paths


class Counting(torch.nn.Module):
    """Wraps a network and counts the images it restores (a hit must restore nothing)."""

    def __init__(self, net):
        super().__init__()
        self.net, self.calls = net, 0
        self.channels, self.uses_tables, self.stochastic, self.halo, self.grid = 1, False, False, net.halo, net.grid
        self.kwargs = net.kwargs

    def forward(self, x):
        self.calls += x.shape[0]
        return self.net(x)


def test_hit_equals_fresh_and_changes_miss(fresh_cache, tmp_path, monkeypatch):
    torch.manual_seed(0)
    net = Counting(CASCNN(width=8)).eval()
    paths = _files(tmp_path)
    first, kept1 = evaluation.evaluate_network(paths, [10, 30], net, keep={"im1"})
    assert net.calls == 6 and any(fresh_cache.rglob("*.json"))
    second, kept2 = evaluation.evaluate_network(paths, [10, 30], net, keep={"im1"})
    assert net.calls == 6                                                 # every row came from the cache
    pd.testing.assert_frame_equal(first, second, check_exact=True)        # exactly the fresh numbers
    assert all(np.array_equal(kept1[k], kept2[k]) for k in kept1) and set(kept1) == {("im1", 10), ("im1", 30)}
    monkeypatch.setenv(cache.ENV_OFF, "1")
    off, _ = evaluation.evaluate_network(paths, [10, 30], net, keep={"im1"})
    assert net.calls == 12                                                # off: computed again ...
    pd.testing.assert_frame_equal(first, off, check_exact=True)           # ... to the same numbers
    monkeypatch.delenv(cache.ENV_OFF)
    with torch.no_grad():                                                 # a changed checkpoint misses
        net.net.Ahat.conv.bias.add_(0.01)
    changed, _ = evaluation.evaluate_network(paths, [10], net)
    assert net.calls == 15 and not np.allclose(changed.restored_psnr, first[first.qf == 10].restored_psnr)
    evaluation.evaluate_network(paths, [10], net, protocol=protocols.replace(protocols.GRAY, ssim_window="skimage"))
    assert net.calls == 18                                                # another protocol misses


def test_a_code_change_misses(fresh_cache, tmp_path, monkeypatch):
    torch.manual_seed(0)
    net = Counting(CASCNN(width=8)).eval()
    paths = _files(tmp_path, 1)
    evaluation.evaluate_network(paths, [20], net)
    real = cache.code_digest

    def edited(*parts):   # as if the Restorer's code had been edited
        return real(*parts) + ("-edited" if any(p.startswith("paperlib.restorer") for p in parts) else "")

    monkeypatch.setattr(cache, "code_digest", edited)
    evaluation.evaluate_network(paths, [20], net)
    assert net.calls == 2
    evaluation.evaluate_arrays({"a": np.zeros((16, 16), np.uint8)}, [20], net)
    evaluation.evaluate_arrays({"a": np.zeros((16, 16), np.uint8)}, [20], net)
    assert net.calls == 3                                                 # arrays are cached too


def test_jpeg_rows_are_cached_and_off_writes_nothing(fresh_cache, tmp_path, monkeypatch):
    paths = _files(tmp_path)
    a = protocols.evaluate(paths, [10, 50], "gray", progress=False)
    n_files = len(list(fresh_cache.rglob("*.json")))
    assert n_files == 6
    b = protocols.evaluate(paths, [10, 50], "gray", progress=False)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    monkeypatch.setenv(cache.ENV_OFF, "1")
    c = protocols.evaluate(paths, [10, 20], "gray", progress=False)
    assert len(list(fresh_cache.rglob("*.json"))) == n_files              # nothing read or written
    pd.testing.assert_frame_equal(a[a.qf == 10].reset_index(drop=True), c[c.qf == 10].reset_index(drop=True))


NETMOD = '''
import torch


def helper(x):
    return x * {factor}


def train_it():          # a recipe's training code: not run by forward
    return {unrelated}


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, x):
        return helper(self.conv(x))
'''


def test_forward_digest_follows_what_forward_runs(tmp_path, monkeypatch):
    """Editing a network module's training code keeps its cached rows; editing what its forward calls misses."""
    import importlib
    import linecache
    import sys
    monkeypatch.setattr(cache, "ROOT", tmp_path)          # the temporary module counts as this repository's code
    monkeypatch.syspath_prepend(str(tmp_path))
    src = tmp_path / "netmod_for_digest.py"

    def digest(factor, unrelated):
        src.write_text(NETMOD.format(factor=factor, unrelated=unrelated))
        importlib.invalidate_caches()
        linecache.clearcache()                            # a rewrite within one mtime tick must be read again
        mod = importlib.reload(sys.modules["netmod_for_digest"]) if "netmod_for_digest" in sys.modules else \
            importlib.import_module("netmod_for_digest")
        return cache.forward_digest(mod.Net())

    try:
        base = digest(2, 1)
        assert digest(2, 7) == base                       # only the training code changed
        assert digest(3, 1) != base                       # the helper forward calls changed
    finally:
        sys.modules.pop("netmod_for_digest", None)
    # the committed networks: their own classes are followed, torch's layers are not read
    assert cache.forward_digest(CASCNN(width=8)) == cache.forward_digest(CASCNN(width=16))


def test_model_digest_follows_in_place_weight_changes():
    """The digest is remembered per network, but an optimizer step or a load_state_dict changes it at once."""
    torch.manual_seed(0)
    net = CASCNN(width=8)
    first = cache.model_digest(net)
    assert cache.model_digest(net) == first
    with torch.no_grad():
        next(net.parameters()).add_(1.0)                  # in place, as an optimizer step
    changed = cache.model_digest(net)
    assert changed != first
    twin = CASCNN(width=8)
    twin.load_state_dict(net.state_dict())                # a fresh object with the same weights: same digest
    assert cache.model_digest(twin) == changed
    twin.load_state_dict(CASCNN(width=8).state_dict())    # loaded in place over the old weights: recomputed
    assert cache.model_digest(twin) != changed


class NoisyCounting(torch.nn.Module):
    """A stochastic 'restorer' (input + scale * z) that counts the draws it computes."""

    channels, uses_tables, stochastic, halo, grid = 1, False, True, 0, 1

    def __init__(self):
        super().__init__()
        self.scale, self.calls = torch.nn.Parameter(torch.tensor(0.05)), 0

    def noise(self, x, generator):
        return torch.randn(x.shape, generator=generator)

    def forward(self, x, z):
        self.calls += x.shape[0]
        return x + self.scale * z


def test_restored_images_hit_equals_fresh_and_each_keeps_its_own_draws(fresh_cache, monkeypatch):
    rng = np.random.default_rng(1)
    dec = {n: rng.integers(0, 256, (16, 24), dtype=np.uint8) for n in "abcd"}
    net = NoisyCounting()
    first = evaluation.restore(net, {n: dec[n] for n in "abc"}, 20, seed=3, samples=3)
    assert net.calls == 9 and first["a"].shape == (3, 16, 24)
    again = evaluation.restore(net, {n: dec[n] for n in "abc"}, 20, seed=3, samples=3)
    assert net.calls == 9 and all(np.array_equal(first[n], again[n]) for n in "abc")     # hit = what was stored
    monkeypatch.setenv(cache.ENV_OFF, "1")
    fresh = evaluation.restore(net, dec, 20, seed=3, samples=3)
    plain = evaluation.restore(net, {"a": dec["a"], "d": dec["d"], "c": dec["c"]}, 20, seed=3, samples=3)
    monkeypatch.delenv(cache.ENV_OFF)
    assert net.calls == 9 + 12 + 9
    assert all(np.array_equal(first[n], fresh[n]) for n in "abc")                       # hit = fresh
    # a new image among cached ones: only it is restored, with the draws of its own position
    mixed = evaluation.restore(net, {"a": dec["a"], "d": dec["d"], "c": dec["c"]}, 20, seed=3, samples=3)
    assert net.calls == 30 + 3                                                            # a and c hit
    assert all(np.array_equal(mixed[n], plain[n]) for n in "adc")
    assert not np.array_equal(mixed["d"], fresh["d"])                                   # position 1, not 3
    evaluation.restore(net, {n: dec[n] for n in "abc"}, 20, seed=4, samples=3)           # another seed misses
    evaluation.restore(net, {n: dec[n] for n in "abc"}, 30, seed=3, samples=3)           # another QF misses
    assert net.calls == 33 + 18
    with torch.no_grad():
        net.scale.add_(0.01)                                                            # a changed network misses
    changed = evaluation.restore(net, {n: dec[n] for n in "abc"}, 20, seed=3, samples=3)
    assert net.calls == 51 + 9 and not np.array_equal(changed["a"], first["a"])


def test_restored_images_miss_when_the_restoring_code_changes(fresh_cache, monkeypatch):
    torch.manual_seed(0)
    net = Counting(CASCNN(width=8)).eval()
    dec = {"a": np.full((16, 16), 100, np.uint8), "b": np.full((16, 16), 120, np.uint8)}
    one = evaluation.restore(net, dec, 20)
    evaluation.restore(net, {"b": dec["b"], "a": dec["a"]}, 20)    # deterministic: the position does not matter
    assert net.calls == 2
    real = cache.code_digest
    monkeypatch.setattr(cache, "code_digest", lambda *parts: real(*parts) + (
        "-edited" if "paperlib.evaluation:restore" in parts else ""))
    two = evaluation.restore(net, dec, 20)
    assert net.calls == 4 and all(np.array_equal(one[n], two[n]) for n in dec)


def test_swd_and_projections_hit_equals_fresh_and_changes_miss(fresh_cache, monkeypatch):
    """The arrays the generative notebooks compute from restored images: a hit is the fresh array, a changed input
    or code misses (and ``PAPERLIB_NO_CACHE`` computes them as they are)."""
    from paperlib import diffjpeg, metrics
    from paperlib import posterior_eval as pe
    from paperlib.models import posterior
    rng = np.random.default_rng(2)
    real = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(3)]
    fake = [np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8) for a in real]
    calls = []
    real_swd = metrics.swd
    monkeypatch.setattr(metrics, "swd", lambda *a, **k: calls.append(1) or real_swd(*a, **k))
    a = evaluation.swd_levels(real, fake, seed=1)
    b = evaluation.swd_levels(real, fake, seed=1)
    assert len(calls) == 1 and np.array_equal(a, b) and np.array_equal(a, real_swd(real, fake, seed=1))
    evaluation.swd_levels(real, fake[::-1], seed=1)                       # other images (here: their order) miss
    evaluation.swd_levels(real, fake, seed=2)                             # another seed misses
    assert len(calls) == 3
    # Ours-P: a projection onto the cell of the JPEG file the image came from
    ref = np.asarray(rng.integers(60, 200, (24, 32, 3)), np.uint8)
    coefs = diffjpeg.read_coefficients(_jpeg_file(fresh_cache.parent, ref))
    stack = np.stack([fake[0][:24], fake[1][:24]])
    p1 = pe.projected(stack, coefs)
    assert np.array_equal(p1, posterior.project(stack, coefs))            # fresh
    monkeypatch.setattr(posterior, "project", lambda *a, **k: pytest.fail("a hit must not project again"))
    monkeypatch.setattr(pe, "project", posterior.project)
    assert np.array_equal(pe.projected(stack, coefs), p1)                 # hit
    real_digest = cache.code_digest
    monkeypatch.setattr(cache, "code_digest", lambda *parts: real_digest(*parts) + (
        "-edited" if "paperlib.diffjpeg.cell" in parts else ""))
    with pytest.raises(pytest.fail.Exception):                            # the projection's code changed: computed
        pe.projected(stack, coefs)


def _jpeg_file(folder, img):
    from paperlib import jpeg
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "input.jpg"
    path.write_bytes(jpeg.encode(img, 20, subsampling="4:2:0", codec="pillow"))
    return path


def test_scores_hit_equals_fresh_and_changes_miss(fresh_cache, monkeypatch):
    rng = np.random.default_rng(3)
    ref = rng.integers(0, 256, (40, 48), dtype=np.uint8)
    test = np.clip(ref.astype(int) + rng.integers(-9, 10, ref.shape), 0, 255).astype(np.uint8)
    fresh = protocols.GRAY.score(ref, test)
    calls = []
    real = protocols.Protocol.score
    monkeypatch.setattr(protocols.Protocol, "score", lambda self, a, b: calls.append(1) or real(self, a, b))
    first = protocols.scored(protocols.GRAY, ref, test)
    assert first == {k: float(v) for k, v in fresh.items()} and len(calls) == 1
    assert protocols.scored(protocols.GRAY, ref, test) == first and len(calls) == 1           # hit = fresh
    protocols.scored(protocols.replace(protocols.GRAY, ssim_window="skimage"), ref, test)     # another protocol
    protocols.scored(protocols.GRAY, ref, np.roll(test, 1, axis=0))                         # other pixels
    assert len(calls) == 3


def test_restored_with_a_files_own_tables_keys_on_the_tables(fresh_cache):
    from paperlib import jpeg
    from paperlib.models.qgcn import QGCN
    from paperlib.restorer import Restorer
    torch.manual_seed(0)
    net = QGCN(3, n_res=1, init_std=0.05).eval()
    dec = {"a": np.random.default_rng(4).integers(0, 256, (24, 32, 3), dtype=np.uint8)}
    t20, t30 = jpeg.ijg_tables(20, True), jpeg.ijg_tables(30, True)
    a = evaluation.restore(net, dec, tables=t20)["a"]
    assert np.array_equal(a, Restorer(net)([dec["a"]], t20)[0])                    # fresh
    assert np.array_equal(evaluation.restore(net, dec, qf=20)["a"], a)             # qf=20 restores with the same tables
    assert np.array_equal(evaluation.restore(net, dec, tables=t20)["a"], a)        # hit
    assert not np.array_equal(evaluation.restore(net, dec, tables=t30)["a"], a)    # other tables miss
    with pytest.raises(ValueError, match="one of them"):
        evaluation.restore(net, dec, qf=20, tables=t20)


def test_an_entry_left_empty_or_cut_short_is_a_miss(fresh_cache):
    """Entries are not fsynced: after a power loss one may be empty or truncated, and must read as absent."""
    img = np.arange(64, dtype=np.uint8).reshape(8, 8)
    for k, damage in (("a" * 64, lambda b: b""), ("b" * 64, lambda b: b[: len(b) // 2])):
        cache.store(k, {"x": 1.5}, img)
        assert cache.load(k, with_image=True)[1].tobytes() == img.tobytes()
        npz, js = fresh_cache / k[:2] / f"{k}.npz", fresh_cache / k[:2] / f"{k}.json"
        npz.write_bytes(damage(npz.read_bytes()))
        assert cache.load(k, with_image=True) is None and cache.load(k) == ({"x": 1.5}, None)
        js.write_bytes(damage(js.read_bytes()))
        assert cache.load(k) is None


def test_a_one_sample_stack_is_not_the_image(fresh_cache):
    torch.manual_seed(0)
    net = CASCNN(width=8).eval()
    dec = {"a": np.full((16, 16), 90, np.uint8)}
    image = evaluation.restore(net, dec, 20)["a"]
    stack = evaluation.restore(net, dec, 20, samples=1)["a"]
    assert image.shape == (16, 16) and stack.shape == (1, 16, 16) and np.array_equal(stack[0], image)
