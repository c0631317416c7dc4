"""paperlib.restorer: one restoration call for every model family (tiny networks, synthetic images).

Batched restoration must equal one image at a time (up to float summation order), the
tables must be the ones of the QF, wrong images are refused, and stochastic models give
reproducible, batch-independent samples that differ from each other.
"""
import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from paperlib import jpeg
from paperlib.models.cascnn import CASCNN
from paperlib.models.onetomany import ProposalNet
from paperlib.models.qgcn import EDSR, QCN, QGCN
from paperlib.models.svoboda import L4, L8
from paperlib.restorer import Restorer
from synthetic import smooth_images


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    # larger init than the paper's 0.01 so the networks change the image measurably
    return {"qgcn": QGCN(3, n_res=1, init_std=0.05).eval(), "qcn": QCN(3, n_res=1, init_std=0.05).eval(),
            "edsr": EDSR(3, n_res=1, init_std=0.05).eval(), "gray": QGCN(1, n_res=1, init_std=0.05).eval(),
            "cascnn": CASCNN(width=8).eval(), "l4": L4().eval()}


# ---- deterministic families ----------------------------------------------------------------------

@pytest.mark.parametrize("which", ["qgcn", "qcn", "edsr", "gray", "cascnn", "l4"])
def test_batched_equals_one_at_a_time(nets, which):
    net = nets[which]
    imgs = smooth_images(color=net.channels == 3)
    got = Restorer(net, batch=3)(imgs, qf=20)
    one = Restorer(net, batch=1)
    for img, g in zip(imgs, got):
        o = one([img], qf=20)[0]
        assert g.shape == img.shape and g.dtype == np.uint8
        d = np.abs(g.astype(int) - o.astype(int))
        assert d.max() <= 1 and (d == 0).mean() > 0.99     # same up to float summation order
    if which != "l4":   # L4's last layer starts at std 1e-3: its correction rounds away
        assert not all(np.array_equal(g, i) for g, i in zip(got, imgs))   # the network did something


def test_output_is_the_network_clamped_and_rounded(nets):
    net = nets["cascnn"]
    img = (np.arange(21 * 35) % 251).astype(np.uint8).reshape(21, 35)
    out = Restorer(net)([img])[0]
    with torch.no_grad():
        x = (torch.from_numpy(img).float()[None, None] / 255).contiguous(memory_format=torch.channels_last)
        ref = net(x)[0, 0]
    assert out.dtype == np.uint8 and out.shape == img.shape
    assert np.array_equal(out, (ref.clamp(0, 1) * 255).round().to(torch.uint8).numpy())


def test_tables_of_the_qf_reach_the_network(nets):
    img = smooth_images(color=True)[:1]
    r = Restorer(nets["qgcn"])
    a, b = r(img, qf=10)[0], r(img, qf=50)[0]
    assert not np.array_equal(a, b)
    assert np.array_equal(a, r(img, jpeg.ijg_tables(10, True))[0])          # qf= is the IJG tables of the QF
    assert np.array_equal(a, r(img, [jpeg.ijg_tables(10, True)])[0])        # one table set per image
    e = Restorer(nets["edsr"])
    assert np.array_equal(e(img, qf=10)[0], e(img, qf=50)[0])               # EDSR takes no tables
    assert np.array_equal(e(img)[0], e(img, qf=50)[0])


def test_zero_correction_is_the_identity():
    net = QGCN(3, 1)
    dec = jpeg.roundtrip(smooth_images(color=True)[0][:37, :45], 20)[0]
    with torch.no_grad():
        for p in net.tail.parameters():
            p.zero_()
    assert np.array_equal(Restorer(net)([dec], qf=20)[0], dec)


def test_wrong_inputs_are_refused(nets):
    dec = smooth_images(color=True)[0]
    with pytest.raises(ValueError, match="colour"):
        Restorer(nets["qgcn"])([dec[..., 0]], qf=20)                        # gray image into a colour net
    with pytest.raises(ValueError, match="tables"):
        Restorer(nets["qgcn"])([dec])                                         # QGCN without tables
    with pytest.raises(ValueError, match="uint8"):
        Restorer(nets["cascnn"])([np.zeros((8, 8), np.float32)])
    with pytest.raises(ValueError, match="2 tables for 1 images"):
        Restorer(nets["qgcn"])([dec], [jpeg.ijg_tables(10, True)] * 2)
    with pytest.raises(ValueError, match="deterministic"):
        Restorer(nets["cascnn"])([dec[..., 0]], samples=3)
    with pytest.raises(TypeError):
        Restorer(nn.Conv2d(1, 1, 3))


