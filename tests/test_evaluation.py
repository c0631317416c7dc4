"""paperlib.evaluation: scoring any network with a protocol (tiny CAS-CNN and QGCN networks, synthetic images)."""
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from paperlib import evaluation, jpeg, protocols
from paperlib.models.cascnn import CASCNN
from paperlib.models.qgcn import QGCN
from paperlib.restorer import Restorer
from synthetic import smooth_images


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    return CASCNN(width=8).eval()


@pytest.fixture(scope="module")
def qgcn():
    torch.manual_seed(0)
    return QGCN(3, n_res=1, init_std=0.05).eval()   # larger init than the paper's: it changes the image measurably


def _write_pngs(imgs, folder):
    paths = []
    for i, img in enumerate(imgs):
        p = folder / f"im{i}.png"
        Image.fromarray(img).save(p)
        paths.append(p)
    return paths


def test_evaluate_arrays_matches_protocols_evaluate(small, tmp_path):
    imgs = smooth_images()
    paths = _write_pngs(imgs, tmp_path)
    one = Restorer(small, batch=1)
    ref = protocols.evaluate(paths, [10, 50], "gray", restore=lambda im, qf: one([im])[0], progress=False)
    got = evaluation.evaluate_arrays({p.stem: im for p, im in zip(paths, imgs)}, [10, 50], small, batch=2)
    ref = ref.sort_values(["image", "qf"]).reset_index(drop=True)
    got = got.sort_values(["image", "qf"]).reset_index(drop=True)
    assert list(got.columns) == list(ref.columns)
    cols = ["image", "qf", "height", "width", "bpp", "jpeg_psnr", "jpeg_ssim", "jpeg_psnrb"]
    pd.testing.assert_frame_equal(got[cols], ref[cols])
    assert np.allclose(got.restored_psnr, ref.restored_psnr, atol=0.05)
    assert "restored_psnr" not in evaluation.evaluate_arrays({"a": imgs[0]}, [10]).columns


def test_evaluate_arrays_matches_evaluate_network_for_qgcn(qgcn, tmp_path):
    imgs = smooth_images(shapes=((40, 48), (40, 48), (33, 50)), color=True)
    paths = _write_pngs(imgs, tmp_path)
    ref, kept = evaluation.evaluate_network(paths, [10, 40], qgcn, keep={"im1"}, protocol="color-qgcn")
    got = evaluation.evaluate_arrays({p.stem: im for p, im in zip(paths, imgs)}, [10, 40], qgcn, "color-qgcn",
                                     batch=2)
    ref = ref.sort_values(["image", "qf"]).reset_index(drop=True)
    got = got.sort_values(["image", "qf"]).reset_index(drop=True)
    assert list(got.columns) == list(ref.columns)
    np.testing.assert_allclose(got.jpeg_psnr, ref.jpeg_psnr)
    np.testing.assert_allclose(got.restored_psnr, ref.restored_psnr, atol=0.02)
    assert set(kept) == {("im1", 10), ("im1", 40)} and kept[("im1", 10)].shape == imgs[1].shape
    # the restorer gets the tables a file coded at that QF carries (libjpeg's own, as Pillow reports them)
    dec, nbytes = protocols.COLOR_QGCN.compress(imgs[1], 40)
    tables = jpeg.quant_tables(jpeg.encode(imgs[1], 40, codec="libjpeg9"))
    assert np.array_equal(kept[("im1", 40)], Restorer(qgcn)([dec], np.stack([tables[0], tables[1]]))[0])


def test_evaluate_network_keeps_the_requested_outputs(small, tmp_path):
    imgs = smooth_images(shapes=((24, 32), (16, 40)))
    paths = _write_pngs(imgs, tmp_path)
    df, kept = evaluation.evaluate_network(paths, [10, 30], small, keep={"im1"})
    assert len(df) == 4 and set(kept) == {("im1", 10), ("im1", 30)}
    dec, _ = protocols.GRAY.compress(imgs[1], 30)
    assert np.array_equal(kept[("im1", 30)], Restorer(small)([dec])[0])
    row = df[(df.image == "im1") & (df.qf == 30)].iloc[0]
    assert row.restored_psnr == pytest.approx(protocols.GRAY.score(imgs[1], kept[("im1", 30)])["psnr"])
    with pytest.raises(ValueError, match="gray"):   # a gray network refuses the colour protocol's images
        evaluation.evaluate_network(paths, [10], small, protocol="color-qgcn")


def test_center_crops(tmp_path):
    img = np.arange(60 * 80, dtype=np.uint32).reshape(60, 80).astype(np.uint8)
    (p,) = _write_pngs([img], tmp_path)
    crops = evaluation.center_crops([p], 32)
    assert np.array_equal(crops["im0"], img[14:46, 24:56])
    assert evaluation.center_crops([p], 100)["im0"].shape == (60, 80)   # smaller images stay whole


