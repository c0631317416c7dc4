import math

import numpy as np
import pytest
from PIL import Image

from paperlib import images, metrics


def _pair(shape=(40, 56), seed=0):
    rng = np.random.default_rng(seed)
    ref = rng.integers(0, 256, shape).astype(np.uint8)
    test = np.clip(ref + rng.normal(0, 8, shape), 0, 255).astype(np.uint8)
    return ref, test


def test_psnr_definition():
    ref = np.zeros((8, 8), np.uint8)
    test = ref.copy()
    test[0, 0] = 16  # MSE = 256 / 64 = 4
    assert metrics.psnr(ref, test) == pytest.approx(10 * math.log10(255 ** 2 / 4))
    assert metrics.psnr(ref, ref) == math.inf


def test_ssim_uniform8_equals_a_window_by_window_loop():
    ref, test = _pair((14, 19))
    x, y = ref.astype(float), test.astype(float)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    vals = []
    for i in range(14 - 7):
        for j in range(19 - 7):
            a, b = x[i:i + 8, j:j + 8], y[i:i + 8, j:j + 8]
            cov = ((a - a.mean()) * (b - b.mean())).mean()
            vals.append((2 * a.mean() * b.mean() + c1) * (2 * cov + c2)
                        / ((a.mean() ** 2 + b.mean() ** 2 + c1) * (a.var() + b.var() + c2)))
    assert metrics.ssim(ref, test) == pytest.approx(np.mean(vals), abs=1e-12)


@pytest.mark.parametrize("shape", [(40, 56), (33, 29, 3)])
def test_ssim_skimage_variant_equals_scikit_image(shape):
    from skimage.metrics import structural_similarity
    ref, test = _pair(shape, seed=3)
    expected = structural_similarity(ref, test, data_range=255, channel_axis=-1 if len(shape) == 3 else None)
    assert metrics.ssim(ref, test, window="skimage") == pytest.approx(expected, abs=1e-10)


@pytest.mark.parametrize("window", ["uniform8", "skimage"])
@pytest.mark.parametrize("shape", [(40, 56), (33, 29, 3)])
def test_ssim_of_uint8_images_is_the_float64_ssim_bit_for_bit(window, shape):
    # uint8 window sums run in float32; the same values given as float64 are summed in float64. Both are exact
    # only if no sum reaches 2**24: the largest, 64 * 255**2, comes from windows of 255s (the top left corner)
    ref, test = _pair(shape, seed=5)
    ref[:12, :12] = 255
    test[:10, :10] = 255
    assert metrics.ssim(ref, test, window) == metrics.ssim(ref.astype(np.float64), test.astype(np.float64), window)


def test_ssim_variants_identity_and_order():
    ref, test = _pair()
    for w in metrics.SSIM_WINDOWS:
        assert metrics.ssim(ref, ref, window=w) == pytest.approx(1.0)
        assert 0 < metrics.ssim(ref, test, window=w) < 1


def test_bef_zero_without_blocks_and_positive_with_blocks():
    flat = np.full((64, 64), 100, np.uint8)
    assert metrics.blocking_effect_factor(flat) == 0.0
    blocky = np.kron(np.arange(64).reshape(8, 8) * 3 % 255, np.ones((8, 8))).astype(np.uint8)
    assert metrics.blocking_effect_factor(blocky) > 0
    assert metrics.psnrb(flat, blocky) < metrics.psnr(flat, blocky)


def test_bef_pair_counts():
    img = np.kron(np.arange(16).reshape(4, 4) * 10, np.ones((8, 8))).astype(np.uint8)  # 32x32
    frac = metrics.blocking_effect_factor(img, counts="fractional")
    exact = metrics.blocking_effect_factor(img, counts="exact")
    assert frac == exact  # 32 is a multiple of 8: both count 3 boundaries per row
    # 37 columns: fractional N_HB = H (37/8 - 1) = 3.625 H, exact = 4 H
    img37 = np.pad(img, ((0, 0), (0, 5)), mode="edge")
    assert metrics.blocking_effect_factor(img37, counts="fractional") != metrics.blocking_effect_factor(
        img37, counts="exact")


def test_colour_bef_sums_channels_over_one_channel_count():
    g = np.kron(np.arange(16).reshape(4, 4) * 10, np.ones((8, 8))).astype(np.uint8)
    rgb = np.stack([g, g, g], axis=2)
    assert metrics.blocking_effect_factor(rgb) == pytest.approx(3 * metrics.blocking_effect_factor(g))


def test_ipsnr():
    ref, test = _pair()
    assert metrics.ipsnr(ref, ref, test) == math.inf
    assert metrics.ipsnr(ref, test, test) == 0.0