def test_restore_file_uses_the_files_own_tables(nets, tmp_path):
    img = smooth_images(color=True)[0]
    path = tmp_path / "x.jpg"
    # custom tables (not IJG): what the file carries, not a QF, must reach QGCN
    luma = np.clip(jpeg.ijg_table(30) + np.arange(64).reshape(8, 8) % 3, 1, 255)
    Image.fromarray(img).save(path, qtables=[luma.flatten().tolist(), jpeg.ijg_table(30, "chroma").flatten().tolist()])
    out, info = Restorer(nets["qgcn"]).restore_file(path)
    dec, tables, _ = jpeg.read_jpeg(path)
    assert info["qf_luma"] is None and np.array_equal(tables[0], luma)
    assert np.array_equal(out, Restorer(nets["qgcn"])([dec], tables)[0])
    with pytest.raises(jpeg.UnsupportedJPEG, match="colour JPEG"):
        Restorer(nets["cascnn"]).restore_file(path)


# ---- stochastic families ---------------------------------------------------------------------------

class Noisy(nn.Module):
    """A stochastic 'restorer' for the protocol: output = input + 0.05 * z, z ~ N(0, 1) per pixel."""

    channels, uses_tables, stochastic = 1, False, True
    halo, grid = 0, 1

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(0.05))

    def noise(self, x, generator):
        return torch.randn(x.shape, generator=generator)

    def forward(self, x, z):
        return x + self.scale * z


def test_samples_are_seeded_batch_independent_and_differ():
    imgs = smooth_images(shapes=((24, 32), (24, 32), (16, 40)))
    r = Restorer(Noisy(), batch=2)
    a = r(imgs, seed=3, samples=4)
    assert [s.shape for s in a] == [(4, 24, 32), (4, 24, 32), (4, 16, 40)] and a[0].dtype == np.uint8
    b = Restorer(Noisy(), batch=1)(imgs, seed=3, samples=4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))             # batching does not change a sample
    assert not np.array_equal(a[0][0], a[0][1])                          # samples differ
    assert not np.array_equal(a[0], r(imgs, seed=4, samples=4)[0])       # so do seeds
    assert np.array_equal(r(imgs, seed=3)[0], a[0][0])                   # one sample = sample 0
    # the spread is the model's: 0.05 * 255 gray levels per pixel, before rounding and clamping
    assert abs(a[0].astype(float).std(axis=0).mean() - 0.05 * 255 * np.sqrt(3 / 4)) < 1.5


# ---- tiling large images -----------------------------------------------------------------------------

def _tiling_nets():
    torch.manual_seed(0)
    o2m = ProposalNet(1, width=8, branch_units=1, aggregation_units=2)
    nn.init.normal_(o2m.last.weight, 0, 0.05)   # a correction that is not zero
    return {"cascnn": CASCNN(width=8), "l4": L4(), "l8": L8(), "qgcn": QGCN(3, n_res=2, init_std=0.05),
            "qgcn-gray": QGCN(1, n_res=2, init_std=0.05), "edsr": EDSR(3, n_res=2, init_std=0.05), "o2m": o2m}


@pytest.mark.parametrize("which", list(_tiling_nets()))
def test_halo_covers_the_receptive_field(which):
    """The declared halo >= the receptive field measured with autograd (input pixels that move the centre)."""
    net = _tiling_nets()[which].eval()
    for m in net.modules():   # nonzero weights everywhere, so that every path shows up in the gradient
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0, 0.05)
    size = 2 * net.halo + 64
    x = torch.rand(1, net.channels, size, size, requires_grad=True)
    args = [x] + ([torch.ones(1, 2 if net.channels == 3 else 1, 8, 8) * 20] if net.uses_tables else [])
    y = net(*args)
    c = size // 2
    y[0, :, c, c].sum().backward()
    touched = (x.grad[0].abs().sum(0) > 0).nonzero()
    if which.startswith("qgcn"):   # the global branch sees everything; the restoration branch is what tiles
        x.grad = None
        g = net.global_context(*[a.detach() for a in args])
        y = net(*args, context=g.detach())
        y[0, :, c, c].sum().backward()
        touched = (x.grad[0].abs().sum(0) > 0).nonzero()
    radius = int((touched - c).abs().max())
    assert 0 < radius <= net.halo, (radius, net.halo)


