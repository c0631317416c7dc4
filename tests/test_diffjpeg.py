"""paperlib.diffjpeg and paperlib.losses against the exact codecs (Pillow/libjpeg-turbo, libjpeg 9e via jpeglib).

Every reference here is the real codec's output (``paperlib.jpeg``, Pillow, jpeglib) or an
analytic property; nothing compares the module with numbers it wrote itself.
"""
import math
import os
import tempfile

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter

from paperlib import data, diffjpeg, jpeg, losses, protocols
from paperlib.diffjpeg import cell, color, dct

QF_SWEEP = list(range(5, 100, 5))


@pytest.fixture(autouse=True)
def _one_thread():
    """These tensors are small: one thread avoids oversubscribing a shared 2-core machine."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _smooth(shape, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[: shape[0], : shape[1]]
    base = 128 + 70 * np.sin(x / 7.0 + seed) * np.cos(y / 11.0)
    img = base[..., None] + rng.normal(0, 12, shape if len(shape) == 3 else shape + (1,))
    if len(shape) == 3:
        img = img + np.array([30.0, 0.0, -30.0]) * np.cos(x / 17.0)[..., None]
    return np.clip(img, 0, 255).astype(np.uint8).reshape(shape)


def _t(img) -> torch.Tensor:
    """uint8 HxW / HxWx3 (or a stack of them) -> N x C x H x W float32."""
    a = torch.from_numpy(np.asarray(img)).float()
    if a.ndim == 2 or a.ndim == 3 and a.shape[-1] != 3:
        a = a[..., None]
    a = a if a.ndim == 4 else a[None]
    return a.permute(0, 3, 1, 2).contiguous()


def _np(x: torch.Tensor) -> np.ndarray:
    """N x C x H x W -> N x H x W (gray) or N x H x W x 3, float64."""
    x = x.detach().double()
    return (x[:, 0] if x.shape[1] == 1 else x.permute(0, 2, 3, 1)).numpy()


def _read(data_bytes) -> diffjpeg.JPEGCoefficients:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "x.jpg")
        with open(path, "wb") as f:
            f.write(data_bytes)
        return diffjpeg.read_coefficients(path)


def _stats(a, b):
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    return float(np.sqrt(np.mean(d ** 2))), float(np.mean(d == 0))


def _centre(img, h, w):
    top, left = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
    return np.ascontiguousarray(img[top: top + h, left: left + w])


# ---------------------------------------------------------------- the codec, bit for bit

def test_islow_kernels_are_13_bit_cosines():
    for (kind, size), k in dct._KERNELS.items():
        freq = torch.arange(8.0)[:, None]
        pos = torch.arange(float(size))[None, :]
        exact = 8192 * math.sqrt(2) * torch.cos((2 * pos + 1) * freq * math.pi / (2 * size))
        exact[0] = 8192
        exact = exact if kind == "f" else exact.T
        # each entry is a sum of FIX() constants, each within 1/2 of its real value: at most 1.5 off
        assert (k - exact.double()).abs().max() <= 1.5


@pytest.mark.parametrize("codec", diffjpeg.CODECS)
@pytest.mark.parametrize("shape", [(1, 1), (3, 3), (2, 9), (9, 2), (5, 6), (17, 31), (40, 48),
                                   (1, 1, 3), (3, 3, 3), (2, 9, 3), (9, 2, 3), (5, 6, 3), (17, 31, 3), (33, 50, 3)])
def test_roundtrip_is_bit_exact_with_the_codec(codec, shape):
    img = _smooth(shape, seed=sum(shape))
    for qf in (1, 7, 50, 93, 100):
        ours = diffjpeg.roundtrip(_t(img), qf, codec=codec)
        ref, _ = jpeg.roundtrip(img, qf, codec=codec)
        assert np.array_equal(_np(ours)[0], ref), (shape, qf)


@pytest.mark.parametrize("codec", diffjpeg.CODECS)
def test_444_colour_is_bit_exact(codec):
    img = _smooth((21, 35, 3), seed=3)
    for qf in (10, 75):
        ours = diffjpeg.roundtrip(_t(img), qf, codec=codec, subsampling="4:4:4")
        ref, _ = jpeg.roundtrip(img, qf, subsampling="4:4:4", codec=codec)
        assert np.array_equal(_np(ours)[0], ref)


def test_encode_gives_the_files_coefficients():
    """The quantized coefficients themselves, against the file written by each encoder."""
    for shape in [(37, 45), (37, 45, 3)]:
        img = _smooth(shape, seed=5)
        for codec in diffjpeg.CODECS:
            for qf in (5, 50, 95):
                ours = diffjpeg.encode(_t(img), qf, codec=codec)
                ref = _read(jpeg.encode(img, qf, codec=codec))
                for a, b in zip(ours.blocks, ref.blocks):
                    assert torch.equal(a, b)
                assert torch.equal(ours.tables, ref.tables)


def test_live1_sweep_matches_the_protocol_codecs(data_root):
    """All 29 LIVE1 images, QF 5..95 step 5, centre 72x104 crops (not multiples of 16: edge replication
    and partial chroma blocks are exercised). Gray: the gray protocol's MATLAB luma and Pillow codec;
    colour: ``COLOR_QGCN`` (libjpeg 9e) for ``codec="libjpeg9"`` and Pillow for ``codec="pillow"``.
    Full-image numbers: benchmarks/bench_diffjpeg.py."""
    paths = data.image_paths("live1", data_root=data_root, download_missing=False)
    assert len(paths) == 29
    gray = np.stack([_centre(protocols.GRAY.reference(p), 72, 104) for p in paths])
    rgb = np.stack([_centre(protocols.COLOR_QGCN.reference(p), 72, 104) for p in paths])
    rows = []
    for qf in QF_SWEEP:
        ref_gray = np.stack([protocols.GRAY.compress(a, qf)[0] for a in gray])
        ref_9 = np.stack([protocols.COLOR_QGCN.compress(a, qf)[0] for a in rgb])
        ref_p = np.stack([jpeg.roundtrip(a, qf, codec="pillow")[0] for a in rgb])
        g = _np(diffjpeg.roundtrip(_t(gray), qf, codec="pillow"))
        c9 = _np(diffjpeg.roundtrip(_t(rgb), qf, codec="libjpeg9"))
        cp = _np(diffjpeg.roundtrip(_t(rgb), qf, codec="pillow"))
        row = {"qf": qf, "gray": _stats(g, ref_gray), "c9": _stats(c9, ref_9), "cp": _stats(cp, ref_p),
               "c9_vs_pillow": _stats(c9, ref_p), "cp_vs_9e": _stats(cp, ref_9)}
        rows.append(row)
        assert row["gray"][0] <= 0.5 and row["c9"][0] <= 1.0 and row["cp"][0] <= 1.0, row
        # matching one codec's design is not matching the other's: each is closest to its own
        assert row["c9"][0] < row["c9_vs_pillow"][0] and row["cp"][0] < row["cp_vs_9e"][0], row
    print("\nQF  gray RMSE/identical   colour-9e RMSE/identical   colour-Pillow RMSE/identical   "
          "9e design vs Pillow   Pillow design vs 9e")
    for r in rows:
        print(f"{r['qf']:3d}  " + "   ".join(f"{r[k][0]:.3f}/{r[k][1]:.4f}" for k in
                                            ("gray", "c9", "cp", "c9_vs_pillow", "cp_vs_9e")))


# ---------------------------------------------------------------- decoding real files

def _decoders(path):
    """The file as Pillow and as libjpeg 9e decode it."""
    import jpeglib
    with Image.open(path) as im:
        pil = np.asarray(im.convert("RGB") if im.mode not in ("L", "RGB") else im).astype(np.float64)
    with jpeglib.version("9e"):
        j9 = jpeglib.read_spatial(str(path)).spatial.astype(np.float64)
    return pil, j9[..., 0] if j9.shape[2] == 1 else j9


def _check_file(path, bound, report):
    coefs = diffjpeg.read_coefficients(path)
    pil, j9 = _decoders(path)
    for codec, ref in (("pillow", pil), ("libjpeg9", j9)):
        ours = _np(diffjpeg.decode_coefficients(coefs, codec))[0]
        rmse, same = _stats(ours, ref)
        report.append((os.path.basename(str(path)), codec, rmse, same))
        assert rmse <= bound, report[-1]


def test_decode_coefficients_of_bsds500_files(data_root):
    paths = sorted((data_root / "bsds500" / "test").glob("*.jpg"))[:3]
    assert paths, "no BSDS500 test JPEGs"
    report = []
    for p in paths:
        _check_file(p, 1.0, report)
    print("\n" + "\n".join(f"{n} {c:9s} RMSE {r:.3f} identical {s:.5f}" for n, c, r, s in report))


def test_decode_coefficients_of_files_made_by_pillow_and_libjpeg9(tmp_path):
    report = []
    for shape, bound in (((45, 61), 0.5), ((45, 61, 3), 1.0)):
        img = _smooth(shape, seed=7)
        for codec in jpeg.CODECS:
            for qf in (5, 30, 75, 95):
                path = tmp_path / f"{codec}_{qf}_{len(shape)}.jpg"
                path.write_bytes(jpeg.encode(img, qf, codec=codec))
                _check_file(path, bound, report)
    img = _smooth((45, 61, 3), seed=8)
    for name, kwargs in (("444", {"subsampling": 0}), ("progressive", {"progressive": True})):
        path = tmp_path / f"pillow_{name}.jpg"
        Image.fromarray(img).save(path, "JPEG", quality=60, **kwargs)
        _check_file(path, 1.0, report)
    print("\n" + "\n".join(f"{n} {c:9s} RMSE {r:.3f} identical {s:.5f}" for n, c, r, s in report))


def test_read_coefficients_refuses_other_samplings(tmp_path):
    path = tmp_path / "422.jpg"
    Image.fromarray(_smooth((32, 32, 3))).save(path, "JPEG", quality=80, subsampling=1)
    with pytest.raises(ValueError, match="sampling factors"):
        diffjpeg.read_coefficients(path)
    with pytest.raises(FileNotFoundError):
        diffjpeg.read_coefficients(tmp_path / "missing.jpg")


# ---------------------------------------------------------------- tables and batches

def test_tables_forms_and_per_image_settings():
    imgs = np.stack([_smooth((24, 40, 3), seed=s) for s in range(3)])
    x = _t(imgs)
    qfs = [10, 50, 90]
    by_qf = diffjpeg.roundtrip(x, qfs)
    for i, qf in enumerate(qfs):
        ref, _ = jpeg.roundtrip(imgs[i], qf)
        assert np.array_equal(_np(by_qf)[i], ref)
        one = x[i: i + 1]
        file_tables = jpeg.quant_tables(jpeg.encode(imgs[i], qf))  # {0: luma, 1: chroma}
        assert torch.equal(diffjpeg.roundtrip_tables(one, file_tables), by_qf[i: i + 1])
        two = np.stack([jpeg.ijg_table(qf, "luma"), jpeg.ijg_table(qf, "chroma")])
        assert torch.equal(diffjpeg.roundtrip_tables(one, two), by_qf[i: i + 1])
    per_image = np.stack([[jpeg.ijg_table(q, "luma"), jpeg.ijg_table(q, "chroma")] for q in qfs])  # N x 2 x 8 x 8
    assert torch.equal(diffjpeg.roundtrip_tables(x, per_image), by_qf)


def test_bad_inputs_are_refused_with_a_reason():
    x = torch.zeros(1, 3, 8, 8)
    with pytest.raises(ValueError, match="N x C x H x W"):
        diffjpeg.roundtrip(torch.zeros(3, 8, 8), 50)
    with pytest.raises(ValueError, match="C = 1"):
        diffjpeg.roundtrip(torch.zeros(1, 2, 8, 8), 50)
    with pytest.raises(ValueError, match="floating"):
        diffjpeg.roundtrip(torch.zeros(1, 1, 8, 8, dtype=torch.uint8), 50)
    with pytest.raises(ValueError, match="either qf or tables"):
        diffjpeg.roundtrip(x, 50, tables=np.ones((8, 8)))
    with pytest.raises(ValueError, match="quality factor"):
        diffjpeg.roundtrip(x, 0)
    with pytest.raises(ValueError, match="integers in 1..32767"):
        diffjpeg.roundtrip_tables(x, np.full((8, 8), 0.5))
    with pytest.raises(ValueError, match="codec"):
        diffjpeg.roundtrip(x, 50, codec="mozjpeg")
    with pytest.raises(ValueError, match="2 quality factors"):
        diffjpeg.roundtrip(x, [10, 20])


# ---------------------------------------------------------------- gradients

def test_gray_straight_through_backward_is_the_identity():
    """Encode->decode without rounding is the identity, so the straight-through VJP of a gray round
    trip returns the cotangent itself (where nothing is clamped). Bound: the four 1-D integer kernels
    are within 1.5/8192 per entry of the exact scaled DCT, 8 entries per row, 8 rows per block side:
    at most 4 * 8 * 8 * 1.5 / 8192 ~ 0.05 relative (measured ~1e-4)."""
    torch.manual_seed(0)
    x = _t(_smooth((37, 45), seed=1)).requires_grad_()
    y = diffjpeg.roundtrip(x, 50)
    assert 0 < y.min() and y.max() < 255  # no clamping in this image
    v = torch.randn_like(y)
    (y * v).sum().backward()
    assert (x.grad - v).abs().max() <= 4 * 8 * 8 * 1.5 / 8192 * v.abs().max()


@pytest.mark.parametrize("codec", diffjpeg.CODECS)
def test_colour_gradients_are_finite_nonzero_and_respect_the_clamps(codec):
    x = _t(_smooth((29, 35, 3), seed=2)).requires_grad_()
    diffjpeg.roundtrip(x, 20, codec=codec).sum().backward()
    assert torch.isfinite(x.grad).all() and (x.grad != 0).float().mean() > 0.99
    # the mean of the round trip follows the mean of the input one to one (straight-through)
    assert abs(float(x.grad.mean()) - 1.0) < 0.05
    out = torch.full((1, 3, 16, 16), 300.0, requires_grad=True)  # above 255: clamped, no gradient
    diffjpeg.roundtrip(out, 50, codec=codec).sum().backward()
    assert torch.all(out.grad == 0)


def test_gradcheck_on_the_smooth_parts():
    g = torch.Generator().manual_seed(0)
    rgb = (255 * torch.rand(1, 3, 5, 7, generator=g, dtype=torch.float64)).requires_grad_()  # partial blocks too
    assert torch.autograd.gradcheck(color.rgb_to_ycbcr_float, (rgb,))
    for codec in diffjpeg.CODECS:
        assert torch.autograd.gradcheck(lambda x, codec=codec: cell.analyze(x, codec)[1], (rgb,))
    coefs = diffjpeg.encode(rgb.detach(), 20)
    assert torch.autograd.gradcheck(lambda x: cell.project(x, coefs), (rgb,))
    assert torch.autograd.gradcheck(lambda x: losses.jpeg_loss(x, coefs), (rgb,))


# ---------------------------------------------------------------- projection (Man et al. Eq. 11)

def _islow_error(size: int) -> float:
    """Largest |islow fdct - ideal dct| in DCT units for any 8-bit block: pass-1 rounding (1/2) through
    pass 2's gain, pass-2 rounding (1/2), and the kernels' distance from the exact DCT on |x| <= 128."""
    a, b = dct._SCALED[("f", size)]
    c = dct.dct_matrix(size)
    if size == 16:
        c = c[:8] / math.sqrt(2.0)
    gain = b.abs().sum(1).max()
    kernel = (torch.kron(b, a) - 8 * torch.kron(c, c)).abs().sum(1).max()
    return float((0.5 + 0.5 * gain + 128 * kernel) / 8)


def _arith_reach(codec: str, channels: int) -> list:
    """Per component, how far the codec's integer arithmetic can put a coefficient from the ideal
    coefficient of the same 8-bit image, in levels. Gray: the integer DCT only. Colour adds per sample:
    the fixed-point conversion's rounding (1/2, constants within 255*3/2/65536), and for Pillow's 4:2:0
    the biased average (at most 3/4 below or 1/2 above the mean); through the 8x8 DCT (or the halved
    16x16 one) whose basis functions have absolute sums of at most 8."""
    if channels == 1:
        return [_islow_error(8)]
    conv = 0.5 + 255 * 3 * 0.5 / 65536
    chroma = (conv + 0.75, 8) if codec == "pillow" else (conv, 16)
    return [8 * conv + _islow_error(8), 8 * chroma[0] + _islow_error(chroma[1]),
            8 * chroma[0] + _islow_error(chroma[1])]


@pytest.mark.parametrize("codec,channels", [("pillow", 1), ("pillow", 3), ("libjpeg9", 3)])
def test_projection_lands_in_the_cell_and_reencodes_to_the_files_coefficients(data_root, codec, channels):
    """Project a blurred decode (a stand-in restoration) onto the JPEG's cell, round to 8 bits, re-encode
    with the file's tables (the exact codec): the file's coefficients come back except where the 8-bit
    rounding moved the coefficient out of the cell. Asserted: (1) the projected real image is inside
    the cell (shrunk by the margin); (2) every coefficient that changes is one the rounding pushed out
    (up to the codec's integer arithmetic, ``_arith_reach``); (3) projection leaves fewer changes than
    the unprojected image, and a 0.25 margin fewer than Eq. 11's exact boundary. Crops are 96x128
    (whole MCUs: border blocks are only approximately projected)."""
    paths = data.image_paths("live1", data_root=data_root, download_missing=False)[:6]
    read = protocols.GRAY.reference if channels == 1 else protocols.COLOR_QGCN.reference
    reach = _arith_reach(codec, channels)
    rng = np.random.default_rng(0)
    lines = []
    for qf in (10, 30, 50, 90):
        count = {"unprojected": 0, "decoded": 0, "total": 0, "pushed_out": 0}
        for p in paths:
            ref = _centre(read(p), 96, 128)
            data_bytes = jpeg.encode(ref, qf, codec=codec)
            coefs, decoded = _read(data_bytes), jpeg.decode(data_bytes, codec=codec)
            blur = gaussian_filter(decoded.astype(np.float64), (1.5, 1.5) + ((0,) if channels == 3 else ()))
            noise = rng.uniform(0, 255, ref.shape)   # far outside the cell in every component
            for name, margin, img in (("blur", 0.0, blur), ("blur", 0.25, blur), ("noise", 0.0, noise)):
                proj = cell.project(_t(img).double(), coefs, codec, margin=margin)
                for r, y, i in zip(cell.analyze(proj, codec), coefs.blocks, range(channels)):   # (1)
                    assert ((r / coefs.tables[:, i, None, None] - y).abs() <= 0.5 - margin + 1e-9).all()
                u8 = np.clip(np.floor(_np(proj)[0] + 0.5), 0, 255).astype(np.uint8)
                back = _read(diffjpeg.encode_tables(u8, coefs.tables[0], codec=codec))
                for i, (y, b, r) in enumerate(zip(coefs.blocks, back.blocks, cell.analyze(_t(u8).double(), codec))):
                    q = coefs.tables[:, i, None, None]
                    outside = (r / q - y).abs() >= 0.5 - reach[i] / q
                    changed = b != y
                    assert not (changed & ~outside).any(), f"QF {qf}: a coefficient changed that rounding did not move"
                    key = (name, margin)
                    count[key] = count.get(key, 0) + int(changed.sum())
                    if key == ("blur", 0.0):
                        count["pushed_out"] += int(outside.sum())
                        count["total"] += y.numel()
            for name, img in (("unprojected", np.clip(np.floor(blur + 0.5), 0, 255).astype(np.uint8)),
                              ("decoded", decoded)):
                again = _read(diffjpeg.encode_tables(img, coefs.tables[0], codec=codec))
                count[name] += sum(int((a != y).sum()) for a, y in zip(again.blocks, coefs.blocks))
        assert count[("blur", 0.25)] < count[("blur", 0.0)] < count["unprojected"]
        share = {k: v / count["total"] for k, v in count.items()}
        lines.append(f"QF {qf:2d}: of {count['total']} coefficients, blur projected: {count[('blur', 0.0)]} changed "
                     f"({share[('blur', 0.0)]:.4f}; rounding pushed out <= {count['pushed_out']}), with margin 0.25 "
                     f"{count[('blur', 0.25)]} ({share[('blur', 0.25)]:.5f}), unprojected {count['unprojected']} "
                     f"({share['unprojected']:.4f}); noise projected {count[('noise', 0.0)]} "
                     f"({share[('noise', 0.0)]:.4f}); the decoded JPEG itself {count['decoded']} ({share['decoded']:.5f})")
    print(f"\n{codec} {'gray' if channels == 1 else 'colour'}, 6 LIVE1 crops 96x128:\n" + "\n".join(lines))


# ---------------------------------------------------------------- consistency metric and losses

@pytest.mark.parametrize("codec", jpeg.CODECS)
def test_consistency_metric_with_the_exact_codec(codec):
    orig = _smooth((48, 64, 3), seed=4)
    restored = np.clip(gaussian_filter(orig.astype(float), (1.2, 1.2, 0)) + 0.5, 0, 255).astype(np.uint8)
    assert diffjpeg.consistency(orig, orig, 20, codec=codec) == 0.0
    by_qf = diffjpeg.consistency(restored, orig, 20, codec=codec)
    tables = np.stack([jpeg.ijg_table(20, "luma"), jpeg.ijg_table(20, "chroma")])
    assert diffjpeg.consistency(restored, orig, tables=tables, codec=codec) == by_qf > 0
    # Eq. 4's C through the differentiable codec is the square of the same number
    jpeg_orig = _t(jpeg.roundtrip(orig, 20, codec=codec)[0])
    c = losses.consistency_loss(_t(restored), jpeg_orig, 20, codec=codec)
    assert math.isclose(float(c), by_qf ** 2, rel_tol=1e-6)
    # projecting onto the cell of JPEG(orig) makes the restoration more consistent; Eq. 11 as printed
    # leaves coefficients on the cell boundary, which 8-bit rounding re-quantizes either way, so
    # only a margin makes the stored 8-bit image (nearly) consistent
    coefs = diffjpeg.encode(_t(orig), 20, codec=codec)
    scores = []
    for margin in (0.0, 0.25):
        proj = _np(cell.project(_t(restored), coefs, codec, margin=margin))[0]
        scores.append(diffjpeg.consistency(np.clip(np.floor(proj + 0.5), 0, 255).astype(np.uint8), orig, 20,
                                           codec=codec))
    print(f"\n{codec} QF 20 consistency: blurred {by_qf:.3f}, projected {scores[0]:.3f}, with margin 0.25 {scores[1]:.3f}")
    assert scores[0] < by_qf and scores[1] < 0.2 * by_qf


def test_consistency_loss_per_image_settings_and_gradient():
    imgs = np.stack([_smooth((32, 32), seed=s) for s in range(2)])
    qfs = [10, 60]
    y = _t(np.stack([jpeg.roundtrip(a, q)[0] for a, q in zip(imgs, qfs)]))
    g = torch.tensor(gaussian_filter(imgs.astype(float), (0, 1, 1)), dtype=torch.float32)[:, None].requires_grad_()
    c = losses.consistency_loss(g, y, qfs)
    ref = np.mean([np.mean((jpeg.roundtrip(np.clip(np.floor(a + 0.5), 0, 255).astype(np.uint8), q)[0]
                            - b.astype(float)) ** 2) for a, q, b in
                   zip(g.detach()[:, 0].numpy(), qfs, _np(y))])
    assert math.isclose(c.item(), ref, rel_tol=1e-6)
    c.backward()
    assert torch.isfinite(g.grad).all() and g.grad.abs().sum() > 0
    # the JPEG input itself: only the codec's idempotence gap remains (re-compressing moves few pixels)
    assert float(losses.consistency_loss(y, y, qfs)) < 1.0


def test_jpeg_loss_is_zero_in_the_cell_and_pulls_back_into_it():
    img = _smooth((32, 48), seed=6)
    coefs = diffjpeg.encode(_t(img), 30)
    q = coefs.tables[:, 0, None, None]
    centre = cell.synthesize((coefs.blocks[0] * q,), coefs.size) + 128.0   # real image of Y exactly
    assert float(losses.jpeg_loss(centre, coefs)) < 1e-9
    noise = torch.rand(1, 1, 32, 48, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 255
    assert float(losses.jpeg_loss(cell.project(noise, coefs), coefs)) < 1e-9   # on the boundary
    x = noise.clone().requires_grad_()
    loss = losses.jpeg_loss(x, coefs)
    assert loss.item() > 1.0
    loss.backward()
    # in the DCT domain the gradient is 2 (X - Y) / |X| outside the cell and 0 inside
    gx = dct.dct(dct.blockify(x.grad[:, 0], 8))
    d = cell.analyze(x.detach())[0] - coefs.blocks[0] * q
    out = d.abs() > q / 2
    assert torch.allclose(gx[out], 2 * d[out] / x.numel(), rtol=1e-9, atol=1e-12)
    assert gx[~out].abs().max() < 1e-12
    step = losses.jpeg_loss(x.detach() - 0.25 * x.numel() * x.grad, coefs)   # half-way back, coefficient-wise
    assert step.item() < loss.item()


def test_jpeg_loss_alignment_and_decoded_input():
    img = _smooth((32, 48, 3), seed=9)
    jpg = _t(jpeg.roundtrip(img, 30)[0])
    tables = np.stack([jpeg.ijg_table(30, "luma"), jpeg.ijg_table(30, "chroma")])
    x = _t(gaussian_filter(img.astype(float), (2, 2, 0)))
    coefs = diffjpeg.encode(_t(img), 30)
    full = losses.jpeg_loss(x, coefs)
    assert float(full) > 0
    assert float(losses.jpeg_loss(x, coefs, offsets=[[16, 32]])) == float(full)
    assert float(losses.jpeg_loss(x, coefs, offsets=[[8, 0]])) == 0.0       # 4:2:0 colour: 16-pixel grid
    two = losses.jpeg_loss(x.repeat(2, 1, 1, 1), diffjpeg.encode(_t(img).repeat(2, 1, 1, 1), 30),
                           offsets=[[0, 0], [0, 4]])
    assert math.isclose(float(two), float(full) / 2, rel_tol=1e-6)
    # the decoded input with its tables: its coefficients are recovered by re-encoding it
    from_decoded = losses.jpeg_loss(x, jpg, tables)
    assert math.isclose(float(from_decoded), float(full), rel_tol=0.05)
    gray = _t(img[..., 1])
    gray_coefs = diffjpeg.encode(gray, 30)
    blurred = _t(gaussian_filter(img[..., 1].astype(float), 2))
    aligned = losses.jpeg_loss(blurred, gray_coefs, offsets=[[8, 8]])   # gray: 8-pixel grid
    assert float(aligned) == float(losses.jpeg_loss(blurred, gray_coefs)) > 0
    assert float(losses.jpeg_loss(blurred, gray_coefs, offsets=[[4, 0]])) == 0.0
    with pytest.raises(ValueError, match="tables"):
        losses.jpeg_loss(x, jpg)
    with pytest.raises(ValueError, match="does not match"):
        losses.jpeg_loss(x[..., :16], coefs)
