import sys
import types

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from scipy.stats import wasserstein_distance

import paperlib
from paperlib import data, images, jpeg
from paperlib.metrics import distribution, fid, frechet_distance, inception_features, swd

# The tests run a reduced SWD (more patches, fewer directions) where the paper's 512 x 4 directions
# would only cost time: the properties tested are those of the estimator, whatever these counts.
FAST = {"patches_per_image": 512, "directions": 128, "repeats": 1}


def textures(n, size=128, seed=0, rgb=False):
    """``n`` independent draws of one stationary random texture (smoothed white noise), uint8."""
    rng = np.random.default_rng(seed)
    shape = (n, size, size, 3) if rgb else (n, size, size)
    x = gaussian_filter(rng.standard_normal(shape), (0, 1.5, 1.5, 0) if rgb else (0, 1.5, 1.5))
    return np.clip(np.round(128 + 40 * x / x.std()), 0, 255).astype(np.uint8)


def blur(img, sigma):
    img = np.asarray(img)
    spatial = (sigma, sigma) + (0,) * (img.ndim - 2)
    return np.clip(np.round(gaussian_filter(img.astype(float), spatial)), 0, 255).astype(np.uint8)


# ---- Laplacian pyramid and the 1-D distance ------------------------------------------------------

def test_pyramid_constant_image_has_zero_bands_and_reconstructs():
    const = np.full((37, 53), 90, np.uint8)
    pyr = distribution.laplacian_pyramid(const, 3)
    assert [p.shape for p in pyr] == [(37, 53, 1), (19, 27, 1), (10, 14, 1)]  # ceil(n / 2) per level
    # the expand is normalised up to the borders: no band-pass energy at the edges of a flat image
    # (float32 arithmetic on values <= 255 with weights summing to 1: errors ~ 255 * 2^-24 per operation)
    assert np.abs(pyr[0]).max() < 1e-4 and np.abs(pyr[1]).max() < 1e-4
    assert np.allclose(pyr[2], 90, atol=1e-4)
    img = textures(1, 45, seed=3)[0]
    pyr = distribution.laplacian_pyramid(img, 3)
    rebuilt = pyr[0] + distribution._expand(pyr[1] + distribution._expand(pyr[2], pyr[1].shape), pyr[0].shape)
    assert np.allclose(rebuilt[..., 0], img, atol=1e-3)


@pytest.mark.parametrize("n, m", [(5, 7), (100, 37), (64, 64), (1, 3)])
def test_w1_of_sorted_rows_equals_scipy(n, m):
    rng = np.random.default_rng(n + m)
    a, b = rng.standard_normal((3, n)), rng.standard_normal((3, m)) + 0.3
    ours = distribution._w1_sorted(np.sort(a, axis=1), np.sort(b, axis=1))
    assert ours == pytest.approx([wasserstein_distance(a[i], b[i]) for i in range(3)], rel=1e-12)


def test_number_of_levels_follows_the_smallest_side():
    # down to 16 pixels: 321 / 2**4 = 20.1 >= 16 > 321 / 2**5 -> 5 levels; 16..31 -> 1 level
    rng = np.random.default_rng(0)
    big = [rng.integers(0, 256, (321, 100), dtype=np.uint8)] * 2
    assert len(swd(big, big[::-1], **FAST)) == 3  # 100 / 4 = 25 >= 16 > 12.5
    sizes = [rng.integers(0, 256, s, dtype=np.uint8) for s in [(321, 481), (481, 321)]]
    assert len(swd(sizes, sizes[::-1], **FAST)) == 5
    assert len(swd([big[0][:16, :40]] * 2, [big[0][16:32, :40]] * 2, **FAST)) == 1
    with pytest.raises(ValueError, match="at least 16x16"):
        swd([big[0][:15]], [big[0][:15]])


# ---- SWD properties ------------------------------------------------------------------------------

