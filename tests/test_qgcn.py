"""QGCN / QCN / EDSR: quantization maps, shapes, counts, gradients, training recipe."""
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from paperlib import checkpoint as ckpt
from paperlib import jpeg
from paperlib.models.qgcn import (BUDGETS, EDSR, GLOBAL_TABLE_I, QCN, QGCN, QGCNNet, default_name, load_qgcn, quant_map,
                                  train_qgcn)
from paperlib.patches import PatchSampler, build_val_set
from paperlib.restorer import Restorer
from synthetic import synthetic_images

RNG = np.random.default_rng(0)
RGB = [np.ascontiguousarray(np.stack([im, np.roll(im, 3, 0), 255 - im], -1))
       for im in synthetic_images(3, seed=1, height=72, width=80)]


def _pillow_file(img, qf):
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=qf)
    return buf.getvalue()


@pytest.mark.parametrize("qf", [1, 10, 37, 60, 90])
@pytest.mark.parametrize("codec", ["pillow", "libjpeg9"])
def test_tables_of_the_file_are_the_ijg_tables_at_that_qf(qf, codec):
    img = RGB[0]
    data = jpeg.encode(img, qf, codec=codec)
    file_tables = jpeg.quant_tables(data)
    assert np.array_equal(file_tables[0], jpeg.ijg_tables(qf, True)[0])
    assert np.array_equal(file_tables[1], jpeg.ijg_tables(qf, True)[1])
    assert np.array_equal(jpeg.quant_tables(_pillow_file(img[..., 0], qf))[0], jpeg.ijg_tables(qf, False)[0])


def test_quant_map_tiles_tables_aligned_with_the_blocks():
    t = torch.tensor(jpeg.ijg_tables(10, True), dtype=torch.float32)[None]  # 1 x 2 x 8 x 8
    m = quant_map(t, 21, 30)
    assert m.shape == (1, 2, 21, 30)
    for (by, bx) in [(0, 0), (8, 8), (16, 24)]:
        blk = m[0, :, by:by + 8, bx:bx + 8]
        assert torch.equal(blk, (t[0] / 255.0)[:, :blk.shape[1], :blk.shape[2]])
    assert float(m[0, 0, 0, 0]) == pytest.approx(80 / 255)       # IJG luma DC at QF10: (16 * 500 + 50) // 100
    with pytest.raises(ValueError):
        quant_map(torch.zeros(1, 2, 4, 4), 8, 8)


def test_parameter_counts():
    """Counts of this implementation (the paper prints none); the global branch is Table I exactly."""
    def n(m):
        return sum(p.numel() for p in m.parameters())
    g = QGCN(3, 8).global_branch
    convs = sum(co * ci * k * k + co for (co, k, _, _), ci in zip(GLOBAL_TABLE_I, [5, 32, 32, 64, 64, 128, 128, 256]))
    assert n(g) == convs + 256 * 7 * 7 * 1024 + 1024 + 1024 * 64 + 64 == 14_386_688
    block = 2 * (64 * 64 * 9 + 64)
    for n_res in (8, 32):
        edsr = n(EDSR(3, n_res))
        assert edsr - n(EDSR(3, n_res - 1)) == 2 * block                    # one block in each of the 2 groups
        assert n(QCN(3, n_res)) - edsr == 2 * 64 * 9                        # 2 map channels into the head
        assert n(QGCN(3, n_res)) - n(QCN(3, n_res)) == n(g) + 128 * 64 * 9 + 64   # + global, 128 -> 64 conv
    assert n(EDSR(3, 32)) == 4_951_875 and n(QCN(3, 32)) == 4_953_027 and n(QGCN(3, 32)) == 19_413_507
    assert n(QGCN(1, 32)) == 19_409_089


@pytest.mark.parametrize("variant", ["qgcn", "qcn", "edsr"])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_padding_and_gradients(variant, channels):
    torch.manual_seed(0)
    net = QGCNNet(variant, channels, n_res=2)
    y = torch.rand(2, channels, 29, 43, requires_grad=True)
    t = torch.tensor(np.stack([jpeg.ijg_tables(q, channels == 3) for q in (5, 50)]), dtype=torch.float32)
    out = net(y, t)
    assert out.shape == y.shape
    out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
    assert all(p.grad.abs().sum() > 0 for p in net.parameters())