@pytest.mark.parametrize("fn", [metrics.psnr, metrics.ssim, metrics.psnrb])
def test_bad_inputs_raise(fn):
    ref, test = _pair()
    with pytest.raises(ValueError, match="size mismatch"):
        fn(ref, test[:-1])
    with pytest.raises(ValueError, match="empty"):
        fn(np.zeros((0, 0)), np.zeros((0, 0)))
    bad = test.astype(float)
    bad[3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fn(ref, bad)


def test_matlab_luma_known_values_and_rounding():
    rgb = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8)
    assert images.rgb_to_y(rgb).tolist() == [[16, 235, 81, 145, 41]]
    # 16 + 65.481*R/255 ... for R=G=B=v is 16 + 219 v / 255 (v=1 -> 16.86 -> 17)
    assert images.rgb_to_y(np.full((1, 1, 3), 1, np.uint8))[0, 0] == 17
    assert images.pillow_luma(rgb).tolist() != images.rgb_to_y(rgb).tolist()


def _save(tmp_path, im, name):
    path = tmp_path / name
    im.save(path)
    return path


def test_image_modes(tmp_path):
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (12, 10, 3)).astype(np.uint8)
    gray = rgb[..., 0]
    assert images.read_image(_save(tmp_path, Image.fromarray(gray), "g.png")).shape == (12, 10)
    assert images.read_gray(_save(tmp_path, Image.fromarray(gray), "g.png")).tolist() == gray.tolist()
    assert np.array_equal(images.read_gray(_save(tmp_path, Image.fromarray(rgb), "c.png")), images.rgb_to_y(rgb))
    # RGB with equal channels is a gray image stored as RGB: taken as is
    eq = np.stack([gray] * 3, axis=2)
    assert np.array_equal(images.read_gray(_save(tmp_path, Image.fromarray(eq), "eq.png")), gray)
    # palette is expanded to RGB
    pal = Image.fromarray(rgb).quantize(16)
    assert np.array_equal(images.read_rgb(_save(tmp_path, pal, "p.png")), np.asarray(pal.convert("RGB")))
    # opaque RGBA drops alpha, transparent is refused
    rgba = np.dstack([rgb, np.full((12, 10), 255, np.uint8)])
    assert np.array_equal(images.read_rgb(_save(tmp_path, Image.fromarray(rgba), "a.png")), rgb)
    rgba[0, 0, 3] = 10
    with pytest.raises(ValueError, match="transparent"):
        images.read_rgb(_save(tmp_path, Image.fromarray(rgba), "t.png"))
    with pytest.raises(ValueError, match="16-bit"):
        images.read_rgb(_save(tmp_path, Image.fromarray((gray.astype(np.uint16) * 257)), "s.png"))
    with pytest.raises(ValueError, match="mode"):
        images.read_rgb(_save(tmp_path, Image.fromarray(rgb).convert("CMYK"), "k.jpg"))
    with pytest.raises(FileNotFoundError):
        images.read_rgb(tmp_path / "missing.png")


# ---- samples of a stochastic restorer (paperlib.metrics.sampling) ----------------------------------

def test_per_pixel_std_analytic_values():
    zero, full = np.zeros((6, 5), np.uint8), np.full((6, 5), 255, np.uint8)
    assert metrics.per_pixel_std(np.stack([zero, full])) == 0.5  # population std of {0, 1}
    assert metrics.per_pixel_std(np.stack([full, full, full])) == 0.0
    # {0, 1/3, 2/3, 1}: deviations +-1/2, +-1/6 -> variance (1/4 + 1/36) / 2 = 5/36
    ramp = np.stack([np.full((4, 4, 3), v, np.uint8) for v in (0, 85, 170, 255)])
    assert metrics.per_pixel_std(ramp) == pytest.approx(math.sqrt(5) / 6, rel=1e-12)
    # half the pixels vary (0 vs 255), half do not: the mean over pixels is 0.25
    half = np.stack([np.hstack([zero, zero]), np.hstack([full, zero])])
    assert metrics.per_pixel_std(list(half)) == 0.25


def test_mean_sample_is_the_rounded_average():
    ref, test = _pair((24, 16, 3), seed=5)
    d = np.random.default_rng(2).integers(-3, 4, ref.shape)
    base = np.clip(test.astype(int), 3, 252)  # room for +-d
    pair = np.stack([base + d, base - d]).astype(np.uint8)
    assert np.array_equal(metrics.mean_sample(pair), base)  # (x + d + x - d) / 2 = x exactly
    assert metrics.sample_statistics(ref, pair)["psnr_of_mean"] == metrics.psnr(ref, base.astype(np.uint8))
    # ties round half to even, like torch.round on network outputs: 10.5 -> 10, 11.5 -> 12
    assert metrics.mean_sample(np.array([[[10, 11]], [[11, 12]]], np.uint8)).tolist() == [[10, 12]]


def test_sample_statistics_and_bad_stacks():
    ref, test = _pair()
    stats = metrics.sample_statistics(ref, np.stack([test, test]))
    assert stats == {"per_pixel_std": 0.0, "psnr_of_mean": metrics.psnr(ref, test)}
    with pytest.raises(ValueError, match="at least 2"):
        metrics.per_pixel_std(test[None])
    with pytest.raises(ValueError, match="uint8"):
        metrics.mean_sample(np.stack([test, test]).astype(float))
    with pytest.raises(ValueError, match="size mismatch"):
        metrics.sample_statistics(ref[:-1], np.stack([test, test]))
