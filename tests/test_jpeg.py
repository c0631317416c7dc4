import io

import numpy as np
import pytest
from PIL import Image

from paperlib import jpeg


def _noise(shape, seed=0):
    return (np.random.default_rng(seed).random(shape) * 255).astype(np.uint8)


def _smooth(shape, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[: shape[0], : shape[1]]
    base = 128 + 60 * np.sin(x / 9.0) * np.cos(y / 13.0)
    img = base[..., None] + rng.normal(0, 3, shape if len(shape) == 3 else shape + (1,))
    return np.clip(img, 0, 255).astype(np.uint8).reshape(shape)


@pytest.mark.parametrize("qf", list(range(1, 101)))
def test_ijg_tables_equal_pillow_tables(qf):
    tables = jpeg.quant_tables(jpeg.encode(_noise((16, 16, 3)), qf))
    assert np.array_equal(tables[0], jpeg.ijg_table(qf, "luma"))
    assert np.array_equal(tables[1], jpeg.ijg_table(qf, "chroma"))


def test_ijg_table_known_values_and_baseline_clamp():
    assert np.array_equal(jpeg.ijg_table(50), jpeg.IJG_LUMA)
    assert jpeg.ijg_table(100).max() == 1
    assert jpeg.ijg_table(10, baseline=False).max() == 605  # 121 * 5000/10 / 100
    assert jpeg.ijg_table(10).max() == 255


def test_libjpeg9_computes_the_ijg_tables_itself(tmp_path):
    """libjpeg 9e choosing its own tables for a quality (jpeglib ``qt=QF``: jpeg_set_quality without the baseline
    clamp) gives ``ijg_table(..., baseline=False)`` for luma: an independent check of the formula on the 9e side.
    Its chroma base table differs from Annex K's (which libjpeg 6b/turbo and the papers' files use) in one entry:
    the DC is 16, not 17; that is why the colour protocol writes the IJG tables explicitly."""
    import jpeglib
    for qf in (5, 10, 50, 90):
        with jpeglib.version("9e"):
            jpeglib.from_spatial(_noise((16, 16, 3))).write_spatial(str(tmp_path / "x.jpg"), qt=qf)
        t = jpeg.quant_tables(str(tmp_path / "x.jpg"))
        assert np.array_equal(t[0], jpeg.ijg_table(qf, "luma", baseline=False))
        want = jpeg.ijg_table(qf, "chroma", baseline=False)
        differ = t[1] != want
        assert differ.sum() <= 1 and not differ[1:].any() and not differ[0, 1:].any()   # the DC at most
        assert t[1][0, 0] == max(1, (16 * jpeg.quality_scaling(qf) + 50) // 100)


def test_libjpeg9_encode_equals_pillows_own_file(tmp_path):
    """Our libjpeg 9e encoder (explicit baseline IJG tables) writes the tables AND the coefficients that Pillow
    writes when it picks the tables for the quality itself (read back exactly with jpeglib)."""
    import jpeglib
    img = _noise((32, 48))
    for qf in (5, 10, 50, 90):
        (tmp_path / "ours.jpg").write_bytes(jpeg.encode(img, qf, codec="libjpeg9"))
        Image.fromarray(img).save(tmp_path / "pil.jpg", quality=qf)
        a, b = jpeglib.read_dct(str(tmp_path / "ours.jpg")), jpeglib.read_dct(str(tmp_path / "pil.jpg"))
        assert np.array_equal(a.qt, b.qt) and np.array_equal(a.Y, b.Y), qf


@pytest.mark.parametrize("codec", jpeg.CODECS)
@pytest.mark.parametrize("shape", [(37, 45), (37, 45, 3)])
def test_roundtrip_shapes_and_quality_order(codec, shape):
    img = _smooth(shape)
    errors = []
    for qf in (10, 50, 95):
        dec, nbytes = jpeg.roundtrip(img, qf, codec=codec)
        assert dec.shape == img.shape and dec.dtype == np.uint8 and nbytes > 0
        errors.append(np.abs(dec.astype(int) - img).mean())
    assert errors[0] > errors[1] > errors[2]


def test_qf100_444_is_nearly_lossless_and_deterministic():
    img = _smooth((32, 40, 3))
    a, _ = jpeg.roundtrip(img, 100, subsampling="4:4:4")
    b, _ = jpeg.roundtrip(img, 100, subsampling="4:4:4")
    assert np.array_equal(a, b)
    assert np.abs(a.astype(int) - img).mean() < 1.0  # only rounding and colour conversion remain
    g, _ = jpeg.roundtrip(img[..., 1], 100)
    assert np.abs(g.astype(int) - img[..., 1]).max() <= 2


@pytest.mark.parametrize("sub,layer", [("4:2:0", 2), ("4:4:4", 1)])
@pytest.mark.parametrize("codec", jpeg.CODECS)
def test_chroma_subsampling_is_selectable(codec, sub, layer):
    data = jpeg.encode(_smooth((32, 32, 3)), 75, subsampling=sub, codec=codec)
    with Image.open(io.BytesIO(data)) as im:
        assert im.layer[0][1:3] == (layer, layer)


def test_gray_pillow_matches_libjpeg9_bitstream_decode_on_gray():
    img = _smooth((40, 48))
    a, _ = jpeg.roundtrip(img, 30, codec="pillow")
    b, _ = jpeg.roundtrip(img, 30, codec="libjpeg9")
    assert np.array_equal(a, b)  # gray has no chroma up-sampling: the libjpeg versions agree


def test_estimate_qf_inverts_tables():
    for qf in (3, 10, 37, 50, 77, 100):
        assert jpeg.estimate_qf(jpeg.ijg_table(qf)) == qf
    assert jpeg.estimate_qf(np.full((8, 8), 7)) is None


@pytest.mark.parametrize("qf", [0, 101, -5, 10.5, "20", None, True])
def test_bad_qf_is_refused(qf):
    with pytest.raises(ValueError, match="quality factor"):
        jpeg.roundtrip(_smooth((16, 16)), qf)


def test_bad_images_are_refused():
    with pytest.raises(ValueError, match="empty"):
        jpeg.encode(np.zeros((0, 5), np.uint8), 50)
    with pytest.raises(ValueError, match="uint8"):
        jpeg.encode(np.zeros((8, 8), np.float32), 50)
    with pytest.raises(ValueError, match="shape"):
        jpeg.encode(np.zeros((8, 8, 4), np.uint8), 50)
    with pytest.raises(ValueError, match="not a JPEG"):
        buf = io.BytesIO()
        Image.fromarray(_smooth((8, 8))).save(buf, format="PNG")
        jpeg.quant_tables(buf.getvalue())