@pytest.mark.parametrize("which", list(_tiling_nets()))
def test_tiled_equals_untiled(which):
    net = _tiling_nets()[which]
    color = net.channels == 3
    img = smooth_images(shapes=((203, 267),), color=color)[0]   # odd sizes, several tiles with partial ones
    whole = Restorer(net)([img], qf=20, seed=5)[0]
    tiled = Restorer(net, tile=64, max_pixels=64 * 64)([img], qf=20, seed=5)[0]
    d = np.abs(whole.astype(int) - tiled.astype(int))
    assert d.max() <= 1 and (d == 0).mean() > 0.999, (d.max(), (d == 0).mean())   # float summation order only


def test_the_flop_log_counts_each_call_at_its_own_size(nets, tmp_path, monkeypatch):
    """Benchmarks divide logged FLOPs by the conv rate: each image must count what the network really computes at
    its size (QGCN's fixed-size global branch, L4's mirror-padded border), the counter's own count on the real
    network, not a 64x64 count scaled by pixels."""
    from torch.utils.flop_counter import FlopCounterMode
    from paperlib.restorer import FLOP_LOG
    log = tmp_path / "flops.log"
    monkeypatch.setenv(FLOP_LOG, str(log))
    for which in ("qgcn", "l4"):
        net = nets[which]
        log.unlink(missing_ok=True)
        imgs = smooth_images(((40, 56), (72, 24), (40, 56)), color=net.channels == 3)
        Restorer(net, batch=1)(imgs, qf=20)
        logged = [float(line.split("\t")[1]) for line in log.read_text().splitlines()]
        want = []
        for img in imgs:
            x = torch.zeros(1, net.channels, *img.shape[:2])
            args = [x] + ([torch.from_numpy(jpeg.ijg_tables(20, net.channels == 3)).float()[None][:, :2 if
                                                                                             net.channels == 3 else 1]]
                          if net.uses_tables else [])
            # with a gradient every layer runs as the convolution it is (models.conv computes narrow layers
            # another way at inference, with a few more multiply-adds at the border); the bound counts the network
            with torch.enable_grad(), FlopCounterMode(display=False) as counter:
                net(*args)
            want.append(counter.get_total_flops())
        assert sorted(logged) == sorted(want)   # exact (the restorer groups images by size)
        per_pixel = [f / (img.shape[0] * img.shape[1]) for f, img in zip(want, imgs)]
        assert per_pixel[0] != pytest.approx(per_pixel[1], rel=1e-3)   # not one count per pixel for every size


def _layout_nets():
    from paperlib.models.posterior import PosteriorNet
    torch.manual_seed(0)
    nets = {k: v for k, v in _tiling_nets().items() if not k.startswith("qgcn")}   # QGCN: its 9-channel input
    # (image + quantization maps) is copied once per call, negligible beside its 64-channel body
    return {**nets, "posterior": PosteriorNet(3, features=8, n_blocks=1),
            "posterior-mse": PosteriorNet(3, features=8, n_blocks=1, noise=False)}


@pytest.mark.parametrize("which", list(_layout_nets()))
def test_every_convolution_gets_channels_last_input(which):
    """The restorer runs networks channels_last; an NCHW tensor reaching a convolution (e.g. features concatenated
    with NCHW noise) makes torch copy it back first: the posterior generator was 1.5x slower for it."""
    net = _layout_nets()[which]
    seen = []

    def check(module, args):
        x = args[0]
        if x.shape[1] > 1 and x.shape[-1] > 1 and x.shape[-2] > 1:   # one channel or one pixel: both layouts at once
            seen.append((type(module).__name__, tuple(x.shape), x.is_contiguous(memory_format=torch.channels_last)))

    hooks = [m.register_forward_pre_hook(check) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    try:
        img = smooth_images(shapes=((48, 64),), color=net.channels == 3)[0]
        Restorer(net)([img], qf=20, seed=1)
    finally:
        for h in hooks:
            h.remove()
    assert seen and all(ok for *_, ok in seen), [s for s in seen if not s[2]]