def test_ipsnr_by_qf():
    df = pd.DataFrame({"qf": [10, 10, 20], "jpeg_psnr": [30.0, 32.0, 35.0], "restored_psnr": [31.0, 32.5, 35.25],
                       "jpeg_psnrb": [29.0, 30.0, 34.0], "restored_psnrb": [30.0, 31.0, 34.0],
                       "jpeg_ssim": [0.8, 0.9, 0.95], "restored_ssim": [0.82, 0.9, 0.96]})
    g = evaluation.ipsnr_by_qf(df).set_index("qf")
    assert g.loc[10, "ipsnr"] == pytest.approx(0.75) and g.loc[20, "ipsnr"] == pytest.approx(0.25)
    assert g.loc[10, "ipsnrb"] == pytest.approx(1.0) and g.loc[10, "n_images"] == 2
    assert g.loc[20, "issim"] == pytest.approx(0.01)


def test_paired_bootstrap_constant_difference_has_zero_width():
    b = np.linspace(20.0, 35.0, 29)
    assert evaluation.paired_bootstrap(b + 0.25, b) == (0.25, 0.25, 0.25)   # 0.25 is exact in binary
    mean, lo, hi = evaluation.paired_bootstrap(b - 0.1, b)
    assert lo == hi and mean == pytest.approx(-0.1, abs=1e-12) and lo == pytest.approx(-0.1, abs=1e-12)


def test_paired_bootstrap_symmetric_noise_matches_the_normal_interval():
    # differences +-s in equal numbers: mean 0, standard deviation s, so for many images the 95% interval of the
    # mean is 0 +- 1.96 s / sqrt(k) (central limit theorem); 10% slack covers the bootstrap's Monte Carlo error
    k, s = 400, 0.5
    d = np.tile([s, -s], k // 2)
    b = np.random.default_rng(1).uniform(25, 35, k)
    mean, lo, hi = evaluation.paired_bootstrap(b + d, b)
    assert mean == pytest.approx(0.0, abs=1e-12) and lo < 0 < hi
    half = 1.96 * s / np.sqrt(k)
    assert -lo == pytest.approx(half, rel=0.1) and hi == pytest.approx(half, rel=0.1)
    # the same noise around a shift of 3 half-widths: an interval that excludes 0, centred on the shift
    mean, lo, hi = evaluation.paired_bootstrap(b + d + 3 * half, b)
    assert mean == pytest.approx(3 * half) and 0 < lo < mean < hi
    assert (lo + hi) / 2 == pytest.approx(3 * half, abs=0.1 * half)


def test_paired_bootstrap_is_reproducible_and_refuses_bad_input():
    rng = np.random.default_rng(2)
    a, b = rng.normal(30, 2, 20), rng.normal(30, 2, 20)
    assert evaluation.paired_bootstrap(a, b) == evaluation.paired_bootstrap(a, b)
    assert evaluation.paired_bootstrap(a, b, seed=1) != evaluation.paired_bootstrap(a, b, seed=0)
    mean, lo, hi = evaluation.paired_bootstrap([31.0], [30.5])
    assert mean == 0.5 and np.isnan(lo) and np.isnan(hi)           # one image: no spread to resample
    for bad in (([1.0, 2.0], [1.0]), ([], []), ([1.0, np.nan], [1.0, 2.0]), ([[1.0]], [[1.0]])):
        with pytest.raises(ValueError):
            evaluation.paired_bootstrap(*bad)


def test_references_are_remembered_only_while_the_file_is_unchanged(tmp_path):
    """Notebooks read the same set once per network: a second read comes from memory, a copy each time, and a
    rewritten file is read again."""
    import os

    from PIL import Image

    from paperlib import images, protocols
    p = tmp_path / "a.png"
    rgb = np.random.default_rng(0).integers(0, 256, (8, 9, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(p)
    first = protocols.reference(protocols.GRAY, p)
    assert np.array_equal(first, images.rgb_to_y(rgb))
    assert np.array_equal(protocols.reference(protocols.COLOR_QGCN, p), rgb)     # each protocol its own reading
    first[:] = 0                                                                  # a caller's edit stays its own
    assert np.array_equal(protocols.reference(protocols.GRAY, p), images.rgb_to_y(rgb))
    Image.fromarray(rgb[::-1].copy()).save(p)
    os.utime(p, ns=(1, 1))                                                        # another modification time
    assert np.array_equal(protocols.reference(protocols.GRAY, p), images.rgb_to_y(rgb[::-1]))