@pytest.mark.parametrize("rgb", [False, True])
def test_swd_zero_for_identical_sets_symmetric_and_seeded(rgb):
    s = textures(8, 64, seed=1, rgb=rgb)
    a, b = s[:4], s[4:]
    # identical images are sampled at identical places: only float32 rounding remains, each projection
    # within ~ 49 C * 2^-24 * |descriptor| (< 1e-4 for standardised 7x7x3 patches) of its twin
    assert np.abs(swd(a, a.copy(), **FAST)).max() < 1e-4
    assert np.abs(swd(a, a[::-1], **FAST)).max() < 1e-4  # a set: the order does not matter
    ab = swd(a, b, seed=3, **FAST)
    assert (ab > 1e-2).all()  # different draws: the sampling floor, far above rounding
    # float32 projections of 49 C values: a different summation order could move a value by
    # ~ 49 * 3 * 2^-24 relative; the same call must agree far inside that
    assert swd(b, a, seed=3, **FAST) == pytest.approx(ab, rel=1e-5)
    assert swd(a, b, seed=3, **FAST) == pytest.approx(ab, rel=1e-5)
    assert not np.allclose(swd(a, b, seed=4, **FAST), ab, rtol=1e-3)  # the seed draws patches and directions


def test_swd_two_halves_of_one_set_below_the_set_against_its_blurred_copy():
    # 16 draws of one stationary texture: two halves differ only by sampling (the estimator's floor);
    # half against its own blurred copy (same number of images) adds a real difference of the fine levels.
    s = textures(16, 128, seed=0)
    a, b = s[:8], s[8:]
    halves = swd(a, b, **FAST)
    for sigma in (1, 2):
        blurred = swd(a, blur(a, sigma), **FAST)
        assert blurred[0] > halves[0]
    assert swd(a, blur(a, 2), **FAST)[:2].min() > halves[:2].max()


@pytest.fixture(scope="module")
def bsds_gray(data_root):
    paths = data.image_paths("bsds500", "test", data_root=data_root)[:8]
    return [images.read_gray(p) for p in paths]


def test_swd_grows_with_blur(bsds_gray):
    d = [swd(bsds_gray, [blur(im, sigma) for im in bsds_gray], **FAST) for sigma in (0.5, 1, 2)]
    assert d[0][0] < d[1][0] < d[2][0]  # finest level
    assert d[0].mean() < d[1].mean() < d[2].mean()


def test_swd_grows_with_jpeg_compression(bsds_gray):
    # QF 90 and 50 differ by ~0.005 at the finest level, about the spread of the estimate over seeds
    # at 8 x 512 patches; 8 x 2048 patches bring that spread to ~0.001 (seeds 0-4: 0.015-0.017, 0.020-0.022)
    many = {**FAST, "patches_per_image": 2048}
    d = [swd(bsds_gray, [jpeg.roundtrip(im, qf)[0] for im in bsds_gray], **many) for qf in (90, 50, 10)]
    assert d[0][0] < d[1][0] < d[2][0]  # finest level: 8x8 blocks and lost detail
    assert d[0].mean() < d[2].mean()


def test_swd_input_forms_agree():
    s = textures(4, 40, seed=5, rgb=True)
    ref = swd(s[:2], s[2:], **FAST)
    assert np.array_equal(swd(list(s[:2]), list(s[2:]), **FAST), ref)  # numpy batch NxHxWxC = list of HxWxC
    t = torch.from_numpy(s).permute(0, 3, 1, 2)  # torch batch NxCxHxW
    assert np.array_equal(swd(t[:2], t[2:], **FAST), ref)
    g = s[..., 0]
    assert np.array_equal(swd(g[:2], g[2:], **FAST), swd([x[..., None] for x in g[:2]], list(g[2:]), **FAST))
    mixed = [s[0], s[1][:32, :24]]  # lists may hold images of different sizes
    assert swd(mixed, list(s[2:]), **FAST).shape == (1,)  # smallest side 24: one level