def test_maps_change_the_output_and_edsr_ignores_them():
    torch.manual_seed(0)
    y = torch.rand(1, 3, 32, 32)
    t10, t50 = (torch.tensor(jpeg.ijg_tables(q, True), dtype=torch.float32)[None] for q in (10, 50))
    for net in (QCN(3, 1, init_std=0.05), QGCN(3, 1, init_std=0.05)):
        assert not torch.allclose(net(y, t10), net(y, t50))
    e = EDSR(3, 1, init_std=0.05)
    assert torch.equal(e(y, t10), e(y, None))
    with pytest.raises(ValueError):
        QCN(3, 1)(y, None)


def test_global_branch_sees_the_whole_image():
    """Changing a far corner changes QGCN's output everywhere; QCN's receptive field is local."""
    torch.manual_seed(0)
    y = torch.rand(1, 3, 96, 96)
    y2 = y.clone()
    y2[..., -8:, -8:] = 0
    t = torch.tensor(jpeg.ijg_tables(20, True), dtype=torch.float32)[None]
    for net, far_changes in ((QGCN(3, 1, init_std=0.05), True), (QCN(3, 1, init_std=0.05), False)):
        d = (net(y, t) - net(y2, t))[..., :16, :16].abs().max()
        assert (d > 0) == far_changes


def test_sampler_tables_match_each_patch_qf():
    s = PatchSampler(RGB, 32, 6, (1, 60), seed=3, with_tables=True)
    jpg, clean, tables = s.batch(5)
    assert jpg.shape == clean.shape == (6, 3, 32, 32) and tables.shape == (6, 2, 8, 8)
    for k in range(6):
        q = s.sample(5, k)[2]
        assert torch.equal(tables[k], torch.tensor(jpeg.ijg_tables(q, True), dtype=torch.float32))
    val = build_val_set(RGB, (10, 50), crop=32, n=5, seed=0, with_tables=True, batch_size=4)
    assert [v[2].shape[0] for v in val] == [4, 1]


@pytest.mark.isa
def test_smoke_training_publish_and_load(tmp_path):
    res = train_qgcn("qgcn", RGB, tmp_path / "run", "smoke", val_images=RGB[:1], sources=["synthetic"],
                     progress=False)
    b = BUDGETS["smoke"]
    assert res.finished and res.step == b.steps
    crops = [row["crop"] for row in res.log]
    assert crops == [b.crop] * b.hard_start + [b.hard_crop] * (b.steps - b.hard_start)   # easy, then hard
    m = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert m["variant"] == "qgcn" and m["color"] and m["qf"] == [1, 60] and m["data"]["hard_sampler"]["crop"] == 32
    ckpt.publish(tmp_path / "run", "qgcn-color", weights="qgcn_fp16.pt", dest=tmp_path / "zoo")
    net = load_qgcn(tmp_path / "zoo" / "qgcn-color.pt")
    assert net.kwargs == res.models["qgcn"].kwargs and not net.training
    sd, meta = ckpt.load_fp16(tmp_path / "zoo" / "qgcn-color.pt")
    assert meta["arch"] == "QGCN"
    gray = train_qgcn("edsr", [im[..., 0] for im in RGB], tmp_path / "g", "smoke", qf=20, progress=False)
    assert gray.models["qgcn"].channels == 1 and gray.finished


def test_names():
    assert default_name("qgcn", True) == "qgcn-color"
    assert default_name("edsr", False, (1, 60)) == "edsr-gray"
    assert default_name("edsr", True, 10) == "edsr-color-q10"
    assert default_name("edsr", True, (10, 50)) == "edsr-color-q10-50"
    assert default_name("qgcn", True, n_res=16) == "qgcn-color-r16"


def test_map_of_a_real_file_matches_pillow_tables_and_ijg(tmp_path):
    """read_jpeg's tables -> quant_map: equal to Pillow's own report for the file and to IJG's tables at the QF."""
    img = RGB[1][:43, :61]                       # not a multiple of 8: the map is padded with the image
    path = tmp_path / "x.jpg"
    Image.fromarray(img).save(path, quality=17)
    dec, tables, info = jpeg.read_jpeg(path)
    assert dec.shape == img.shape and info["qf_luma"] == 17 == info["qf_chroma"]
    with Image.open(path) as im:
        pil = [np.array(im.quantization[k]).reshape(8, 8) for k in (0, 1)]
    m = quant_map(torch.tensor(tables, dtype=torch.float32)[None], 48, 64)
    for c in (0, 1):
        assert torch.equal(m[0, c], torch.tensor(np.tile(pil[c], (6, 8)) / 255.0, dtype=torch.float32))
        assert np.array_equal(pil[c], jpeg.ijg_tables(17, True)[c])
    out, _ = Restorer(QGCN(3, 1)).restore_file(path)
    assert out.shape == img.shape