def test_swd_against_one_real_set_computes_its_side_once_and_as_a_fresh_call_would(monkeypatch):
    s = textures(9, 48, seed=6, rgb=True)
    real, fakes = s[:3], [s[3:5], s[5:]]
    calls = []
    descriptors = distribution._descriptors
    monkeypatch.setattr(distribution, "_descriptors", lambda images, *a: calls.append(len(images)) or
                        descriptors(images, *a))
    first = swd(real, fakes[0], **FAST)
    second = swd(real, fakes[1], **FAST)
    assert calls == [3, 2, 4]  # the real set's descriptors once, then each fake set's
    distribution._REAL_SIDE.clear()
    assert np.array_equal(swd(real, fakes[1], **FAST), second)  # computed afresh: the same numbers
    assert np.array_equal(swd(real, fakes[0], **FAST), first)
    assert swd(real, fakes[1], seed=1, **FAST) != pytest.approx(second)  # another seed: another real side
    assert swd(fakes[1], real, **FAST) == pytest.approx(second, rel=1e-5)  # each side from scratch, swapped


def test_swd_bad_inputs():
    s = textures(2, 32)
    with pytest.raises(ValueError, match="uint8"):
        swd(s.astype(np.float32), s)
    with pytest.raises(ValueError, match="channel mismatch"):
        swd(s, np.stack([s] * 3, axis=-1))
    with pytest.raises(ValueError, match="mixed gray and colour"):
        swd([s[0], np.stack([s[1]] * 3, axis=-1)], s)
    with pytest.raises(ValueError, match="no images"):
        swd([], s)
    with pytest.raises(ValueError, match="patches_per_image"):
        swd(s, s, patches_per_image=0)


# ---- FID: plumbing with a random-weights Inception ------------------------------------------------
# The weights file below has torch-fidelity's Inception key names and shapes but random values: the
# numbers these tests compute mean nothing about images. They check the code path (file -> network ->
# features -> Frechet distance) and the properties any FID has, whatever the network.

@pytest.fixture(scope="module")
def inception_file(tmp_path_factory):
    import torch_fidelity.feature_extractor_inceptionv3 as fe
    with pytest.MonkeyPatch.context() as mp:  # build the network without its (unavailable) weights
        mp.setattr(fe, "load_state_dict_from_url", lambda *a, **k: None)
        mp.setattr(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None)
        state = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"]).state_dict()
    g = torch.Generator().manual_seed(0)
    for name, value in state.items():  # He-normal convolutions keep activations O(1) through ~20 layers
        if name.endswith("conv.weight"):
            value.copy_(torch.randn(value.shape, generator=g) * (2 / value[0].numel()) ** 0.5)
    path = tmp_path_factory.mktemp("weights") / "random-inception.pth"
    torch.save(state, path)
    return path


@pytest.fixture
def one_thread():
    """Inception on one thread: on the shared 2-core test machine, two threads contend with other work."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _two_sets():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    b = gaussian_filter(rng.integers(0, 256, (2, 32, 32, 3)).astype(float), (0, 2, 2, 0)).astype(np.uint8)
    return a, b


class _Images(torch.utils.data.Dataset):
    """A uint8 NxHxWx3 batch as torch-fidelity's input: uint8 3xHxW tensors."""

    def __init__(self, x):
        self.x = torch.from_numpy(x).permute(0, 3, 1, 2)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i]


def _eig_tolerance(*features):
    """torch-fidelity's tr sqrt(S_a S_b) takes np.linalg.eigvals of a d x d product; for rank-deficient
    covariances its zero eigenvalues come out at ~eps64 * lambda_max^2, whose square roots add up to at
    most d * sqrt(eps64) * lambda_max <= d * sqrt(eps64) * tr S per term (ours has no such term)."""
    d = features[0].shape[1]
    return 2 * d * np.sqrt(np.finfo(np.float64).eps) * max(np.trace(np.cov(f, rowvar=False)) for f in features)


@pytest.mark.parametrize("n_a, n_b, d", [(100, 80, 64), (30, 50, 64), (2, 3, 64), (300, 10, 32)])
def test_frechet_distance_equals_torch_fidelity_statistics(n_a, n_b, d):
    from torch_fidelity.metric_fid import (
        fid_features_to_statistics,
        fid_statistics_to_metric,
    )

    def theirs(x, y):
        stats = [fid_features_to_statistics(torch.from_numpy(v)) for v in (x, y)]
        return fid_statistics_to_metric(*stats, verbose=False)["frechet_inception_distance"]

    rng = np.random.default_rng(n_a + n_b)
    a = rng.standard_normal((n_a, d)) @ rng.standard_normal((d, d))
    b = rng.standard_normal((n_b, d)) @ rng.standard_normal((d, d)) + 0.5
    tol = _eig_tolerance(a, b)
    assert frechet_distance(a, b) == pytest.approx(theirs(a, b), abs=tol)
    assert frechet_distance(b, a) == pytest.approx(frechet_distance(a, b), rel=1e-9)
    # FID(a, a) = 0: our SVD form leaves only rounding of tr S (eps64 * tr S * d, far below tol)
    assert abs(frechet_distance(a, a)) <= tol * 1e-6


def test_fid_plumbing_only(inception_file, one_thread):
    from torch_fidelity.utils import get_featuresdict_from_dataset
    a, b = _two_sets()  # 32x32: torch-fidelity's network resizes every input to 299x299 itself
    both = np.concatenate([a, b])
    feats = inception_features(both, inception_file, batch_size=2)
    assert feats.shape == (4, 2048) and feats.dtype == np.float32
    # the same network fed through torch-fidelity's own loader (uint8 3xHxW tensors, batches of 2)
    theirs = get_featuresdict_from_dataset(_Images(both), distribution._inception(inception_file), batch_size=2,
                                           cuda=False, save_cpu_ram=True, verbose=False)["2048"]
    assert np.array_equal(feats, theirs.numpy())
    fa, fb = feats[:2].astype(np.float64), feats[2:].astype(np.float64)
    ab = frechet_distance(fa, fb)
    assert ab > 1e3 * _eig_tolerance(fa, fb) and abs(frechet_distance(fa, fa)) <= 1e-9 * ab
    assert fid(a, b, inception_file, batch_size=2) == ab  # fid() = features of each set, then the distance


def test_fid_missing_or_bad_weights_say_what_is_wrong(tmp_path, monkeypatch):
    a, b = _two_sets()
    with pytest.raises(FileNotFoundError, match="missing-inception.pth"):
        fid(a, b, weights_path=tmp_path / "missing-inception.pth")
    torch.save({"fc.weight": torch.zeros(2), "note": 3}, tmp_path / "odd.pth")
    with pytest.raises(ValueError, match="not a state dict of tensors"):
        fid(a, b, weights_path=tmp_path / "odd.pth")
    with pytest.raises(ValueError, match="N >= 2"):
        frechet_distance(np.zeros((1, 2048)), np.zeros((4, 2048)))

    # without a path, the file is resolved by name through paperlib.weights, whose error reaches the caller
    class WeightsNotFound(FileNotFoundError):
        pass

    asked = []

    def resolve(name):
        asked.append(name)
        raise WeightsNotFound(f"{name}: not found (looked in ...; how to provide it ...)")

    fake = types.ModuleType("paperlib.weights")
    fake.resolve, fake.WeightsNotFound = resolve, WeightsNotFound
    monkeypatch.setitem(sys.modules, "paperlib.weights", fake)
    monkeypatch.setattr(paperlib, "weights", fake, raising=False)
    with pytest.raises(WeightsNotFound, match="inception: not found"):
        fid(a, b)
    assert asked == ["inception"]
